"""The evaluation protocol on a hand-built setup: baselines in every table, tune-only
fitting, intervals over units, the headline's keys, the energy accounting check."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from mobiprox_lab.datasets import Split
from mobiprox_lab.datasets.traces import Trace
from mobiprox_lab.orchestration import experiments


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def _setup(n_configs=4, n_classes=3, seed=0):
    """Configs get noisier with the index; tune and pool share no inputs."""
    rng = np.random.default_rng(seed)

    def probs_for(y):
        clean = np.eye(n_classes)[y] * 4.0
        return _softmax(np.stack([clean + rng.normal(0, 0.6 + 0.9 * i, clean.shape)
                                  for i in range(n_configs)]))

    y_tune = rng.integers(0, n_classes, 300)
    y_pool = rng.integers(0, n_classes, 200)
    # test inputs are the logits themselves (the "network" flattens them): subject 1 right
    # on all 30, subject 2 on 10 of 20
    y_test = np.arange(50) % n_classes
    logits = np.eye(n_classes, dtype=np.float32)[y_test]
    logits[40:] = np.eye(n_classes, dtype=np.float32)[(y_test[40:] + 1) % n_classes]
    splits = SimpleNamespace(tune=Split(np.zeros((300, 1, 1, 1), np.float32), y_tune,
                                        np.zeros(300, np.int64)),
                             test=Split(logits[:, :, None, None], y_test,
                                        np.r_[np.ones(30), np.full(20, 2)].astype(np.int64)),
                             labels=tuple("abc"))
    configs = pd.DataFrame({"name": [f"conf{i}" for i in range(n_configs)],
                            "speedup": np.linspace(1, 1.6, n_configs),
                            "predicted_speedup": np.linspace(1, 1.7, n_configs),
                            "speedup_b1": np.linspace(1, 0.9, n_configs),
                            "qos_loss_test": np.linspace(0, 3, n_configs)})
    setup = experiments.TaskSetup(
        task="har", trained=SimpleNamespace(
            module=torch.nn.Flatten(), info={"train_acc": 0.95, "tune_acc": 0.9,
                                             "test_acc": 0.8}), tuned=None, model=None,
        splits=splits, configs=configs,
        relative_energy=np.linspace(1, 1.6, n_configs) ** -1.3,
        # alone (batch 1) the approximate configurations run slower than exact
        relative_energy_b1=np.linspace(1, 0.9, n_configs) ** -1.3,
        shares={"continuous": 1.0, "duty_cycled": 0.05}, tune_probs=probs_for(y_tune),
        temperature=1.5)
    pool_probs = probs_for(y_pool)
    return setup, y_pool, pool_probs


def _trace(y_pool, steps=600, seed=0, unlabelled=0.1):
    rng = np.random.default_rng(seed)
    runs = np.repeat(rng.integers(0, len(y_pool), steps // 20), 20)  # persistent inputs
    y = y_pool[runs].copy()
    mark = (rng.random(len(y)) < unlabelled).astype(np.int64)  # transitions
    y[mark == 1] = -1  # scored by agreement with the exact model only
    return Trace("har_day", np.arange(len(runs)) * 1.28, y, np.zeros(len(runs)), runs,
                 np.zeros((len(y_pool), 1), np.float32), tuple("abc"), ("x",), mark=mark)


def test_suite_has_every_baseline_and_tune_fitted_confidence():
    setup, _, _ = _setup()
    suite = experiments.controller_suite(setup)
    names = list(suite)
    assert "none (exact)" in names and "oracle (matches exact)" in names
    assert [f"static conf{i}" for i in range(1, 4)] == [n for n in names if n.startswith("static")]
    fitted = [n for n in names if "fitted" in n]
    assert len(fitted) == 2 and all(suite[n][1] == 1.5 for n in fitted)
    for t in experiments.AUTHORS_TEMPERATURES:
        assert f"confidence x1 T={t:g}" in names
    # the confidence tables are the tune split's, at the controller's temperature
    cc, cw = setup.confidence_tables(1.5)
    ctrl = suite["confidence x2 T=1.50 (fitted)"][0]
    np.testing.assert_allclose(ctrl.conf_correct, np.where(np.isnan(cc), ctrl.conf_correct, cc))


@pytest.mark.parametrize("n_configs,factors", [(2, ["x1"]), (3, ["x1"]), (4, ["x1", "x2"])])
def test_suite_runs_factor_2_only_where_it_can_differ(n_configs, factors):
    """With three configurations or fewer, a doubled step lands where a step of 1 does (it
    is capped at the last one): the x2 controllers would repeat the x1 rows, so the suite
    leaves them out; with four they differ."""
    setup, y_pool, pool_probs = _setup(n_configs=n_configs)
    suite = experiments.controller_suite(setup)
    stepping = [n for n in suite if experiments._kind(n) == "controller"]
    assert sorted({n.split()[1] for n in stepping}) == factors
    assert all(f"{e} x1" in suite for e in experiments.STEPPING_ENGINES)
    if n_configs == 4:  # where both run, they differ
        trace = _trace(y_pool)
        table, _ = experiments.run_controllers(setup, trace, pool_probs[:, trace.pool_index])
        by = table.set_index("controller")
        assert not by.loc[[n for n in stepping if " x1" in n]].reset_index(drop=True).equals(
            by.loc[[n for n in stepping if " x2" in n]].reset_index(drop=True))


def test_run_controllers_rows_and_baselines():
    setup, y_pool, pool_probs = _setup()
    trace = _trace(y_pool)
    table, results = experiments.run_controllers(setup, trace, pool_probs[:, trace.pool_index],
                                                 unit="seed=0")
    by = table.set_index("controller")
    assert by.loc["none (exact)", "loss_pp"] == 0.0
    assert by.loc["none (exact)", "saving_continuous"] == 0.0
    assert by.loc["oracle (matches exact)", "loss_pp"] == 0.0
    # the oracle saves at least as much as any controller with no loss
    lossless = table[(table["loss_pp"] == 0) & (table["kind"] != "oracle")]
    assert (by.loc["oracle (matches exact)", "saving_continuous"]
            >= lossless["saving_continuous"].max() - 1e-12)
    # statics: their own point is on or above the time-share frontier
    statics = table[table["kind"] == "static"]
    assert (statics["timeshare_energy"] <= statics["relative_inference_energy"] + 1e-12).all()
    # duty-cycled: one inference per window runs alone, at its batch-1 energy, times the share
    for name, res in results.items():
        expected = 0.05 * (1 - setup.relative_energy_b1[res.index].mean())
        assert by.loc[name, "saving_duty_cycled"] == pytest.approx(expected)
    assert by.loc["static conf3", "saving_duty_cycled"] < 0 < by.loc["static conf3",
                                                                     "saving_continuous"]
    # accuracy on labelled steps only: none (exact) has zero accuracy loss
    assert by.loc["none (exact)", "accuracy_loss_pp"] == 0.0
    y = trace.y
    res = results["static conf3"]
    assert by.loc["static conf3", "accuracy"] == pytest.approx(
        np.mean(res.pred[y >= 0] == y[y >= 0]))
    # controllers move: the degenerate "never switches" would be a bug
    assert by.loc["state x1", "switches"] > 0


def test_aggregate_intervals_and_headline():
    setup, y_pool, pool_probs = _setup()
    frames = []
    for seed in range(3):
        trace = _trace(y_pool, seed=seed)
        frames.append(experiments.run_controllers(
            setup, trace, pool_probs[:, trace.pool_index], unit=f"seed={seed}")[0])
    agg = experiments.aggregate(pd.concat(frames))
    assert (agg["n_units"] == 3).all()
    ok = agg.dropna(subset=["saving_continuous_lo"])
    assert ((ok["saving_continuous_lo"] <= ok["saving_continuous"] + 1e-12)
            & (ok["saving_continuous"] <= ok["saving_continuous_hi"] + 1e-12)).all()
    head = experiments.headline({"har": setup}, {"har_day": agg})
    h = head["har"]
    assert h["n_configs"] == 4 and h["relative_energy"][0] == 1.0
    # test accuracy measured in the run, its interval over the two test subjects
    assert h["test_accuracy"] == pytest.approx(40 / 50) and h["test_groups"] == 2
    lo, hi = h["test_accuracy_ci"]
    assert 10 / 20 <= lo < 40 / 50 < hi <= 1.0
    # tune and test together (the paper's pool): the flattened zeros of tune call class 0
    tune_hits = int((setup.splits.tune.y == 0).sum())
    assert h["held_out_accuracy"] == pytest.approx((40 + tune_hits) / 350)
    assert h["held_out_groups"] == 3
    lo, hi = h["held_out_accuracy_ci"]
    assert lo <= h["held_out_accuracy"] <= hi
    assert (h["train_accuracy"], h["tune_accuracy"]) == (0.95, 0.9)
    assert h["cost_model_median_error"] == pytest.approx(
        np.median(np.abs(setup.configs["predicted_speedup"] - setup.configs["speedup"])
                  / setup.configs["speedup"]))
    t = h["traces"]["har_day"]
    best = experiments.best_controller(agg)
    if best is None:
        assert t["best_controller"] is None
    else:
        assert t["best_controller"] == best["controller"] and t["loss_pp"] <= 1.0
        assert len(t["saving_continuous_ci"]) == 2


def test_energy_accounting_check_is_exact():
    table = experiments.energy_accounting_check()
    assert len(table) == 3 and (table["abs_error"] < 1e-12).all()


def test_har_traces_replay_test_subjects_only():
    """Controllers are fitted on the tune split; every trace they are judged on holds only
    held-out test subjects' windows (no leakage)."""
    from mobiprox_lab import datasets

    splits = datasets.prepare("har", quick=True)
    tune_subjects = set(np.unique(splits.tune.group).tolist())
    test_subjects = set(np.unique(splits.test.group).tolist())
    assert tune_subjects and test_subjects and not tune_subjects & test_subjects
    setup = SimpleNamespace(task="har", splits=splits, traces={})
    units = experiments.trace_units("har_sessions", setup)
    assert [u["subject"] for u in units] == sorted(test_subjects)
    for unit in units[:2]:
        trace = experiments.build_trace("har_sessions", setup, quick=True, **unit)
        assert set(trace.meta["subjects"]) <= test_subjects
    day = experiments.build_trace("har_day", setup, quick=True, seed=0)
    test_rows = {row.tobytes() for row in splits.test.x}
    assert all(row.tobytes() in test_rows for row in day.pool_x[np.unique(day.pool_index)])


def test_controller_tables_cover_every_trace_once_per_setup(monkeypatch):
    """The pipeline and notebook 04 share one computation: every trace's runs and
    aggregate, computed once per setup (a second call rebuilds no trace)."""
    har, y_pool, pool_probs = _setup()
    kws, _, _ = _setup(seed=1)
    kws.task = "kws"
    built = []

    def build(name, setup, *, quick=False, seed=0, subject=None):
        built.append((name, seed))
        return _trace(y_pool, seed=seed)

    monkeypatch.setattr(experiments, "build_trace", build)
    monkeypatch.setattr(experiments, "trace_units", lambda name, setup, quick=False: [
        {"seed": 0}, {"seed": 1}])
    monkeypatch.setattr(experiments, "trace_probs", lambda setup, trace, progress=True:
                        pool_probs[:, trace.pool_index])
    runs, tables = experiments.controller_tables({"har": har, "kws": kws}, quick=True,
                                                 progress=False)
    assert list(tables) == list(experiments.TRACES)
    assert len(built) == 2 * len(experiments.TRACES)
    for name, table in tables.items():
        assert (table["n_units"] == 2).all() and (table["trace"] == "har_day").all()
        expected = experiments.aggregate(experiments.controller_runs(name, {
            "har": har, "kws": kws}[experiments.TRACE_TASK[name]], quick=True))
        pd.testing.assert_frame_equal(table, expected)
    assert len(runs) == sum(2 * len(experiments.controller_suite(s)) for s in
                            (har, har, kws))
    again, _ = experiments.controller_tables({"har": har, "kws": kws}, quick=True)
    assert len(built) == 2 * len(experiments.TRACES)  # memoised on the setups
    pd.testing.assert_frame_equal(again, runs)
    with pytest.raises(ValueError, match="setups: expected a TaskSetup for each of"):
        experiments.controller_tables({"har": har})
