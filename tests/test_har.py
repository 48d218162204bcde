"""HAR data: the UCI loader on fixture trees, the watch alternative, ImuWindows marks,
splits, signal image. (The HAPT default is tested in test_hapt.py.)"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from mobiprox_lab.datasets import Splits, har

# ---------------------------------------------------------------- UCI fixture trees


def _value(c: int, i: int, t: np.ndarray) -> np.ndarray:
    """The value written at channel c, window i, sample t of the fixture."""
    return c * 1000.0 + i + t / 1000.0


def write_uci(root: Path, split: str, subjects: list[int], labels: list[int]) -> Path:
    """A tiny UCI HAR Dataset tree: one window per (subject, label) pair, in that order."""
    folder = root / split / "Inertial Signals"
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(128)
    n = len(subjects)
    for c, name in enumerate(har.CHANNELS):
        lines = ["".join(f" {v: .7e}" for v in _value(c, i, t)) for i in range(n)]
        (folder / f"{name}_{split}.txt").write_text("\n".join(lines) + "\n")
    (root / split / f"y_{split}.txt").write_text("".join(f"{y}\n" for y in labels))
    (root / split / f"subject_{split}.txt").write_text("".join(f"{s}\n" for s in subjects))
    return root


@pytest.fixture
def uci_root(tmp_path: Path) -> Path:
    root = tmp_path / "UCI HAR Dataset"
    # train: 3 subjects x all 6 activities; test: 2 subjects x all 6 activities
    write_uci(root, "train", [s for s in (1, 3, 5) for _ in range(6)], [1, 2, 3, 4, 5, 6] * 3)
    write_uci(root, "test", [s for s in (2, 4) for _ in range(6)], [6, 5, 4, 3, 2, 1] * 2)
    return root


def test_load_uci_layout_and_channel_order(uci_root: Path) -> None:
    ds = har.load_uci_har(uci_root, "train")
    assert ds.x.shape == (18, 9, 128) and ds.x.dtype == np.float32
    assert ds.y.dtype == np.int64 and ds.subject.dtype == np.int64
    t = np.arange(128)
    for i in (0, 7, 17):
        for c in range(9):
            np.testing.assert_allclose(ds.x[i, c], _value(c, i, t), rtol=1e-6)
    np.testing.assert_array_equal(ds.y, np.tile(np.arange(6), 3))
    np.testing.assert_array_equal(ds.subject, np.repeat([1, 3, 5], 6))
    np.testing.assert_array_equal(ds.recording, ds.subject)
    np.testing.assert_array_equal(ds.order, np.tile(np.arange(6), 3))
    assert ds.labels == har.UCI_LABELS
    test = har.load_uci_har(uci_root, "test")
    assert len(test) == 12 and test.y[0] == 5


def test_load_uci_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="^root: .*nowhere: no such folder"):
        har.load_uci_har(tmp_path / "nowhere", "train")
    with pytest.raises(FileNotFoundError, match="^root: .*Inertial Signals: missing folder"):
        har.load_uci_har(tmp_path, "train")
    with pytest.raises(ValueError, match="^root: expected the path"):
        har.load_uci_har("", "train")
    with pytest.raises(ValueError, match="split: expected"):
        har.load_uci_har(tmp_path, "valid")


def test_load_uci_missing_file(uci_root: Path) -> None:
    (uci_root / "train" / "Inertial Signals" / "body_gyro_z_train.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"^root: .*body_gyro_z_train\.txt: missing file"):
        har.load_uci_har(uci_root, "train")


def test_load_uci_wrong_column_count(uci_root: Path) -> None:
    path = uci_root / "train" / "Inertial Signals" / "total_acc_y_train.txt"
    lines = path.read_text().splitlines()
    lines[2] = " ".join(lines[2].split()[:127])  # one value short on line 3
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"^root: .*total_acc_y_train\.txt.*line 3.*expected 128"):
        har.load_uci_har(uci_root, "train")
    path.write_text("\n".join(" ".join(ln.split()[:100]) for ln in lines) + "\n")
    with pytest.raises(ValueError, match=r"total_acc_y_train\.txt.*expected 128"):
        har.load_uci_har(uci_root, "train")
    path.write_text("1.0 abc\n")
    with pytest.raises(ValueError, match="^root: .*malformed"):
        har.load_uci_har(uci_root, "train")


def test_load_uci_mismatched_counts(uci_root: Path) -> None:
    path = uci_root / "train" / "Inertial Signals" / "body_acc_z_train.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"^root: .*body_acc_z_train\.txt: expected 18 windows"):
        har.load_uci_har(uci_root, "train")

    root = write_uci(uci_root.parent / "b", "train", [1, 1], [1, 2])
    (root / "train" / "y_train.txt").write_text("1\n")
    with pytest.raises(ValueError, match=r"^root: .*y_train\.txt: expected 2 lines"):
        har.load_uci_har(root, "train")
    (root / "train" / "y_train.txt").write_text("1\n7\n")
    with pytest.raises(ValueError, match=r"^root: .*y_train\.txt: line 2: expected a label in 1"):
        har.load_uci_har(root, "train")
    (root / "train" / "y_train.txt").write_text("1\n2\n")
    (root / "train" / "subject_train.txt").write_text("1\n1\n1\n")
    with pytest.raises(ValueError, match=r"subject_train\.txt: expected 2 lines"):
        har.load_uci_har(root, "train")


def test_prepare_uci(uci_root: Path) -> None:
    s = har.prepare(root=uci_root)
    assert isinstance(s, Splits) and s.task == "har" and s.labels == har.UCI_LABELS
    assert s.input_shape == (3, 32, 32)
    assert (len(s.train), len(s.tune), len(s.test)) == (12, 6, 12)
    assert set(s.test.group.tolist()) == {2, 4}
    assert not set(s.train.group.tolist()) & set(s.tune.group.tolist())
    for part in (s.train, s.tune, s.test):
        assert part.x.dtype == np.float32 and part.y.dtype == np.int64
        assert set(part.y.tolist()) == set(range(6))
    assert s.meta["source"] == "uci" and s.meta["standardisation"]["mean"].shape == (9,)


# ---------------------------------------------------------------- pure transforms


def test_signal_image_mapping_on_coded_input() -> None:
    t = np.arange(128)
    x = np.stack([t * 10 + c for c in range(9)])[None].astype(np.float32)  # x[c, t] = 10t + c
    x = np.concatenate([x, x + 0.5])
    img = har.signal_image(x)
    assert img.shape == (2, 3, 32, 32) and img.dtype == np.float32
    axes = [0, 1, 2, 1, 0, 2, 0, 1]  # x, y, z, y, x, z, x, y
    for s in range(3):
        for r in range(32):
            block, axis = divmod(r, 8)
            expect = (32 * block + np.arange(32)) * 10 + 3 * s + axes[axis]
            np.testing.assert_array_equal(img[0, s, r], expect)
    np.testing.assert_array_equal(img[1], img[0] + 0.5)
    # spot checks of the documented layout
    np.testing.assert_array_equal(img[0, 0, 0], t[:32] * 10)  # body_acc x, samples 0-31
    np.testing.assert_array_equal(img[0, 1, 3], t[:32] * 10 + 4)  # body_gyro y
    np.testing.assert_array_equal(img[0, 2, 13], t[32:64] * 10 + 8)  # total_acc z, 32-63
    np.testing.assert_array_equal(img[0, 0, 31], t[96:] * 10 + 1)  # body_acc y, 96-127
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 9, 128\)"):
        har.signal_image(np.zeros((1, 6, 128)))


def test_sliding_windows_count_and_content() -> None:
    for n in (128, 129, 191, 192, 1000, 2618):
        a = np.arange(n * 2).reshape(n, 2)
        w = har.sliding_windows(a)
        assert w.shape == (1 + (n - 128) // 64, 2, 128)
        i = len(w) - 1
        np.testing.assert_array_equal(w[i], a[64 * i:64 * i + 128].T)
    assert har.sliding_windows(np.zeros((100, 3))).shape == (0, 3, 128)


def test_split_gravity_separates_slow_and_fast() -> None:
    fs, n = 50.0, 3000
    t = np.arange(n) / fs
    gravity = np.array([0.2, -0.9, 0.4])
    motion = 0.3 * np.sin(2 * np.pi * 3.0 * t)[:, None] * np.array([1.0, 0.5, -1.0])
    total = gravity + motion
    body, grav = har.split_gravity(total)
    np.testing.assert_allclose(body + grav, total, atol=1e-12)
    mid = slice(500, -500)
    np.testing.assert_allclose(grav[mid], np.broadcast_to(gravity, grav[mid].shape), atol=2e-3)
    np.testing.assert_allclose(body[mid], motion[mid], atol=2e-3)
    with pytest.raises(ValueError, match="cutoff_hz"):
        har.split_gravity(total, cutoff_hz=30.0)


def test_standardisation_and_model_inputs() -> None:
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(50, 9, 128)) * np.arange(1, 10)[:, None] + 3).astype(np.float32)
    mean, std = har.fit_standardisation(x)
    assert mean.shape == std.shape == (9,)
    z = har.model_inputs(x, mean, std, asinh_scale=None)
    assert z.shape == (50, 3, 32, 32)
    raw = (x - mean[:, None]) / std[:, None]
    np.testing.assert_allclose(raw.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(z, har.signal_image(raw), atol=1e-6)
    with pytest.raises(ValueError, match="mean, std"):
        har.model_inputs(x, mean, None)


def test_model_inputs_compress_the_motion_channels_only() -> None:
    """By default the body_acc and body_gyro image channels hold asinh(v / 0.05) of the
    standardised values, total_acc stays linear; a small motion (0.01, a still posture)
    stays nearly linear while a stride (3.0) is compressed ~12x."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 9, 128)).astype(np.float32)
    mean, std = np.zeros(9, np.float32), np.ones(9, np.float32)
    linear = har.model_inputs(x, mean, std, asinh_scale=None)
    z = har.model_inputs(x, mean, std)
    assert har.MOTION_IMAGE_CHANNELS == (0, 1) and har.MOTION_ASINH_SCALE == 0.05
    np.testing.assert_allclose(z[:, :2], np.arcsinh(linear[:, :2] / 0.05), rtol=1e-6)
    np.testing.assert_array_equal(z[:, 2], linear[:, 2])
    assert z.dtype == np.float32
    levels = np.stack([np.full((9, 128), 0.01), np.full((9, 128), 3.0)]).astype(np.float32)
    small, stride = har.model_inputs(levels)[:, 0, 0, 0]
    assert small == pytest.approx(np.arcsinh(0.2), rel=1e-5)  # ~linear: 0.199 vs 0.2
    assert stride == pytest.approx(np.arcsinh(60.0), rel=1e-5)  # 4.79 instead of 60
    for bad in (0, -0.05, float("nan"), "0.05"):
        with pytest.raises(ValueError, match="asinh_scale"):
            har.model_inputs(x, mean, std, asinh_scale=bad)


def test_prepared_splits_record_the_input_transform_for_the_trainer() -> None:
    """prepare()'s meta carries what models.train needs to undo the transform around the
    augmentation; the flat keys also enter the weights' cache key (data_identity)."""
    from mobiprox_lab.models.weights import data_identity

    splits = har.prepare(quick=True)
    assert splits.meta["asinh_scale"] == har.MOTION_ASINH_SCALE
    assert tuple(splits.meta["asinh_image_channels"]) == har.MOTION_IMAGE_CHANNELS
    meta = data_identity(splits)["meta"]
    assert meta["asinh_scale"] == 0.05 and list(meta["asinh_image_channels"]) == [0, 1]


# ---------------------------------------------------------------- the watch alternative


@pytest.fixture(scope="module")
def watch_env(tmp_path_factory):
    """An isolated cache folder for this module's watch conversions."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOBIPROX_DATA", str(tmp_path_factory.mktemp("har_data")))
        yield


@pytest.fixture(scope="module")
def watch(watch_env) -> har.ImuWindows:
    return har.load_watch()


@pytest.fixture(scope="module")
def raw_watch() -> dict:
    from seglearn.datasets import load_watch

    return load_watch()


def test_watch_shapes_and_labels(watch: har.ImuWindows, raw_watch: dict) -> None:
    assert watch.x.ndim == 3 and watch.x.shape[1:] == (9, 128)
    assert watch.x.dtype == np.float32 and watch.y.dtype == np.int64
    assert watch.labels == tuple(raw_watch["y_labels"])
    assert len(watch.labels) == 7
    assert set(np.unique(watch.subject).tolist()) == set(np.unique(raw_watch["subject"]).tolist())
    lengths = np.array([len(r) for r in raw_watch["X"]])
    per_rec = np.bincount(watch.recording, minlength=len(lengths))
    np.testing.assert_array_equal(per_rec, 1 + (lengths - 128) // 64)
    for r in (0, 57, 139):
        sel = watch.recording == r
        assert np.all(watch.y[sel] == raw_watch["y"][r])
        assert np.all(watch.subject[sel] == raw_watch["subject"][r])
        np.testing.assert_array_equal(watch.order[sel], np.arange(sel.sum()))


def test_watch_channels_and_gravity(watch: har.ImuWindows, raw_watch: dict) -> None:
    r = 5
    rec = raw_watch["X"][r]
    _, gravity = har.split_gravity(rec[:, :3])
    wins = watch.x[watch.recording == r]
    for i in (0, len(wins) // 2, len(wins) - 1):
        seg = slice(64 * i, 64 * i + 128)
        np.testing.assert_allclose(wins[i, 6:9], rec[seg, :3].T, atol=1e-6)  # total = accel
        np.testing.assert_allclose(wins[i, 3:6], rec[seg, 3:].T, atol=1e-6)  # gyro
        # body + gravity = total
        np.testing.assert_allclose(wins[i, 0:3] + gravity[seg].T, wins[i, 6:9], atol=1e-5)
    # gravity is slow: the body part of total acceleration has (almost) zero mean
    assert np.abs(watch.x[:, 0:3].mean()) < 0.02
    assert 0.8 < np.linalg.norm(watch.x[:, 6:9].mean(axis=2), axis=1).mean() < 1.3  # ~1 g


def test_watch_cache_is_fast_and_identical(watch: har.ImuWindows) -> None:
    start = time.perf_counter()
    again = har.load_watch()
    assert time.perf_counter() - start < 1.0
    assert Path(again.meta["cache_path"]).is_file()
    np.testing.assert_array_equal(again.x, watch.x)
    np.testing.assert_array_equal(again.recording, watch.recording)


def test_split_by_subject(watch: har.ImuWindows) -> None:
    train, tune, test = har.split_by_subject(watch, tune=2, test=2, seed=0)
    groups = [set(p.subject.tolist()) for p in (train, tune, test)]
    assert [len(g) for g in groups] == [6, 2, 2]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert len(train) + len(tune) + len(test) == len(watch)
    for p in (train, tune, test):
        assert np.all(p.class_counts() > 0)
    again = har.split_by_subject(watch, tune=2, test=2, seed=0)
    assert [a.meta["subjects"] for a in again] == [p.meta["subjects"] for p in (train, tune, test)]
    other = har.split_by_subject(watch, tune=2, test=2, seed=1)
    assert other[2].meta["subjects"] != test.meta["subjects"]
    with pytest.raises(ValueError, match="tune \\+ test"):
        har.split_by_subject(watch, tune=5, test=5)


def test_prepare_watch(watch_env) -> None:
    s = har.prepare(source="watch")
    assert s.task == "har" and s.n_classes == 7 and s.input_shape == (3, 32, 32)
    groups = [set(p.group.tolist()) for p in (s.train, s.tune, s.test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    for p in (s.train, s.tune, s.test):
        assert p.x.dtype == np.float32 and p.x.flags.c_contiguous
        assert set(p.y.tolist()) == set(range(7))
    st = s.meta["standardisation"]
    w = s.meta["windows"]["test"]
    assert len(w["subject"]) == len(s.test)
    np.testing.assert_array_equal(w["subject"], s.test.group)
    # the training inputs are standardised: ~zero mean per image channel, once the asinh
    # of the motion channels is undone
    linear = s.train.x.copy()
    linear[:, :2] = np.sinh(linear[:, :2]) * har.MOTION_ASINH_SCALE
    np.testing.assert_allclose(linear.mean(axis=(0, 2, 3)), 0, atol=1e-3)
    ds = har.load_watch()
    sel = np.flatnonzero(np.isin(ds.subject, s.meta["subjects"]["test"]))
    np.testing.assert_allclose(har.model_inputs(ds.subset(sel), st["mean"], st["std"]),
                               s.test.x, atol=1e-6)
    quick = har.prepare(quick=True, source="watch")
    for name in ("train", "tune", "test"):
        counts = np.bincount(getattr(quick, name).y, minlength=7)
        assert np.all(counts > 0) and np.all(counts <= har.QUICK_PER_CLASS[name])
    for name in ("train", "tune", "test"):
        assert set(quick.meta["subjects"][name]) <= set(s.meta["subjects"][name])


def test_prepare_source_validation(uci_root: Path) -> None:
    with pytest.raises(ValueError, match="source: expected"):
        har.prepare(source="phone")
    with pytest.raises(ValueError, match="root: expected the UCI HAR Dataset folder"):
        har.prepare(source="uci")
    with pytest.raises(ValueError, match="root: expected"):
        har.prepare(root=uci_root, source="watch")


# ---------------------------------------------------------------- ImuWindows marks


def test_imu_windows_marks_and_start() -> None:
    x = np.zeros((4, 9, 128), np.float32)
    ds = har.ImuWindows(x, [0, -1, -1, 5], [1] * 4, [1] * 4, np.arange(4), har.UCI_LABELS,
                        start=[0, 64, 128, 192], mark=[0, 1, 2, 0])
    np.testing.assert_array_equal(ds.labelled, [True, False, False, True])
    np.testing.assert_array_equal(ds.class_counts(), [1, 0, 0, 0, 0, 1])
    sub = ds.subset(np.array([1, 3]))
    np.testing.assert_array_equal(sub.mark, [1, 0])
    np.testing.assert_array_equal(sub.start, [64, 192])
    plain = har.ImuWindows(x, [0] * 4, [1] * 4, [1] * 4, np.arange(4), har.UCI_LABELS)
    assert np.all(plain.start == -1) and np.all(plain.mark == 0)
    with pytest.raises(ValueError, match="y: expected values in"):
        har.ImuWindows(x, [0, -1, 0, 0], [1] * 4, [1] * 4, np.arange(4), har.UCI_LABELS)
    with pytest.raises(ValueError, match="y: expected -1 for marked"):
        har.ImuWindows(x, [0, 1, 0, 0], [1] * 4, [1] * 4, np.arange(4), har.UCI_LABELS,
                       mark=[0, 1, 0, 0])
    with pytest.raises(ValueError, match="mark: expected"):
        har.ImuWindows(x, [0] * 4, [1] * 4, [1] * 4, np.arange(4), har.UCI_LABELS,
                       mark=[0, 3, 0, 0])


def _fake(subject_counts: dict[int, list[int]]) -> har.ImuWindows:
    """ImuWindows with, per subject, the given number of windows of each class."""
    ys, subs = [], []
    for s, counts in subject_counts.items():
        for k, n in enumerate(counts):
            ys += [k] * n
            subs += [s] * n
    n = len(ys)
    return har.ImuWindows(np.zeros((n, 9, 128), np.float32), ys, subs, subs, np.arange(n),
                          ("a", "b"))


def test_hapt_tune_test_subjects_balance_and_classes() -> None:
    ds = _fake({2: [5, 5], 4: [5, 5], 9: [10, 0], 10: [0, 10], 12: [3, 3]})
    tune, test = har.hapt_tune_test_subjects(ds, candidates=[2, 4, 9, 10, 12])
    assert sorted(tune + test) == [2, 4, 9, 10, 12] and not set(tune) & set(test)
    n = {s: int(np.sum(ds.subject == s)) for s in (2, 4, 9, 10, 12)}
    assert abs(sum(n[s] for s in tune) - sum(n[s] for s in test)) <= 6
    for part in (tune, test):  # both classes in both parts
        assert set(ds.y[np.isin(ds.subject, part)].tolist()) == {0, 1}
    assert har.hapt_tune_test_subjects(ds, candidates=[2, 4, 9, 10, 12]) == (tune, test)
    with pytest.raises(ValueError, match="candidates: no split"):
        har.hapt_tune_test_subjects(_fake({1: [3, 0], 2: [0, 3]}), candidates=[1, 2])
