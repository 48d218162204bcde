"""Profiler: the linear cost model, measured profiles, softmax caches, statistics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mobiprox_lab import cache, profiler
from mobiprox_lab.datasets import Split
from mobiprox_lab.profiler import CostModel
from mobiprox_lab.runtime import ApproxModel


def toy_task(n: int = 240, seed: int = 0):
    """A trained toy network on the real runtime: (ApproxModel, tune Split, test Split).

    Inputs (1, 8, 8): noise plus a horizontal band whose rows encode the class (3 classes),
    so row perforation and sampling hurt it measurably. Trains in about a second.
    (``tests/test_tuner.py`` imports this helper.)
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0.0, 0.9, (n, 1, 8, 8)).astype(np.float32)
    for k in range(3):
        x[y == k, 0, 2 * k + 1:2 * k + 3, 1:7] += 1.0
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(),
                        nn.Flatten(), nn.Linear(144, 3))
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    xt, yt = torch.from_numpy(x[: n // 2]), torch.from_numpy(y[: n // 2])
    for _ in range(120):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    model = ApproxModel(net.eval(), (1, 8, 8), backend="numba")
    half = n // 2
    g = np.zeros(half, np.int64)
    return model, Split(x[:half], y[:half], g), Split(x[half:], y[half:], g)


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBIPROX_DATA", str(tmp_path / "data"))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: torch's intra-op threads only add overhead (a lot on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def toy():
    return toy_task()


# --------------------------------------------------------------------------- cost model


def _ops() -> pd.DataFrame:
    return pd.DataFrame({
        "name": ["c1", "bn", "c2", "fc"],
        "flops": [1000, 60, 3000, 40],
        "knobs": [[11, 12, 121, 151, 231], [11, 12], [11, 12, 125, 137, 261], [11, 12]],
    })


def test_cost_model_by_hand():
    cm = CostModel(_ops())
    assert cm.total_flops == 4100
    assert cm.cost({}) == 4100 and cm.speedup(None) == 1.0
    # c1 perforated stride 2 (x2), bn fp16 (x1.5), c2 stride-4 rows fp32 (x4/3), fc exact
    cfg = {"c1": 121, "bn": 12, "c2": 137}
    expected_cost = 1000 / 2 + 60 / 1.5 + 3000 / (4 / 3) + 40
    assert cm.cost(cfg) == pytest.approx(expected_cost)
    assert cm.speedup(cfg) == pytest.approx(4100 / expected_cost)
    assert cm.fp16_fraction(cfg) == pytest.approx(60 / 4100)
    # fp16 sampling stride 2 (2 x 1.5 = 3) on c2 and fp16 perforation on c1 (3)
    cfg2 = {"c1": 151, "c2": 261, "fc": 12}
    assert cm.cost(cfg2) == pytest.approx(1000 / 3 + 60 + 3000 / 3 + 40 / 1.5)
    assert cm.fp16_fraction(cfg2) == pytest.approx(4040 / 4100)
    K = cm.matrix([{}, cfg, cfg2])
    np.testing.assert_allclose(cm.speedups(K), [1.0, cm.speedup(cfg), cm.speedup(cfg2)])
    np.testing.assert_allclose(cm.fp16_fractions(K), [0.0, 60 / 4100, 4040 / 4100])
    assert cm.sparse({"c1": 11, "c2": 125}) == {"c2": 125}
    assert profiler.predicted_speedup(_ops(), cfg) == pytest.approx(cm.speedup(cfg))


def test_cost_model_rejects_bad_configs():
    cm = CostModel(_ops())
    with pytest.raises(ValueError, match="unknown operator 'nope'"):
        cm.cost({"nope": 11})
    with pytest.raises(ValueError, match=r"config\['bn'\]: knob 121 is not applicable"):
        cm.cost({"bn": 121})
    with pytest.raises(ValueError, match="expected an int knob id"):
        cm.cost({"c1": "121"})
    with pytest.raises(ValueError, match="K: expected an int knob matrix"):
        cm.speedups(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="ops: expected columns"):
        CostModel(pd.DataFrame({"name": ["a"]}))


def test_cost_model_of_the_runtime(toy):
    model, _, _ = toy
    cm = CostModel.of(model)
    assert cm.names == list(model.ops["name"])
    assert cm.total_flops == float(model.ops["flops"].sum())
    assert cm.speedup({"0": 121, "2": 231}) > 1.0
    assert profiler.fp16_fraction(model, {"5": 12}) == pytest.approx(432 / cm.total_flops)


# --------------------------------------------------------------------------- statistics


def test_softmax_stats_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
    y = np.array([0, 1, 1, 0])
    s = profiler.softmax_stats(probs, y)
    assert s["accuracy"] == 50.0
    assert s["conf_mean"] == pytest.approx((0.7 + 0.6 + 0.5 + 0.6) / 4)
    assert s["conf_correct"] == pytest.approx(0.65)
    assert s["conf_wrong"] == pytest.approx(0.55)
    assert s["acc_class"] == [50.0, 50.0, pytest.approx(np.nan, nan_ok=True)]
    # by predicted class: class 0 predicted twice (0.7 right, 0.5 wrong)
    assert s["conf_correct_class"][0] == pytest.approx(0.7)
    assert s["conf_wrong_class"][0] == pytest.approx(0.5)
    assert np.isnan(s["conf_wrong_class"][1]) and s["conf_wrong_class"][2] == pytest.approx(0.6)


# --------------------------------------------------------------------------- profiling


def test_profile_columns_and_exact_row(toy):
    model, tune, _ = toy
    configs = [{}, {"0": 121}, {"2": 231, "5": 12}]
    df = profiler.profile(model, configs, tune, batch_size=16, warmup=1, repeats=2,
                          progress=False)
    assert list(df["name"]) == ["conf0", "conf1", "conf2"]
    for col in ("config", "predicted_speedup", "fp16_fraction", "latency_s", "latency_std_s",
                "emulated_latency_s",
                "speedup", "accuracy", "qos_loss", "agreement", "conf_mean", "conf_correct",
                "conf_wrong", "acc_c0", "qos_loss_c2", "conf_correct_c1", "conf_wrong_c2",
                "rel_inference_energy", "rel_system_energy", "energy_j", "energy_source"):
        assert col in df, col
    exact = df.iloc[0]
    assert exact["speedup"] == 1.0 and exact["qos_loss"] == 0.0
    assert exact["predicted_speedup"] == 1.0 and exact["rel_inference_energy"] == 1.0
    assert exact["accuracy"] > 80.0
    assert df.loc[1, "config"] == {"0": 121}
    assert df.loc[2, "fp16_fraction"] > 0
    assert (df["latency_s"] > 0).all() and (df["agreement"] >= 0.9).all()
    assert set(df["energy_source"]) <= {"model", "rapl"}
    cc, cw = profiler.confidence_arrays(df)
    assert cc.shape == cw.shape == (3, 3) and not np.isnan(cc).any() and not np.isnan(cw).any()
    assert profiler.per_class(df, "acc").shape == (3, 3)
    np.testing.assert_allclose(profiler.per_class(df, "qos_loss")[0], 0.0)


def test_profile_is_cached_and_resumable(toy, monkeypatch):
    model, tune, _ = toy
    configs = [{}, {"0": 123}, {"2": 233}]
    real_run = model.run
    calls = []

    def failing_run(x, config=None, *, backend=None):
        calls.append(config)
        vec = config if isinstance(config, tuple) else tuple(model.validate_config(config).values())
        if 233 in vec:
            raise KeyboardInterrupt  # "killed" while profiling the last configuration
        return real_run(x, config, backend=backend)

    monkeypatch.setattr(model, "run", failing_run)
    with pytest.raises(KeyboardInterrupt):
        profiler.profile(model, configs, tune, batch_size=8, warmup=1, repeats=1, progress=False)
    rows = list(cache.cache_dir("profiles").rglob("row-*.json"))
    assert len(rows) == 2  # the finished ones survived
    monkeypatch.setattr(model, "run", real_run)
    first = profiler.profile(model, configs, tune, batch_size=8, warmup=1, repeats=1,
                             progress=False)
    assert len(list(cache.cache_dir("profiles").rglob("row-*.json"))) == 3

    def no_run(*a, **k):
        raise AssertionError("a cached profile must not run the model")

    monkeypatch.setattr(model, "run", no_run)
    again = profiler.profile(model, configs, tune, batch_size=8, warmup=1, repeats=1,
                             progress=False)
    pd.testing.assert_frame_equal(first, again)


def test_fp16_configurations_are_timed_as_their_fp32_twin(toy, monkeypatch):
    model, tune, _ = toy
    assert profiler.fp32_twin({"0": 151, "1": 12, "2": 263, "5": 11}) == \
        {"0": 121, "1": 11, "2": 233, "5": 11}
    real_run = model.run
    numba_calls = []

    def recording_run(x, config=None, *, backend=None):
        if backend == "numba":
            numba_calls.append(model.validate_config(config)["0"])
        return real_run(x, config, backend=backend)

    monkeypatch.setattr(model, "run", recording_run)
    df = profiler.profile(model, [{"0": 151}], tune, batch_size=8, warmup=1, repeats=2,
                          progress=False)
    # exact: 1 warm-up + 2 timed; fp16 config: twin 121 warm-up + 2 timed, then 151 once
    assert numba_calls == [11, 11, 11, 121, 121, 121, 151]
    assert df.loc[0, "emulated_latency_s"] > 0 and df.loc[0, "agreement"] >= 0.9
    assert df.loc[0, "fp16_fraction"] > 0


def test_profile_accepts_a_config_table_and_validates(toy):
    model, tune, _ = toy
    table = pd.DataFrame({"name": ["a", "b"], "config": [{"0": 12}, json.dumps({"2": 12})]})
    df = profiler.profile(model, table, tune, batch_size=4, warmup=0, repeats=1, progress=False)
    assert list(df["name"]) == ["a", "b"] and df.loc[1, "config"] == {"2": 12}
    with pytest.raises(ValueError, match="configs: expected a list"):
        profiler.profile(model, {"0": 12}, tune, progress=False)
    with pytest.raises(ValueError, match="batch_size: expected an int >= 1"):
        profiler.profile(model, [{}], tune, batch_size=0, progress=False)
    with pytest.raises(ValueError, match=r"data.y: expected int class indices"):
        profiler.profile(model, [{}], (tune.x, tune.y[:3]), progress=False)
    with pytest.raises(ValueError, match="knob 121 is not applicable"):
        profiler.profile(model, [{"1": 121}], tune, progress=False)


def test_profile_probs_matches_predict_proba_and_caches(toy):
    model, tune, _ = toy
    configs = [{}, {"0": 231}]
    probs = profiler.profile_probs(model, configs, tune.x, progress=False)
    assert probs.shape == (2, len(tune), 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs[1], model.predict_proba(tune.x, configs[1],
                                                             backend="reference"), atol=1e-6)
    assert len(list(cache.cache_dir("profiles").rglob("probs-*.npz"))) == 2
    np.testing.assert_array_equal(profiler.profile_probs(model, configs, tune.x,
                                                         progress=False), probs)


def test_fingerprint_follows_the_weights(toy):
    model, _, _ = toy
    fp = profiler.model_fingerprint(model)
    assert fp == profiler.model_fingerprint(model) and len(fp) == 16
    other, _, _ = toy_task(seed=1)
    assert profiler.model_fingerprint(other) != fp
