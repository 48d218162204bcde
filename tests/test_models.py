"""Models: architecture, deterministic training, the weight cache, accuracy targets (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mobiprox_lab.datasets import Split, Splits
from mobiprox_lab.models import (
    DEFAULT_HAR_WIDTH,
    HarMobileNet,
    KwsCNN,
    TrainedModel,
    build_model,
    evaluate,
    load_or_train,
    train,
)


def _tiny_splits(shape=(3, 32, 32), n_classes=3, n=48, seed=0) -> Splits:
    """Random inputs whose class shifts the mean of channel 0: learnable, tiny."""
    rng = np.random.default_rng(seed)

    def split(m, g):
        y = rng.integers(0, n_classes, m)
        x = rng.standard_normal((m, *shape)).astype(np.float32)
        x[:, 0] += y[:, None, None].astype(np.float32)
        return Split(x, y.astype(np.int64), np.full(m, g, np.int64))

    return Splits("har", tuple(f"c{i}" for i in range(n_classes)),
                  split(n, 0), split(n // 2, 1), split(n // 2, 2), meta={"source": "tiny"})


def test_har_mobilenet_structure():
    m = HarMobileNet(7, width=1.0)
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    assert len(convs) == 27
    assert [c.out_channels for c in convs if c.kernel_size == (1, 1)] == \
        [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    assert sum(1 for c in convs if c.groups > 1) == 13
    assert [c.stride[0] for c in convs if c.groups > 1].count(2) == 4
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    half = HarMobileNet(6, width=0.5)
    assert half.classifier.in_features == 512 and half.features[0].conv.out_channels == 16
    with pytest.raises(ValueError, match="width"):
        HarMobileNet(7, width=0)
    with pytest.raises(ValueError, match="n_classes"):
        HarMobileNet(1)


def test_kws_cnn_structure():
    m = KwsCNN(12).eval()
    assert m.conv1.kernel_size == (20, 8) and m.conv2.kernel_size == (10, 4)
    assert m.conv1.out_channels == m.conv2.out_channels == 64
    assert m.classifier.in_features == 64 * 32 * 13
    assert m(torch.zeros(2, 1, 101, 40)).shape == (2, 12)
    with pytest.raises(ValueError, match="input_hw"):
        KwsCNN(12, input_hw=(20, 10))


def test_build_model():
    assert build_model("har", 7, (3, 32, 32)).hparams["width"] == DEFAULT_HAR_WIDTH
    assert isinstance(build_model("kws", 12, (1, 101, 40)), KwsCNN)
    with pytest.raises(ValueError, match="task"):
        build_model("asr", 3, (1, 2, 3))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models train faster on one thread (no OpenMP hand-offs on a busy 2-core box)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _weights(m: nn.Module) -> list[torch.Tensor]:
    return [v.clone() for v in m.state_dict().values()]


def test_training_is_deterministic():
    splits = _tiny_splits(n=32)
    runs = []
    for seed, epochs in ((5, 2), (5, 2), (6, 1)):
        m = HarMobileNet(3, width=0.125)
        m, hist = train(m, splits, epochs=epochs, lr=3e-3, batch_size=16, seed=seed, patience=2,
                        augment="har", progress=False)
        assert not m.training and len(hist) >= 1 and 0 <= hist[0]["tune_acc"] <= 1
        runs.append(_weights(m))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2], strict=True))


def test_train_validation():
    splits = _tiny_splits()
    with pytest.raises(ValueError, match="epochs"):
        train(HarMobileNet(3, width=0.125), splits, epochs=0)
    bad = Splits("har", ("a", "b"), Split(splits.train.x.astype(np.float64), splits.train.y,
                                           splits.train.group), splits.tune, splits.test)
    with pytest.raises(ValueError, match=r"splits.train.x: expected a float32 array"):
        train(HarMobileNet(3, width=0.125), bad, epochs=1)
    with pytest.raises(ValueError, match=r"max_rotation_deg: expected degrees in \[0, 180\]"):
        train(HarMobileNet(3, width=0.125), splits, epochs=1, max_rotation_deg=-5)


def test_har_augmentation_rotation_limit():
    """With ``max_rotation_deg=0`` the axes are not rotated: a window of gravity alone (x
    axis of total_acc) keeps its direction; at 15 degrees it tilts."""
    from mobiprox_lab.datasets import har
    from mobiprox_lab.models import training

    raw = np.zeros((8, 9, 128), np.float32)
    raw[:, 6] = 1.0  # total_acc x = 1 g, nothing else
    img = torch.from_numpy(har.signal_image(raw))
    tilt = {}
    for deg in (0.0, 15.0):
        out = training._augment(img, "har", torch.Generator().manual_seed(0), deg)
        g = out.reshape(8, 3, 4, 8, 32)[:, 2, :, :3, :].mean(dim=(1, 3))  # total_acc x, y, z
        tilt[deg] = float(torch.rad2deg(torch.atan2(g[:, 1:].norm(dim=1), g[:, 0])).max())
    assert tilt[0.0] < 3.0 < tilt[15.0]  # noise only vs a real tilt


def test_har_rotation_in_physical_units_tilts_the_subtracted_gravity():
    """Standardised windows of gravity alone (total_acc x = 1 g, the channel's mean) are all
    zeros: rotating them leaves gravity where it was; rotated in physical units (the
    standardisation undone around the rotation) gravity tilts, keeping its 1 g."""
    from mobiprox_lab.datasets import har
    from mobiprox_lab.models import training

    mean = np.zeros(9, np.float32)
    mean[6] = 1.0  # total_acc x
    std = np.full(9, 0.5, np.float32)
    img = torch.from_numpy(har.signal_image(np.zeros((8, 9, 128), np.float32)))  # standardised
    st = tuple(torch.from_numpy(v.reshape(3, 3)) for v in (mean, std))
    tilt, norm = {}, {}
    for units, standardisation in (("standardised", None), ("physical", st)):
        out = training._augment(img, "har", torch.Generator().manual_seed(0), 15.0,
                                standardisation)
        g = out.reshape(8, 3, 4, 8, 32)[:, 2, :, :3, :].mean(dim=(1, 3)) * 0.5
        g[:, 0] += 1.0  # back to g
        tilt[units] = torch.rad2deg(torch.atan2(g[:, 1:].norm(dim=1), g[:, 0]))
        norm[units] = g.norm(dim=1)
    assert float(tilt["standardised"].max()) < 3.0 < float(tilt["physical"].max())
    assert torch.allclose(norm["physical"], torch.ones(8), atol=0.15)  # gain +-10 %, noise


def test_train_rotation_units_validation():
    from mobiprox_lab.models import training

    x = np.zeros((4, 3, 32, 32), np.float32)
    split = Split(x, np.arange(4) % 2, np.zeros(4, np.int64))
    splits = Splits("har", ("a", "b"), split, split, split, {})
    model = build_model("har", 2, (3, 32, 32), width=0.25)
    with pytest.raises(ValueError, match="rotation_units"):
        training.train(model, splits, epochs=1, rotation_units="degrees", progress=False)
    with pytest.raises(ValueError, match="standardisation"):
        training.train(model, splits, epochs=1, augment="har", rotation_units="physical",
                       progress=False)


def test_train_keep_last_returns_the_final_epochs_weights(monkeypatch):
    import mobiprox_lab.models.training as training

    splits = _tiny_splits(n=32)

    def run(tune_accs, keep, patience=3):
        accs = iter(tune_accs)  # the tune accuracy of each epoch, in order
        monkeypatch.setattr(training, "evaluate", lambda module, split: next(accs))
        m, hist = train(HarMobileNet(3, width=0.125), splits, epochs=3, lr=3e-3, batch_size=16,
                        seed=5, patience=patience, keep=keep, progress=False)
        return _weights(m), hist

    final, _ = run([0.1, 0.2, 0.3], "best_tune")  # best on tune = the last epoch
    last, hist = run([0.3, 0.2, 0.1], "last")  # best on tune = epoch 1
    first, _ = run([0.3, 0.2, 0.1], "best_tune")
    assert [r["epoch"] for r in hist] == [1, 2, 3]  # patience >= epochs: no early stop
    assert all(torch.equal(a, b) for a, b in zip(last, final, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(last, first, strict=True))
    with pytest.raises(ValueError,
                       match=r"keep: expected one of \('best_tune', 'last', 'average'\)"):
        train(HarMobileNet(3, width=0.125), splits, epochs=1, keep="best")


def test_train_keep_average_is_the_mean_of_the_last_half(monkeypatch):
    """keep="average": the parameters are the mean of the snapshots after epochs 3-5 of 5
    (recorded here by a spy on the tune evaluation, which runs after each epoch), and the
    batch-norm statistics are those of the un-augmented training inputs under the averaged
    weights, not the running ones of training."""
    import mobiprox_lab.models.training as training

    splits = _tiny_splits(n=32)
    snapshots = []

    def spy(module, split):
        snapshots.append([p.detach().clone() for p in module.parameters()])
        return 0.5

    monkeypatch.setattr(training, "evaluate", spy)
    model, hist = train(HarMobileNet(3, width=0.125), splits, epochs=5, lr=3e-3, batch_size=16,
                        seed=5, patience=5, keep="average", progress=False)
    assert len(hist) == len(snapshots) == 5
    for p, *last in zip(model.parameters(), *snapshots[2:], strict=True):
        torch.testing.assert_close(p.detach(), torch.stack(last).mean(0), rtol=1e-5, atol=1e-6)
    assert not all(torch.equal(p.detach(), q)
                   for p, q in zip(model.parameters(), snapshots[-1], strict=True))
    # the first batch norm's statistics: the plain mean / variance of its input over the
    # training set, in two batches of 16 (cumulative average of the batch statistics)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        acts = [conv(torch.from_numpy(splits.train.x[i:i + 16])) for i in (0, 16)]
    mean = torch.stack([a.mean((0, 2, 3)) for a in acts]).mean(0)
    var = torch.stack([a.var((0, 2, 3), unbiased=True) for a in acts]).mean(0)
    torch.testing.assert_close(bn.running_mean, mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, var, rtol=1e-4, atol=1e-5)
    assert not model.training
    with pytest.raises(ValueError, match=r'patience: keep="average" .* expected patience >= '
                                         r"epochs \(5\), got 2"):
        train(HarMobileNet(3, width=0.125), splits, epochs=5, patience=2, keep="average")


def test_load_or_train_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBIPROX_DATA", str(tmp_path))
    splits = _tiny_splits(shape=(1, 45, 20), n_classes=3, n=32)  # small MFCC: fast
    splits.task = "kws"
    kw = {"epochs": 2, "batch_size": 16, "progress": False}
    first = load_or_train("kws", quick=True, splits=splits, **kw)
    assert isinstance(first, TrainedModel) and not first.module.training
    assert first.task == "kws" and first.labels == splits.labels
    assert first.input_shape == (1, 45, 20)
    info = first.info
    assert not info["cached"] and info["model"] == "KwsCNN"
    for k in ("train_acc", "tune_acc", "test_acc", "epochs", "seconds", "hparams", "key"):
        assert k in info
    assert list((tmp_path / "cache" / "models").glob("kws_*.pt"))
    second = load_or_train("kws", quick=True, splits=splits, **kw)
    assert second.info["cached"] and second.info["key"] == info["key"]
    for a, b in zip(_weights(first.module), _weights(second.module), strict=True):
        assert torch.equal(a, b)
    assert evaluate(second.module, splits.test) == pytest.approx(info["test_acc"])
    third = load_or_train("kws", quick=True, splits=splits, seed=1, **kw)
    assert third.info["key"] != info["key"]
    with pytest.raises(ValueError, match="task"):
        load_or_train("asr", splits=splits)
    with pytest.raises(ValueError, match="splits: expected the task's datasets.Splits"):
        load_or_train("kws", None)


@pytest.mark.training
@pytest.mark.parametrize("task, floor", [("har", 0.90), ("kws", 0.90)])
def test_default_models_reach_target_accuracy(task, floor):
    """Held-out (unseen subjects / voices) accuracy of the default models.

    The aims are 0.90 for both; measured with seed 0: HAR 0.933 (width 0.5, asinh inputs,
    test subjects 2, 4, 9, 10, 12), KWS 0.920 (8 epochs over 43,200 clips of the 96 MFLOP
    Honk CNN with time / coefficient masks; unseen synthetic voices). The floors guard against
    regressions below what the data and budget give. Loads the shipped weights; on a cold
    cache without them it trains (HAR ~12 min on one thread of the loaded 2-core box, KWS
    ~23 min on two).
    """
    from mobiprox_lab import datasets

    trained = load_or_train(task, datasets.prepare(task), progress=False)
    print(task, trained.info)
    assert trained.info["test_acc"] >= floor, trained.info


def test_cache_key_ignores_how_long_the_data_took_to_prepare():
    import copy

    from mobiprox_lab.models import data_identity

    splits = _tiny_splits()
    again = copy.copy(splits)
    again.meta = {**splits.meta, "build_s": 123.0}
    splits.meta = {**splits.meta, "build_s": 0.5}
    assert data_identity(splits) == data_identity(again)


def _perturbed(splits, change):
    import copy

    out = copy.deepcopy(splits)
    for name in ("train", "tune", "test"):
        s = getattr(out, name)
        s.x = change(s.x).astype(np.float32)
    return out


def test_weights_survive_last_bit_noise_but_not_a_preprocessing_change():
    """Another CPU gives inputs that differ in the last bits (CI's MFCCs differed by up to
    4e-4 relative): the cache key must not move and the stored statistics must still match;
    a real change of the preprocessing must be caught."""
    from mobiprox_lab.models import data_identity, data_statistics, statistics_mismatch

    splits = _tiny_splits()
    rng = np.random.default_rng(1)
    noisy = _perturbed(splits, lambda x: x * (1 + 4e-7 * rng.standard_normal(x.shape)))
    assert any(not np.array_equal(getattr(noisy, n).x, getattr(splits, n).x)
               for n in ("train", "tune", "test"))
    assert data_identity(noisy) == data_identity(splits)
    stored = data_statistics(splits)
    assert statistics_mismatch(stored, data_statistics(noisy)) is None
    assert statistics_mismatch(stored, stored) is None
    scaled = _perturbed(splits, lambda x: 1.01 * x)  # e.g. another normalisation
    why = statistics_mismatch(stored, data_statistics(scaled))
    assert why is not None and "split" in why
    shifted = _perturbed(splits, lambda x: x + 0.01 * x.std())
    assert statistics_mismatch(stored, data_statistics(shifted)) is not None
    assert "no data statistics" in statistics_mismatch(None, stored)
    relabelled = _perturbed(splits, lambda x: x)
    relabelled.train.y = relabelled.train.y[::-1].copy()
    assert data_identity(relabelled) != data_identity(splits)


def test_shipped_weights_are_used_and_checked(tmp_path, monkeypatch):
    """A shipped weights file with a matching key loads without training; a tampered one
    is refused by its checksum; retrain=True ignores it."""
    from mobiprox_lab import cache, datasets, models

    monkeypatch.setenv("MOBIPROX_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(models.weights, "SHIPPED_DIR", tmp_path / "weights")
    monkeypatch.setattr(models.weights, "SHIPPED_MANIFEST", tmp_path / "weights" / "manifest.json")
    splits = datasets.prepare("har", quick=True)
    trained = models.load_or_train("har", quick=True, splits=splits, epochs=1, progress=False)
    info = dict(trained.info, quick=False)  # ship() refuses quick weights; pretend
    shipped = models.ship(models.TrainedModel(**{**trained.__dict__, "info": info}))
    entry = models.shipped_manifest()[shipped.name]
    assert entry["sha256"] == cache.file_sha256(shipped) and entry["task"] == "har"
    Path(trained.path).unlink()  # nothing cached any more: the shipped file must serve
    again = models.load_or_train("har", quick=True, splits=splits, epochs=1, progress=False)
    assert again.info["shipped"] and again.info["test_acc"] == trained.info["test_acc"]
    for a, b in zip(again.module.state_dict().values(), trained.module.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert not Path(again.path).exists()  # served from the shipped file
    rescaled = _perturbed(splits, lambda x: 1.01 * x)  # same key, other preprocessing
    refit = models.load_or_train("har", quick=True, splits=rescaled, epochs=1, progress=False)
    assert not refit.info["cached"] and refit.path == again.path
    shipped.write_bytes(shipped.read_bytes() + b"tampered")
    Path(again.path).unlink(missing_ok=True)
    with pytest.raises(ValueError, match="SHA-256"):
        models.load_or_train("har", quick=True, splits=splits, epochs=1, progress=False)
    fresh = models.load_or_train("har", quick=True, splits=splits, epochs=1, progress=False,
                                 retrain=True)
    assert not fresh.info["cached"]


def test_cached_model_falls_back_to_the_shipped_weights(tmp_path, monkeypatch):
    """With nothing in the cache, the benchmarks' ``cached_model`` serves the shipped model
    (the same weights ``load_or_train`` uses), not None; quick mode never takes it."""
    from mobiprox_lab import models

    monkeypatch.setenv("MOBIPROX_DATA", str(tmp_path / "data"))
    manifest = models.shipped_manifest()
    name = next(n for n, e in manifest.items() if e["task"] == "har")
    found = models.cached_model("har")
    assert found is not None and Path(found.path) == models.SHIPPED_DIR / name
    blob = torch.load(found.path, map_location="cpu", weights_only=False)
    for a, b in zip(found.module.state_dict().values(), blob["state_dict"].values(),
                    strict=True):
        assert torch.equal(a, b)
    assert models.cached_model("har", quick=True) is None


def test_kws_masks_zero_bounded_bands_and_follow_the_seed():
    from mobiprox_lab.models import training

    x = torch.ones(64, 1, 101, 40)
    out = training._masks(x, torch.Generator().manual_seed(3))
    again = training._masks(x, torch.Generator().manual_seed(3))
    assert torch.equal(out, again) and out.shape == x.shape
    zero = out == 0
    frames = zero.all(dim=3).squeeze(1)  # (64, 101): whole frames masked
    coefs = zero.all(dim=2).squeeze(1)  # (64, 40): whole coefficients masked
    # outside the masked frames and coefficients nothing changes
    assert torch.equal(zero, frames[:, None, :, None] | coefs[:, None, None, :])
    assert int(frames.sum(1).max()) <= 20 and int(coefs.sum(1).max()) <= 10
    assert frames.any() and coefs.any()  # masks are drawn, not all empty


def test_har_augmentation_acts_on_the_axes_behind_the_asinh():
    """Inputs with asinh of the motion channels (datasets.har.model_inputs) augment to the
    asinh of what the linear inputs augment to, with the same draws: the time warp,
    rotation, gain and noise act on the sensor axes, not on their logarithm."""
    from mobiprox_lab.datasets import har
    from mobiprox_lab.models import training

    x = np.random.default_rng(0).normal(size=(6, 9, 128)).astype(np.float32)
    mean, std = np.zeros(9, np.float32), np.ones(9, np.float32)
    linear = torch.from_numpy(har.model_inputs(x, mean, std, asinh_scale=None))
    compressed = torch.from_numpy(har.model_inputs(x, mean, std))
    channels = list(har.MOTION_IMAGE_CHANNELS)
    want = training._augment(linear, "har", torch.Generator().manual_seed(3))
    want[:, channels] = torch.asinh(want[:, channels] / har.MOTION_ASINH_SCALE)
    got = training._augment(compressed, "har", torch.Generator().manual_seed(3),
                            asinh=(har.MOTION_ASINH_SCALE, channels))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert torch.equal(compressed, torch.from_numpy(har.model_inputs(x, mean, std)))  # untouched
    plain = training._augment(compressed, "har", torch.Generator().manual_seed(3))
    assert not torch.allclose(plain, want, atol=1e-2)  # without the inverse: another result
