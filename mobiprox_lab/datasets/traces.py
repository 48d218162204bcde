"""Ordered input streams ("traces") with ground truth and a time axis, for the controllers.

A trace does not copy its inputs: it indexes a pool of model-ready inputs, so a
24-hour trace of ~67k windows costs a few hundred kilobytes and the softmax of
every configuration needs computing only once per pool item.

HAR traces (held-out test subjects only; the tune subjects are for fitting controllers):

- ``har_sessions``: the test subjects' real HAPT sessions in recorded order, one window
  every 1.28 s over each whole session. Windows covering a postural transition or
  unlabelled samples are kept and marked (``Trace.mark``; their ``y`` is ``UNLABELLED``
  = -1): they cost an inference like any other, are scored against the exact model's
  prediction, and are left out of true-label accuracy.
- ``har_day``: 24 h of activities from a Markov chain with realistic dwell times
  (``DAY_MEAN_DWELL_S``, ``DAY_TRANSITION``), each bout played from real recorded runs
  of that activity (consecutive windows of one session), chained run after run.
- ``har_replay``: the labelled test windows only, in recorded order (no marks).

KWS: ``kws_context`` forwards to ``kws.context_trace`` (the voice-assistant stream). The
``Trace`` type and the mark codes live in ``containers`` and are re-exported here.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

from .. import checks
from . import har
from .containers import (
    MARK_ACTIVITY,
    MARK_NAMES,
    MARK_TRANSITION,
    MARK_UNLABELLED,
    UNLABELLED,
    Splits,
    Trace,
)

__all__ = ["DAY_MEAN_DWELL_S", "DAY_TRANSITION", "DWELL_DISTRIBUTIONS", "HAR_HOP_S",
           "MARK_ACTIVITY", "MARK_NAMES", "MARK_TRANSITION", "MARK_UNLABELLED",
           "TRACE_CONTEXTS", "UNLABELLED", "Trace", "har_day", "har_replay", "har_sessions",
           "kws_context", "persistence_stats", "run_lengths"]


def run_lengths(y: np.ndarray, mark: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of equal (y, mark) in a trace: (y, mark, length), each int64 (R,)."""
    y = np.asarray(y, dtype=np.int64)
    mark = np.zeros_like(y) if mark is None else np.asarray(mark, dtype=np.int64)
    if len(y) == 0:
        z = np.zeros(0, np.int64)
        return z, z.copy(), z.copy()
    first = np.flatnonzero(np.r_[True, (y[1:] != y[:-1]) | (mark[1:] != mark[:-1])])
    return y[first], mark[first], np.diff(np.r_[first, len(y)]).astype(np.int64)


def persistence_stats(trace: Trace) -> dict:
    """Persistence of a trace: ``mean_run_s`` {class: mean seconds of a run of that class},
    ``mean_run_steps`` {class: mean steps}, ``n_runs`` {class: runs}, ``marked_share`` {mark
    name: fraction of steps}, ``steps`` and ``duration_s``. A run is a maximal stretch of
    one class (or one mark) without interruption; the hop is the median step in ``t``."""
    y, mark, length = run_lengths(trace.y, trace.mark)
    hop = float(np.median(np.diff(trace.t))) if len(trace) > 1 else 0.0
    out = {"mean_run_steps": {}, "mean_run_s": {}, "n_runs": {}, "marked_share": {},
           "steps": len(trace), "duration_s": trace.duration_s}
    for k, lab in enumerate(trace.labels):
        sel = (mark == MARK_ACTIVITY) & (y == k)
        out["n_runs"][lab] = int(sel.sum())
        out["mean_run_steps"][lab] = float(length[sel].mean()) if sel.any() else float("nan")
        out["mean_run_s"][lab] = out["mean_run_steps"][lab] * hop
    for m, name in enumerate(MARK_NAMES):
        out["marked_share"][name] = float(np.mean(trace.mark == m)) if len(trace) else 0.0
    return out


# ---------------------------------------------------------------- builders

HAR_HOP_S = 1.28  # 64-sample hop (128-sample windows, 50 % overlap) at 50 Hz
TRACE_CONTEXTS = ("bout", "activity", "recording")


def _runs(*codes: np.ndarray) -> np.ndarray:
    """int64 (T,) run index: increments wherever any of ``codes`` changes value."""
    n = len(codes[0])
    change = np.zeros(n, dtype=bool)
    for c in codes:
        change[1:] |= c[1:] != c[:-1]
    return np.cumsum(change).astype(np.int64)


def _context(kind: str, y: np.ndarray, bout: np.ndarray, recording: np.ndarray,
             labels: tuple[str, ...], mark: np.ndarray | None = None
             ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Context codes and names for ``kind`` in ``TRACE_CONTEXTS``; with ``mark``, a
    marked step's activity context is len(labels) + mark - 1 ("transition" /
    "unlabelled")."""
    marked = mark is not None and bool(np.any(mark != MARK_ACTIVITY))

    def name(i: int) -> str:
        return labels[y[i]] if y[i] >= 0 else MARK_NAMES[int(mark[i])]

    if kind == "activity":
        if not marked:
            return y, tuple(labels)
        code = np.where(mark == MARK_ACTIVITY, y, len(labels) + mark - 1)
        return code.astype(np.int64), tuple(labels) + MARK_NAMES[1:]
    if kind == "bout":
        first = np.flatnonzero(np.r_[True, bout[1:] != bout[:-1]]) if len(bout) else bout
        return bout, tuple(f"{b}: {name(i)}" for b, i in enumerate(first))
    if kind == "recording":
        ids, code = np.unique(recording, return_inverse=True)
        return code.astype(np.int64), tuple(f"recording {r}" for r in ids)
    raise ValueError(f"context: expected one of {TRACE_CONTEXTS}, got {kind!r}")


def _har_pool(source, standardisation=None
              ) -> tuple[np.ndarray, np.ndarray, dict, tuple[str, ...], dict]:
    """(pool_x, y, windows {subject, recording, order}, labels, info) of a HAR source:
    ``Splits`` from ``har.prepare`` (its test split) or ``har.ImuWindows``."""
    if isinstance(source, Splits):
        windows = source.meta.get("windows", {}).get("test")
        if windows is None:
            raise ValueError("splits: expected HAR Splits from har.prepare (with "
                             "meta['windows']['test']), got Splits without it")
        info = {"source": source.meta.get("source"), "pool": "splits.test"}
        return source.test.x, source.test.y, windows, source.labels, info
    if isinstance(source, har.ImuWindows):
        if standardisation is None:
            mean = std = None
        elif isinstance(standardisation, dict):
            mean, std = standardisation["mean"], standardisation["std"]
        else:
            mean, std = standardisation
        pool = har.model_inputs(source, mean, std)
        windows = {"subject": source.subject, "recording": source.recording,
                   "order": source.order, "start": source.start, "mark": source.mark}
        info = {"source": source.meta.get("source"), "pool": "ImuWindows"}
        return pool, source.y, windows, source.labels, info
    raise TypeError(f"splits_or_dataset: expected HAR Splits or har.ImuWindows, "
                    f"got {type(source).__name__}")


def har_replay(splits_or_dataset, subject: int | str | None = None, *,
               context: str = "bout", gap_s: float = 0.0, hop_s: float = HAR_HOP_S,
               standardisation: dict | tuple | None = None) -> Trace:
    """A test subject's recordings replayed in order: activities persist, then change.

    splits_or_dataset : HAR ``Splits`` (the test split is the pool) or ``har.ImuWindows``
        (pool = its signal images, standardised with ``standardisation`` = (mean, std)
        or a dict with "mean" / "std" such as ``splits.meta["standardisation"]``).
    subject : a subject id of the pool, None = the lowest id, "all" = every subject in
        turn (ascending id).
    Windows come in (subject, recording id, window order) order; t = step * hop_s
    seconds (1.28 s = 64-sample hop at 50 Hz), plus gap_s at each recording change.
    With the labelled test windows of HAPT ``Splits``, the stretches between activity
    runs are skipped (``har_sessions`` keeps them); ImuWindows with marks (``load_hapt(
    windows="grid")``) keep their marks.
    context : "bout" (a maximal run of one activity within one subject), "activity"
    or "recording".
    """
    pool_x, y, windows, labels, info = _har_pool(splits_or_dataset, standardisation)
    subj = np.asarray(windows["subject"], dtype=np.int64)
    rec = np.asarray(windows["recording"], dtype=np.int64)
    order = np.asarray(windows["order"], dtype=np.int64)
    present = np.unique(subj)
    if len(present) == 0:
        raise ValueError("splits_or_dataset: expected a non-empty pool of windows")
    if subject is None:
        subject = int(present[0])
    if isinstance(subject, str):
        if subject != "all":
            raise ValueError(f"subject: expected a subject id, None or 'all', got {subject!r}")
        sel = np.arange(len(subj))
    else:
        if subject not in present:
            raise ValueError(f"subject: expected one of {present.tolist()}, got {subject!r}")
        sel = np.flatnonzero(subj == subject)
    if hop_s <= 0 or gap_s < 0:
        raise ValueError(f"hop_s, gap_s: expected hop_s > 0 and gap_s >= 0, got {hop_s}, {gap_s}")
    sel = sel[np.lexsort((order[sel], rec[sel], subj[sel]))]
    ys, recs, subs = np.asarray(y)[sel], rec[sel], subj[sel]
    marks = np.asarray(windows.get("mark", np.zeros(len(subj), np.int64)))[sel]
    n_rec_changes = _runs(subs, recs)
    t = np.arange(len(sel)) * hop_s + n_rec_changes * gap_s
    bout = _runs(subs, ys, marks)
    ctx, names = _context(context, ys, bout, recs, labels, marks)
    rec_first = np.flatnonzero(np.r_[True, np.diff(n_rec_changes) != 0]) if len(sel) else sel
    meta = {**info, "subject": subject, "context": context, "hop_s": hop_s, "gap_s": gap_s,
            "subjects": np.unique(subs).tolist(), "recordings": recs[rec_first].tolist(),
            "n_bouts": int(bout[-1] + 1) if len(bout) else 0}
    return Trace("har_replay", t, ys, ctx, sel, pool_x, tuple(labels), names, meta, marks)


def har_sessions(splits, subject: int | str | None = "all", *, context: str = "bout",
                 gap_s: float = 0.0, max_steps: int | None = None,
                 path=None) -> Trace:
    """The held-out test subjects' real HAPT sessions, whole, in recorded order.

    splits : HAR ``Splits`` from ``har.prepare`` with source "hapt"; its test subjects
        (``meta["subjects"]["test"]``) are replayed and its ``standardisation`` applied.
    subject : "all" (default: every test subject, ascending id), None (the lowest id) or
        one test subject's id.
    One window every 1.28 s (64-sample hop) over each session (``har.load_hapt(
    windows="grid")``): a window of one activity has its class; one covering a postural
    transition has mark 1, one covering unlabelled samples (or two activities) mark 2,
    both with y = -1. t = step * 1.28 s, plus ``gap_s`` at each session change.
    max_steps : keep only the first steps (quick runs); the pool then holds only them.
    context : "bout" (maximal run of one class or mark within one session), "activity"
        (class; marked steps get codes K and K+1) or "recording" (session).
    meta: subjects, recordings, n_bouts, ``marked_share`` {mark name: fraction}, ...
    The pool is the sessions' own windows (not ``splits.test.x``, whose windows are cut
    per activity run as UCI-HAR did, so they are shifted by up to 1.27 s).
    """
    if not isinstance(splits, Splits) or splits.meta.get("source") != "hapt":
        raise ValueError("splits: expected HAR Splits from har.prepare() with source "
                         "'hapt' (the sessions are HAPT recordings), got "
                         f"{type(splits).__name__} with source "
                         f"{getattr(splits, 'meta', {}).get('source')!r}")
    checks.choice("context", context, TRACE_CONTEXTS)
    if not gap_s >= 0:
        raise ValueError(f"gap_s: expected a number >= 0, got {gap_s}")
    if max_steps is not None and (int(max_steps) != max_steps or max_steps < 1):
        raise ValueError(f"max_steps: expected None or an int >= 1, got {max_steps!r}")
    present = [int(s) for s in splits.meta["subjects"]["test"]]
    if subject == "all":
        chosen = present
    elif subject is None:
        chosen = present[:1]
    elif isinstance(subject, str) or int(subject) not in present:
        raise ValueError(f"subject: expected 'all', None or one of the test subjects "
                         f"{present}, got {subject!r}")
    else:
        chosen = [int(subject)]
    ds = har.load_hapt(windows="grid", subjects=chosen, path=path)
    if max_steps is not None:
        ds = ds.subset(np.arange(min(int(max_steps), len(ds))))
    std = splits.meta["standardisation"]
    pool_x = har.model_inputs(ds, std["mean"], std["std"])
    n = len(ds)
    rec_change = _runs(ds.recording)
    t = np.arange(n) * HAR_HOP_S + rec_change * gap_s
    bout = _runs(ds.recording, ds.y, ds.mark)
    ctx, names = _context(context, ds.y, bout, ds.recording, tuple(splits.labels), ds.mark)
    first = np.flatnonzero(np.r_[True, np.diff(rec_change) != 0])
    meta = {"source": "hapt", "pool": "hapt session windows (test subjects)",
            "subject": subject, "subjects": chosen, "context": context,
            "hop_s": HAR_HOP_S, "gap_s": gap_s, "max_steps": max_steps,
            "recordings": ds.recording[first].tolist(),
            "recording_start_step": first.tolist(),
            "n_bouts": int(bout[-1] + 1) if n else 0,
            "marked_share": {m: float(np.mean(ds.mark == k)) for k, m in enumerate(MARK_NAMES)},
            "window_start": ds.start}
    return Trace("har_sessions", t, ds.y, ctx, np.arange(n), pool_x, tuple(splits.labels),
                 names, meta, ds.mark)


DWELL_DISTRIBUTIONS = ("exponential", "lognormal", "uniform")


def _per_class(value, labels: tuple[str, ...], name: str) -> np.ndarray:
    """A scalar, a (K,) sequence or a {label: value} mapping -> float64 (K,) > 0."""
    k = len(labels)
    if isinstance(value, dict):
        missing = [lab for lab in labels if lab not in value]
        unknown = [key for key in value if key not in labels]
        if missing or unknown:
            raise ValueError(f"{name}: expected a value for every label of {labels}, "
                             f"missing {missing}, unknown {unknown}")
        arr = np.array([value[lab] for lab in labels], dtype=np.float64)
    else:
        arr = np.asarray(value, dtype=np.float64)
        arr = np.full(k, float(arr)) if arr.ndim == 0 else arr
    if arr.shape != (k,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name}: expected a positive number, {k} positive numbers or a "
                         f"{{label: number}} mapping, got {value!r}")
    return arr


def _transition(transition, k: int) -> np.ndarray:
    """Validated, row-normalised (K, K) jump-chain matrix with a zero diagonal."""
    if transition is None:
        return (np.ones((k, k)) - np.eye(k)) / (k - 1)
    p = np.asarray(transition, dtype=np.float64)
    if p.shape != (k, k) or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"transition: expected a non-negative ({k}, {k}) matrix, "
                         f"got shape {p.shape}")
    if np.any(np.diag(p) != 0):
        raise ValueError("transition: expected a zero diagonal (a bout ends with a change "
                         "of activity; persistence is set by the dwell times)")
    rows = p.sum(axis=1)
    if np.any(rows <= 0):
        raise ValueError(f"transition: expected every row to have a positive sum, rows "
                         f"{np.flatnonzero(rows <= 0).tolist()} are all zero")
    return p / rows[:, None]


#: Default mean bout length (seconds) per UCI activity for ``har_day``: modelling
#: assumptions of a plausible day (short walks and stair flights, long sitting / lying),
#: not measurements.
DAY_MEAN_DWELL_S = {"walking": 90.0, "upstairs": 12.0, "downstairs": 12.0,
                    "sitting": 1200.0, "standing": 120.0, "lying": 2400.0}
#: Default jump chain of ``har_day`` (from -> {to: probability}); stairs start and end by
#: walking or standing, lying ends by sitting or standing. Also modelling assumptions.
DAY_TRANSITION = {
    "walking": {"upstairs": 0.1, "downstairs": 0.1, "sitting": 0.3, "standing": 0.45,
                "lying": 0.05},
    "upstairs": {"walking": 0.8, "standing": 0.2},
    "downstairs": {"walking": 0.8, "standing": 0.2},
    "sitting": {"walking": 0.25, "standing": 0.6, "lying": 0.15},
    "standing": {"walking": 0.55, "upstairs": 0.05, "downstairs": 0.05, "sitting": 0.3,
                 "lying": 0.05},
    "lying": {"walking": 0.1, "sitting": 0.5, "standing": 0.4},
}


def _day_defaults(labels: tuple[str, ...], mean_dwell_s, transition):
    """``DAY_MEAN_DWELL_S`` / ``DAY_TRANSITION`` for UCI's labels; 120 s and a uniform
    chain for any other label set."""
    uci = set(labels) == set(DAY_MEAN_DWELL_S)
    if mean_dwell_s is None:
        mean_dwell_s = dict(DAY_MEAN_DWELL_S) if uci else 120.0
    if transition is None and uci:
        transition = np.array([[DAY_TRANSITION[a].get(b, 0.0) for b in labels]
                               for a in labels])
    return mean_dwell_s, transition


def _pool_runs(y: np.ndarray, windows: dict, stride: int = 64):
    """Runs of the pool: maximal stretches of consecutive windows (same recording and
    class, next window = next in time) -> (order of pool rows grouped by run, run start
    in that order, run length, run class), runs sorted by class."""
    rec = np.asarray(windows["recording"], dtype=np.int64)
    order = np.asarray(windows["order"], dtype=np.int64)
    start = np.asarray(windows.get("start", np.full(len(rec), -1)), dtype=np.int64)
    seq = np.lexsort((order, rec, y))
    ys, rs, os_, ss = y[seq], rec[seq], order[seq], start[seq]
    step_ok = np.where((ss[1:] >= 0) & (ss[:-1] >= 0), ss[1:] - ss[:-1] == stride,
                       os_[1:] - os_[:-1] == 1)
    new = np.r_[True, (ys[1:] != ys[:-1]) | (rs[1:] != rs[:-1]) | ~step_ok]
    r_start = np.flatnonzero(new)
    r_len = np.diff(np.r_[r_start, len(seq)])
    return seq, r_start, r_len, ys[r_start]


def _check_day_args(labels, hours, hop_s, dwell, sigma, min_dwell_s, max_dwell_s, sampling,
                    context, start) -> float:
    """Validate ``har_day``'s scalar arguments; returns max_dwell_s as a float (inf for None)."""
    k = len(labels)
    if k < 2:
        raise ValueError(f"splits: expected at least 2 classes, got {k}")
    if start is not None and not 0 <= start < k:
        raise ValueError(f"start: expected a class index in [0, {k}), got {start}")
    if not hours > 0:
        raise ValueError(f"hours: expected a positive number, got {hours}")
    if not hop_s > 0:
        raise ValueError(f"hop_s: expected a positive number, got {hop_s}")
    checks.choice("dwell", dwell, DWELL_DISTRIBUTIONS)
    if sampling not in ("sequential", "iid"):
        raise ValueError(f"sampling: expected 'sequential' or 'iid', got {sampling!r}")
    checks.choice("context", context, TRACE_CONTEXTS)
    max_dwell = np.inf if max_dwell_s is None else float(max_dwell_s)
    if not 0 <= min_dwell_s <= max_dwell:
        raise ValueError(f"min_dwell_s, max_dwell_s: expected 0 <= min <= max, "
                         f"got {min_dwell_s}, {max_dwell_s}")
    if dwell == "uniform" and not np.isfinite(max_dwell):
        raise ValueError("max_dwell_s: expected a finite number with dwell='uniform', got None")
    if dwell == "lognormal" and not sigma > 0:
        raise ValueError(f"sigma: expected a positive number, got {sigma}")
    return max_dwell


def _day_bouts(rng: np.random.Generator, state: int, p: np.ndarray, means: np.ndarray,
               n_steps: int, hop_s: float, dwell: str, sigma: float, min_dwell_s: float,
               max_dwell: float) -> tuple[np.ndarray, np.ndarray]:
    """(class, steps) of each bout, int64 (B,) each, from the jump chain ``p`` starting in
    ``state``; the steps sum to ``n_steps`` (the last bout is cut)."""
    cum = np.cumsum(p, axis=1)
    cum[:, -1] = 1.0
    cum_rows = [row.tolist() for row in cum]
    mu = np.log(means) - 0.5 * sigma**2
    states_parts, steps_parts, total = [], [], 0
    while total < n_steps:  # jump chain in chunks: loop over bouts, vectorised dwell draws
        n = int(1.2 * (n_steps - total) * hop_s / means.min()) + 16
        n = min(n, 2 * (n_steps - total) + 16)
        chunk = np.empty(n, dtype=np.int64)
        for i, u in enumerate(rng.random(n).tolist()):
            chunk[i] = state
            state = bisect_right(cum_rows[state], u)
        if dwell == "exponential":
            d = means[chunk] * rng.standard_exponential(n)
        elif dwell == "lognormal":
            d = np.exp(mu[chunk] + sigma * rng.standard_normal(n))
        else:
            d = rng.uniform(min_dwell_s, max_dwell, n)
        steps = np.maximum(1, np.rint(np.clip(d, min_dwell_s, max_dwell) / hop_s)).astype(np.int64)
        states_parts.append(chunk)
        steps_parts.append(steps)
        total += int(steps.sum())
    bout_class = np.concatenate(states_parts)
    bout_steps = np.concatenate(steps_parts)
    ends = np.cumsum(bout_steps)
    n_bouts = int(np.searchsorted(ends, n_steps) + 1)  # first bout reaching n_steps
    bout_class, bout_steps = bout_class[:n_bouts], bout_steps[:n_bouts].copy()
    bout_steps[-1] -= int(ends[n_bouts - 1] - n_steps)
    return bout_class, bout_steps


def _play_runs(rng: np.random.Generator, bout_class: np.ndarray, bout_steps: np.ndarray,
               runs: tuple, c_first: np.ndarray, c_n: np.ndarray, rec: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """``sampling="sequential"``: (pool_index int64 (T,), first recording of each bout):
    each bout plays a random run from a random window on, then further random runs of its
    class from their first window."""
    seq, r_start, r_len, _ = runs
    n_steps, n_bouts = int(bout_steps.sum()), len(bout_steps)
    bout_start = np.r_[0, np.cumsum(bout_steps)[:-1]].astype(np.int64)
    pool_index = np.empty(n_steps, dtype=np.int64)
    bout_recording = np.empty(n_bouts, dtype=np.int64)
    u = rng.random(n_steps + 2 * n_bouts).tolist()  # enough draws: <= 1 per step + 2
    ui = 0
    for b in range(n_bouts):
        c, pos, end = int(bout_class[b]), int(bout_start[b]), int(bout_start[b] + bout_steps[b])
        g = int(c_first[c] + int(u[ui] * c_n[c]))
        offset = int(u[ui + 1] * r_len[g])
        ui += 2
        bout_recording[b] = rec[seq[r_start[g]]]
        while pos < end:
            take = min(int(r_len[g]) - offset, end - pos)
            a = int(r_start[g]) + offset
            pool_index[pos:pos + take] = seq[a:a + take]
            pos += take
            g, offset = int(c_first[c] + int(u[ui] * c_n[c])), 0
            ui += 1
            if ui >= len(u):
                u, ui = rng.random(n_steps).tolist(), 0
    return pool_index, bout_recording


def har_day(splits, hours: float = 24.0, *, mean_dwell_s=None, dwell: str = "lognormal",
            sigma: float = 1.0, min_dwell_s: float = HAR_HOP_S, max_dwell_s: float | None = None,
            transition=None, start: int | None = None, sampling: str = "sequential",
            context: str = "bout", seed: int = 0, hop_s: float = HAR_HOP_S) -> Trace:
    """A synthetic day: activities from a Markov chain, played from real recorded runs of
    the held-out test windows.

    splits : HAR ``Splits`` from ``har.prepare``; its test split is the pool.
    hours : trace length; one inference per window, every hop_s = 1.28 s, so 24 h gives
        round(86400 / 1.28) = 67,500 steps.
    Activities follow a jump chain: ``transition`` (K, K) non-negative, zero diagonal,
    rows normalised (default: ``DAY_TRANSITION`` for UCI's six activities, else uniform
    over the other classes); ``start`` = the first activity (default random). Each bout
    of activity k lasts a dwell time in seconds: "lognormal" (default) with mean
    ``mean_dwell_s[k]`` and log-std ``sigma``, "exponential" with that mean, or
    "uniform" on [min_dwell_s, max_dwell_s] (mean ignored); all clipped to
    [min_dwell_s, max_dwell_s] and rounded to whole windows (at least one).
    mean_dwell_s : seconds; a number, K numbers or {label: seconds}; default
        ``DAY_MEAN_DWELL_S`` for UCI's activities, else 120 s.
    sampling : "sequential" (default): a bout plays a real run -- consecutive windows of
        one recording and activity -- from a random window on, then further random runs of
        the same activity from their first window, until the bout ends; "iid": each
        window drawn independently from the class's test windows.
    context : "bout", "activity" or "recording" (recording of the window played).
    meta holds every parameter, the bouts (class, first step, steps, first recording),
    ``n_distinct_windows`` (pool windows the day uses), ``n_pool_windows`` and
    ``n_pool_runs`` {class: runs available}.
    """
    pool_x, y_pool, windows, labels, info = _har_pool(splits)
    k = len(labels)
    max_dwell = _check_day_args(labels, hours, hop_s, dwell, sigma, min_dwell_s, max_dwell_s,
                                sampling, context, start)
    mean_dwell_s, transition = _day_defaults(tuple(labels), mean_dwell_s, transition)
    means = _per_class(mean_dwell_s, labels, "mean_dwell_s")
    p = _transition(transition, k)
    y_pool = np.asarray(y_pool, dtype=np.int64)
    counts = np.bincount(y_pool, minlength=k)
    if np.any(counts == 0):
        raise ValueError(f"splits: expected test windows of every class, none of "
                         f"{[labels[i] for i in np.flatnonzero(counts == 0)]}")
    rng = np.random.default_rng(seed)
    n_steps = int(round(hours * 3600.0 / hop_s))
    state = int(rng.integers(k)) if start is None else int(start)
    bout_class, bout_steps = _day_bouts(rng, state, p, means, n_steps, hop_s, dwell, sigma,
                                        min_dwell_s, max_dwell)
    n_bouts = len(bout_class)
    bout_start = np.r_[0, np.cumsum(bout_steps)[:-1]].astype(np.int64)
    y = np.repeat(bout_class, bout_steps)
    bout = np.repeat(np.arange(n_bouts, dtype=np.int64), bout_steps)

    rec = np.asarray(windows["recording"], dtype=np.int64)
    runs = _pool_runs(y_pool, windows)
    r_len, r_class = runs[2], runs[3]
    c_first = np.searchsorted(r_class, np.arange(k))
    c_n = np.bincount(r_class, minlength=k)
    if sampling == "sequential":
        pool_index, bout_recording = _play_runs(rng, bout_class, bout_steps, runs, c_first,
                                                c_n, rec)
    else:
        by_class = np.argsort(y_pool, kind="stable")
        cls_first = np.r_[0, np.cumsum(counts)[:-1]]
        draw = (rng.random(n_steps) * counts[y]).astype(np.int64)
        pool_index = by_class[cls_first[y] + draw]
        bout_recording = None
    ctx, names = _context(context, y, bout, rec[pool_index], labels)
    meta = {**info, "hours": hours, "hop_s": hop_s, "mean_dwell_s": means.tolist(),
            "dwell": dwell, "sigma": sigma, "min_dwell_s": min_dwell_s,
            "max_dwell_s": max_dwell_s, "transition": p.tolist(), "start": start,
            "sampling": sampling, "context": context, "seed": seed, "n_bouts": n_bouts,
            "bout_class": bout_class, "bout_start": bout_start, "bout_steps": bout_steps,
            "bout_recording": bout_recording,
            "n_distinct_windows": int(len(np.unique(pool_index))),
            "n_pool_windows": int(len(y_pool)),
            "n_pool_runs": {labels[c]: int(c_n[c]) for c in range(k)},
            "mean_pool_run_windows": {labels[c]: float(r_len[r_class == c].mean())
                                      for c in range(k)}}
    t = np.arange(n_steps, dtype=np.float64) * hop_s
    return Trace("har_day", t, y, ctx, pool_index, pool_x, tuple(labels), names, meta)


def kws_context(**kwargs) -> Trace:
    """A keyword-spotting context trace: forwards ``kwargs`` to
    ``mobiprox_lab.datasets.kws.context_trace`` (imported on first use)."""
    from . import kws

    return kws.context_trace(**kwargs)
