"""Trace builders: HAR sessions and replay, the synthetic HAR day, the KWS wrapper."""

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
def splits():
    # the HAPT default; its converted recordings are cached in the default data folder,
    # keyed by the file's pinned SHA-256 (see test_hapt.py)
    return har.prepare()


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
    means = dict(zip(splits.labels, [20.0, 40.0, 60.0, 90.0, 240.0, 600.0], strict=True))
    tr = traces.har_day(splits, hours=600, mean_dwell_s=means, dwell=dwell, sigma=0.6,
                        min_dwell_s=0.0, seed=3, sampling="iid")
    cls, length = _runs(tr.y)
    cls, seconds = cls[:-1], length[:-1] * 1.28  # the last bout is cut by the end of the trace
    for k, lab in enumerate(splits.labels):
        got = seconds[cls == k]
        assert len(got) > 500
        assert got.mean() == pytest.approx(means[lab], rel=0.08), lab
    if dwell == "exponential":  # coefficient of variation ~1
        assert seconds[cls == 5].std() / seconds[cls == 5].mean() == pytest.approx(1.0, abs=0.1)


def test_day_transition_matrix_is_followed(splits) -> None:
    k = splits.n_classes
    cycle = np.roll(np.eye(k), 1, axis=1)  # k -> k + 1
    tr = traces.har_day(splits, hours=2, mean_dwell_s=30, transition=cycle, start=2, seed=0)
    cls, _ = _runs(tr.y)
    np.testing.assert_array_equal(cls, (2 + np.arange(len(cls))) % k)

    rng = np.random.default_rng(0)
    p = rng.random((k, k)) * (1 - np.eye(k))
    tr = traces.har_day(splits, hours=500, mean_dwell_s=10, transition=p, seed=1, sampling="iid")
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


def test_day_sequential_plays_real_runs(splits) -> None:
    tr = traces.har_day(splits, hours=2, mean_dwell_s=60, seed=2)
    w = splits.meta["windows"]["test"]
    rec, start = w["recording"][tr.pool_index], w["start"][tr.pool_index]
    same_bout = tr.context[1:] == tr.context[:-1]
    nxt = (rec[1:] == rec[:-1]) & (start[1:] - start[:-1] == 64)
    # inside a bout: the next recorded window, or a jump to the first window of a run
    run_first = np.ones(len(splits.test), bool)
    seq = np.lexsort((w["start"], w["recording"]))
    cont = ((w["recording"][seq][1:] == w["recording"][seq][:-1])
            & (w["start"][seq][1:] - w["start"][seq][:-1] == 64)
            & (splits.test.y[seq][1:] == splits.test.y[seq][:-1]))
    run_first[seq[1:][cont]] = False
    assert np.all(nxt[same_bout] | run_first[tr.pool_index[1:]][same_bout])
    assert np.mean(nxt[same_bout]) > 0.85  # runs last ~10 windows on average
    assert tr.meta["n_distinct_windows"] == len(np.unique(tr.pool_index))
    assert tr.meta["n_pool_windows"] == len(splits.test)
    iid = traces.har_day(splits, hours=2, mean_dwell_s=60, sampling="iid", seed=2)
    np.testing.assert_array_equal(splits.test.y[iid.pool_index], iid.y)
    assert iid.meta["bout_recording"] is None


def test_day_defaults_are_realistic(splits) -> None:
    tr = traces.har_day(splits, hours=24, seed=0)
    assert tr.meta["dwell"] == "lognormal"
    stats = traces.persistence_stats(tr)
    # long sitting / lying bouts, short stair flights: runs follow DAY_MEAN_DWELL_S
    assert stats["mean_run_s"]["lying"] > 600 and stats["mean_run_s"]["sitting"] > 300
    assert stats["mean_run_s"]["walking"] < 300
    assert stats["marked_share"]["activity"] == 1.0
    p = np.array(tr.meta["transition"])
    labels = list(splits.labels)
    assert p[labels.index("upstairs"), labels.index("lying")] == 0
    assert tr.meta["n_distinct_windows"] > 0.5 * len(splits.test)


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
    with pytest.raises(ValueError, match=r"transition: expected a non-negative \(6, 6\)"):
        traces.har_day(splits, transition=np.ones((3, 3)))
    with pytest.raises(ValueError, match="mean_dwell_s"):
        traces.har_day(splits, mean_dwell_s=-5)
    with pytest.raises(ValueError, match="mean_dwell_s: expected a value for every label"):
        traces.har_day(splits, mean_dwell_s={"walking": 5})
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
    ds = har.load_hapt("test")
    subject = splits.meta["subjects"]["test"][0]
    tr = traces.har_replay(ds, subject=subject, standardisation=splits.meta["standardisation"])
    ref = traces.har_replay(splits, subject=subject)
    np.testing.assert_array_equal(tr.y, ref.y)
    np.testing.assert_allclose(tr.x, ref.x, atol=1e-6)
    grid = har.load_hapt(windows="grid", subjects=[subject])
    marked = traces.har_replay(grid, standardisation=splits.meta["standardisation"])
    np.testing.assert_array_equal(marked.mark, grid.mark)
    np.testing.assert_array_equal(marked.y, grid.y)


# ---------------------------------------------------------------- har_sessions


@pytest.fixture(scope="module")
def sessions(splits):
    return traces.har_sessions(splits)


def test_sessions_replay_whole_test_sessions_in_order(splits, sessions) -> None:
    tr = sessions
    assert tr.name == "har_sessions" and tr.labels == splits.labels
    test_subjects = splits.meta["subjects"]["test"]
    assert tr.meta["subjects"] == test_subjects
    assert not set(tr.meta["subjects"]) & set(splits.meta["subjects"]["tune"])
    np.testing.assert_allclose(np.diff(tr.t), 1.28)
    assert tr.meta["recordings"] == sorted(tr.meta["recordings"])
    start = tr.meta["window_start"]
    step = np.diff(start)
    new_rec = np.isin(np.arange(1, len(tr)), tr.meta["recording_start_step"])
    assert np.all(step[~new_rec] == 64) and np.all(start[np.r_[True, new_rec]] == 0)
    # every test session, whole: 1 + (T - 128) // 64 windows each
    from mobiprox_lab.datasets import hapt

    rec = hapt.load_recordings()
    lengths = [int(rec.start[r + 1] - rec.start[r]) for r in range(len(rec))
               if int(rec.subject[r]) in test_subjects]
    assert len(tr) == sum(1 + (n - 128) // 64 for n in lengths)
    assert len(tr.pool_x) == len(tr) and tr.pool_x.shape[1:] == (3, 32, 32)


def test_sessions_marks_and_persistence(splits, sessions) -> None:
    tr = sessions
    np.testing.assert_array_equal(tr.y == -1, tr.mark != 0)
    np.testing.assert_array_equal(tr.labelled, tr.mark == 0)
    share = tr.meta["marked_share"]
    assert 0.03 < share["transition"] < 0.25 and 0.1 < share["unlabelled"] < 0.5
    stats = traces.persistence_stats(tr)
    assert stats["marked_share"] == pytest.approx(share)
    for lab in splits.labels:  # activities persist: runs of several windows (>= 6 s)
        assert stats["mean_run_s"][lab] > 6.0 and stats["n_runs"][lab] >= 5
    # marks sit where HAPT's per-sample labels say: a transition window covers a code 7-12
    from mobiprox_lab.datasets import hapt

    rec = hapt.load_recordings()
    r = tr.meta["recordings"][0] - 1
    _, lab = rec.recording(r)
    firsts = tr.meta["recording_start_step"]
    n = firsts[1] if len(firsts) > 1 else len(tr)  # the steps of the first session
    for i in range(n):
        w = lab[int(tr.meta["window_start"][i]):int(tr.meta["window_start"][i]) + 128]
        has_transition = bool(np.any((w >= 7) & (w <= 12)))
        assert (tr.mark[i] == 1) == has_transition
        if tr.mark[i] == 0:
            assert np.all(w == tr.y[i] + 1)
    # bouts: the context changes exactly where the class or the mark does
    change = (np.diff(tr.y) != 0) | (np.diff(tr.mark) != 0) | np.isin(
        np.arange(1, len(tr)), tr.meta["recording_start_step"])
    np.testing.assert_array_equal(np.diff(tr.context) != 0, change)
    act = traces.har_sessions(splits, context="activity", max_steps=300)
    assert act.context_names == (*splits.labels, "transition", "unlabelled")
    np.testing.assert_array_equal(act.context[act.labelled], act.y[act.labelled])
    assert np.all(act.context[act.mark == 1] == 6) and np.all(act.context[act.mark == 2] == 7)


def test_sessions_pool_matches_loader_and_errors(splits) -> None:
    subject = splits.meta["subjects"]["test"][1]
    tr = traces.har_sessions(splits, subject=subject, max_steps=50)
    assert len(tr) == len(tr.pool_x) == 50 and tr.meta["subjects"] == [subject]
    ds = har.load_hapt(windows="grid", subjects=[subject])
    st = splits.meta["standardisation"]
    np.testing.assert_allclose(tr.x, har.model_inputs(ds.x[:50], st["mean"], st["std"]))
    with pytest.raises(ValueError, match="subject: expected 'all', None or one of the test"):
        traces.har_sessions(splits, subject=splits.meta["subjects"]["tune"][0])
    with pytest.raises(ValueError, match="max_steps"):
        traces.har_sessions(splits, max_steps=0)
    with pytest.raises(ValueError, match="splits: expected HAR Splits from har.prepare"):
        traces.har_sessions(np.zeros(3))


def test_trace_marks_validated() -> None:
    args = ([0.0, 1.28, 2.56], [0, -1, 2], [0, 1, 2], [0, 1, 2], np.zeros((3, 1)),
            ("a", "b", "c"), ("x", "y", "z"))
    tr = Trace("t", *args, mark=[0, 1, 0])
    np.testing.assert_array_equal(tr.labelled, [True, False, True])
    assert Trace("t", [0.0], [1], [0], [0], np.zeros((1, 1)), ("a", "b"), ("x",)).mark[0] == 0
    with pytest.raises(ValueError, match="y: expected a class index >= 0 on unmarked"):
        Trace("t", *args)
    with pytest.raises(ValueError, match="mark: expected values"):
        Trace("t", *args, mark=[0, 5, 0])
    y, mark, length = traces.run_lengths(np.array([1, 1, -1, -1, -1, 1]),
                                         np.array([0, 0, 1, 2, 2, 0]))
    np.testing.assert_array_equal(length, [2, 1, 2, 1])
    np.testing.assert_array_equal(mark, [0, 1, 2, 0])


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


def test_dataset_modules_import_one_way() -> None:
    """Dataset submodules take Split / Splits / Trace from ``containers``, never from the
    package, and the KWS modules never import ``traces`` (traces -> kws only)."""
    import ast
    from pathlib import Path

    folder = Path(datasets.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")}
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level: 'from . import x' must name a submodule
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None:
                names = {a.name for a in node.names}
                assert names <= modules, f"{path.name} imports {names - modules} from the package"
        if path.stem.startswith("kws") or path.stem == "speech_commands":
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 1:
                    assert node.module != "traces", f"{path.name} imports traces"
                    assert "traces" not in {a.name for a in node.names}, path.name
