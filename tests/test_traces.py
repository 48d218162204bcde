"""Trace builders: HAR replay of recordings, the synthetic HAR day, the KWS wrapper."""

from __future__ import annotations

import sys
import time
import types

import numpy as np
import pytest

from mobiprox_lab import datasets
from mobiprox_lab.datasets import har, traces
from mobiprox_lab.datasets.traces import Trace


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOBIPROX_DATA", str(tmp_path_factory.mktemp("trace_data")))
        yield har.prepare()


def _runs(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class, length) of each maximal run of equal values in y."""
    start = np.flatnonzero(np.r_[True, y[1:] != y[:-1]])
    return y[start], np.diff(np.r_[start, len(y)])


# ---------------------------------------------------------------- har_day


def test_day_length_and_time_axis(splits) -> None:
    start = time.perf_counter()
    tr = traces.har_day(splits, hours=24, seed=0)
    assert time.perf_counter() - start < 2.0
    assert isinstance(tr, Trace) and tr.name == "har_day"
    assert len(tr) == round(86400 / 1.28) == 67500
    np.testing.assert_allclose(np.diff(tr.t), 1.28)
    assert tr.duration_s == pytest.approx(86400 - 1.28)
    assert tr.labels == splits.labels and tr.pool_x is splits.test.x
    # every window comes from the held-out pool and has the bout's class
    np.testing.assert_array_equal(splits.test.y[tr.pool_index], tr.y)
    assert tr.meta["bout_steps"].sum() == len(tr)
    np.testing.assert_array_equal(np.repeat(tr.meta["bout_class"], tr.meta["bout_steps"]), tr.y)
    assert len(tr.context_names) == tr.meta["n_bouts"] == tr.context.max() + 1


@pytest.mark.parametrize("dwell", ["exponential", "lognormal"])
def test_day_dwell_means_match_parameters(splits, dwell: str) -> None:
    means = dict(zip(splits.labels, [20.0, 40.0, 60.0, 90.0, 120.0, 240.0, 600.0], strict=True))
    tr = traces.har_day(splits, hours=600, mean_dwell_s=means, dwell=dwell, sigma=0.6,
                        min_dwell_s=0.0, seed=3)
    cls, length = _runs(tr.y)
    cls, seconds = cls[:-1], length[:-1] * 1.28  # the last bout is cut by the end of the trace
    for k, lab in enumerate(splits.labels):
        got = seconds[cls == k]
        assert len(got) > 500
        assert got.mean() == pytest.approx(means[lab], rel=0.08), lab
    if dwell == "exponential":  # coefficient of variation ~1
        assert seconds[cls == 6].std() / seconds[cls == 6].mean() == pytest.approx(1.0, abs=0.1)


def test_day_transition_matrix_is_followed(splits) -> None:
    k = splits.n_classes
    cycle = np.roll(np.eye(k), 1, axis=1)  # k -> k + 1
    tr = traces.har_day(splits, hours=2, mean_dwell_s=30, transition=cycle, start=2, seed=0)
    cls, _ = _runs(tr.y)
    np.testing.assert_array_equal(cls, (2 + np.arange(len(cls))) % k)

    rng = np.random.default_rng(0)
    p = rng.random((k, k)) * (1 - np.eye(k))
    tr = traces.har_day(splits, hours=500, mean_dwell_s=10, transition=p, seed=1)
    b = tr.meta["bout_class"]
    counts = np.zeros((k, k))
    np.add.at(counts, (b[:-1], b[1:]), 1)
    np.testing.assert_allclose(counts / counts.sum(1, keepdims=True),
                               p / p.sum(1, keepdims=True), atol=0.05)


def test_day_seed_reproducible_and_distinct(splits) -> None:
    a = traces.har_day(splits, hours=3, seed=7)
    b = traces.har_day(splits, hours=3, seed=7)
    c = traces.har_day(splits, hours=3, seed=8)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.pool_index, b.pool_index)
    assert not np.array_equal(a.y, c.y)
    assert not np.array_equal(a.pool_index, c.pool_index)


def test_day_sequential_plays_consecutive_windows(splits) -> None:
    tr = traces.har_day(splits, hours=2, mean_dwell_s=60, seed=2)
    w = splits.meta["windows"]["test"]
    rec, order = w["recording"][tr.pool_index], w["order"][tr.pool_index]
    same_bout = tr.context[1:] == tr.context[:-1]
    assert np.all(rec[1:][same_bout] == rec[:-1][same_bout])
    step = order[1:][same_bout] - order[:-1][same_bout]
    assert np.mean(step == 1) > 0.9  # +1 except where a recording loops back to its start
    assert np.all((step == 1) | (order[1:][same_bout] == 0))
    iid = traces.har_day(splits, hours=2, mean_dwell_s=60, sampling="iid", seed=2)
    np.testing.assert_array_equal(splits.test.y[iid.pool_index], iid.y)
    assert iid.meta["bout_recording"] is None


def test_day_contexts_and_validation(splits) -> None:
    act = traces.har_day(splits, hours=1, context="activity")
    np.testing.assert_array_equal(act.context, act.y)
    assert act.context_names == splits.labels
    rec = traces.har_day(splits, hours=1, context="recording")
    assert rec.context_names[0].startswith("recording")
    uni = traces.har_day(splits, hours=10, dwell="uniform", min_dwell_s=30, max_dwell_s=90)
    _, length = _runs(uni.y)
    assert length[:-1].min() * 1.28 >= 29 and length[:-1].max() * 1.28 <= 91
    k = splits.n_classes
    with pytest.raises(ValueError, match="transition: expected a zero diagonal"):
        traces.har_day(splits, transition=np.full((k, k), 1.0 / k))
    with pytest.raises(ValueError, match=r"transition: expected a non-negative \(7, 7\)"):
        traces.har_day(splits, transition=np.ones((3, 3)))
    with pytest.raises(ValueError, match="mean_dwell_s"):
        traces.har_day(splits, mean_dwell_s=-5)
    with pytest.raises(ValueError, match="mean_dwell_s: expected a value for every label"):
        traces.har_day(splits, mean_dwell_s={"PEN": 5})
    with pytest.raises(ValueError, match="sampling"):
        traces.har_day(splits, sampling="random")
    with pytest.raises(ValueError, match="hours"):
        traces.har_day(splits, hours=0)
    with pytest.raises(ValueError, match="max_dwell_s"):
        traces.har_day(splits, dwell="uniform")


# ---------------------------------------------------------------- har_replay


def test_replay_order_and_time(splits) -> None:
    w = splits.meta["windows"]["test"]
    subject = splits.meta["subjects"]["test"][0]
    tr = traces.har_replay(splits)
    assert tr.name == "har_replay" and tr.meta["subject"] == subject
    mine = np.flatnonzero(w["subject"] == subject)
    assert sorted(tr.pool_index.tolist()) == mine.tolist()  # every window once
    np.testing.assert_allclose(tr.t, np.arange(len(tr)) * 1.28)
    rec, order = w["recording"][tr.pool_index], w["order"][tr.pool_index]
    key = rec * 10_000 + order
    assert np.all(np.diff(key) > 0)  # recording by recording, windows in time order
    assert tr.meta["recordings"] == list(dict.fromkeys(rec.tolist()))
    np.testing.assert_array_equal(tr.y, splits.test.y[tr.pool_index])
    # a bout = a run of one activity: the context changes exactly where the label does
    np.testing.assert_array_equal(np.diff(tr.context) != 0, np.diff(tr.y) != 0)
    assert tr.meta["n_bouts"] == len(tr.context_names) > 1


def test_replay_all_subjects_gap_and_errors(splits) -> None:
    tr = traces.har_replay(splits, subject="all", gap_s=10.0, context="recording")
    assert len(tr) == len(splits.test)
    n_changes = np.sum(np.diff(tr.context) != 0)
    assert tr.t[-1] == pytest.approx((len(tr) - 1) * 1.28 + 10.0 * n_changes)
    assert np.all(np.diff(splits.test.group[tr.pool_index]) >= 0)
    with pytest.raises(ValueError, match="subject: expected one of"):
        traces.har_replay(splits, subject=999)
    with pytest.raises(ValueError, match="context: expected one of"):
        traces.har_replay(splits, context="weather")
    with pytest.raises(TypeError, match="splits_or_dataset"):
        traces.har_replay(np.zeros(3))


def test_replay_from_dataset(splits) -> None:
    ds = har.load_watch()
    subject = splits.meta["subjects"]["test"][0]
    tr = traces.har_replay(ds, subject=subject, standardisation=splits.meta["standardisation"])
    ref = traces.har_replay(splits, subject=subject)
    np.testing.assert_array_equal(tr.y, ref.y)
    np.testing.assert_allclose(tr.x, ref.x, atol=1e-6)


# ---------------------------------------------------------------- kws wrapper


def test_kws_context_forwards_kwargs(monkeypatch) -> None:
    seen = {}

    def context_trace(**kwargs):
        seen.update(kwargs)
        return Trace("kws_context", [0.0, 1.0], [0, 1], [0, 0], [0, 1], np.zeros((2, 1)),
                     ("a", "b"), ("quiet",))

    fake = types.ModuleType("mobiprox_lab.datasets.kws")
    fake.context_trace = context_trace
    monkeypatch.setitem(sys.modules, "mobiprox_lab.datasets.kws", fake)
    monkeypatch.setattr(datasets, "kws", fake, raising=False)
    tr = traces.kws_context(minutes=5, seed=3)
    assert tr.name == "kws_context" and seen == {"minutes": 5, "seed": 3}
