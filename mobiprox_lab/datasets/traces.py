"""Ordered input streams ("traces") with ground truth and a time axis, for the controllers.

A trace does not copy its inputs: it indexes a pool of model-ready inputs, so a
24-hour trace of ~67k windows costs a few hundred kilobytes and the softmax of
every configuration needs computing only once per pool item.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Trace:
    """A stream of ``T`` inferences.

    Attributes
    ----------
    name : short identifier, e.g. ``"har_replay"``.
    t : float64 (T,) time stamp of each inference in seconds from the start.
    y : int64 (T,) true class of each input.
    context : int64 (T,) context code of each input (activity bout, noise level...).
    pool_index : int64 (T,) row of ``pool_x`` fed at each step.
    pool_x : float32 (P, ...) model-ready inputs the trace draws from.
    labels : class names, ``labels[y]``.
    context_names : names of the context codes, ``context_names[context]``.
    meta : free-form parameters the trace was built with (seed, dwell times...).
    """

    name: str
    t: np.ndarray
    y: np.ndarray
    context: np.ndarray
    pool_index: np.ndarray
    pool_x: np.ndarray
    labels: tuple[str, ...]
    context_names: tuple[str, ...]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.t = np.asarray(self.t, dtype=np.float64)
        self.y = np.asarray(self.y, dtype=np.int64)
        self.context = np.asarray(self.context, dtype=np.int64)
        self.pool_index = np.asarray(self.pool_index, dtype=np.int64)
        n = len(self.t)
        for attr in ("y", "context", "pool_index"):
            if len(getattr(self, attr)) != n:
                raise ValueError(f"{attr}: expected length {n} (len(t)), "
                                 f"got {len(getattr(self, attr))}")
        if n and (self.pool_index.min() < 0 or self.pool_index.max() >= len(self.pool_x)):
            raise ValueError(f"pool_index: expected values in [0, {len(self.pool_x)}), "
                             f"got [{self.pool_index.min()}, {self.pool_index.max()}]")

    def __len__(self) -> int:
        return len(self.t)

    @property
    def x(self) -> np.ndarray:
        """The model-ready inputs in trace order, float32 (T, ...) (a gathered copy)."""
        return self.pool_x[self.pool_index]

    @property
    def duration_s(self) -> float:
        return float(self.t[-1] - self.t[0]) if len(self) else 0.0


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
             labels: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Context codes and names for ``kind`` in ``TRACE_CONTEXTS``."""
    if kind == "activity":
        return y, tuple(labels)
    if kind == "bout":
        first = np.flatnonzero(np.r_[True, bout[1:] != bout[:-1]]) if len(bout) else bout
        return bout, tuple(f"{b}: {labels[y[i]]}" for b, i in enumerate(first))
    if kind == "recording":
        ids, code = np.unique(recording, return_inverse=True)
        return code.astype(np.int64), tuple(f"recording {r}" for r in ids)
    raise ValueError(f"context: expected one of {TRACE_CONTEXTS}, got {kind!r}")


def _har_pool(source, standardisation=None
              ) -> tuple[np.ndarray, np.ndarray, dict, tuple[str, ...], dict]:
    """(pool_x, y, windows {subject, recording, order}, labels, info) of a HAR source:
    ``Splits`` from ``har.prepare`` (its test split) or ``har.ImuWindows``."""
    from . import Splits, har

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
                   "order": source.order}
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
    n_rec_changes = _runs(subs, recs)
    t = np.arange(len(sel)) * hop_s + n_rec_changes * gap_s
    bout = _runs(subs, ys)
    ctx, names = _context(context, ys, bout, recs, labels)
    rec_first = np.flatnonzero(np.r_[True, np.diff(n_rec_changes) != 0]) if len(sel) else sel
    meta = {**info, "subject": subject, "context": context, "hop_s": hop_s, "gap_s": gap_s,
            "subjects": np.unique(subs).tolist(), "recordings": recs[rec_first].tolist(),
            "n_bouts": int(bout[-1] + 1) if len(bout) else 0}
    return Trace("har_replay", t, ys, ctx, sel, pool_x, tuple(labels), names, meta)


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


def har_day(splits, hours: float = 24.0, *, mean_dwell_s=120.0, dwell: str = "exponential",
            sigma: float = 0.8, min_dwell_s: float = HAR_HOP_S, max_dwell_s: float | None = None,
            transition=None, start: int | None = None, sampling: str = "sequential",
            context: str = "bout", seed: int = 0, hop_s: float = HAR_HOP_S) -> Trace:
    """A synthetic day: activities from a Markov chain, windows from the held-out pool.

    splits : HAR ``Splits`` from ``har.prepare``; its test split is the pool.
    hours : trace length; one inference per window, every hop_s = 1.28 s, so 24 h gives
        round(86400 / 1.28) = 67,500 steps.
    Activities follow a jump chain: ``transition`` (K, K) non-negative, zero diagonal,
    rows normalised (default: uniform over the other classes); ``start`` = the first
    activity (default random). Each bout of activity k lasts a dwell time in seconds:
    "exponential" with mean ``mean_dwell_s[k]``, "lognormal" with that mean and log-std
    ``sigma``, or "uniform" on [min_dwell_s, max_dwell_s] (mean ignored); all clipped to
    [min_dwell_s, max_dwell_s] and rounded to whole windows (at least one).
    mean_dwell_s : seconds; a number, K numbers or {label: seconds}.
    sampling : "sequential" (each bout plays consecutive windows of one random test
        recording of its class from a random start, looping) or "iid" (each window drawn
        independently from the class's test windows).
    context : "bout", "activity" or "recording" (recording of the window played).
    meta holds every parameter and the bouts (class, first step, steps).
    """
    pool_x, y_pool, windows, labels, info = _har_pool(splits)
    k = len(labels)
    if k < 2:
        raise ValueError(f"splits: expected at least 2 classes, got {k}")
    if not hours > 0:
        raise ValueError(f"hours: expected a positive number, got {hours}")
    if not hop_s > 0:
        raise ValueError(f"hop_s: expected a positive number, got {hop_s}")
    if dwell not in DWELL_DISTRIBUTIONS:
        raise ValueError(f"dwell: expected one of {DWELL_DISTRIBUTIONS}, got {dwell!r}")
    if sampling not in ("sequential", "iid"):
        raise ValueError(f"sampling: expected 'sequential' or 'iid', got {sampling!r}")
    if context not in TRACE_CONTEXTS:
        raise ValueError(f"context: expected one of {TRACE_CONTEXTS}, got {context!r}")
    max_dwell = np.inf if max_dwell_s is None else float(max_dwell_s)
    if not 0 <= min_dwell_s <= max_dwell:
        raise ValueError(f"min_dwell_s, max_dwell_s: expected 0 <= min <= max, "
                         f"got {min_dwell_s}, {max_dwell_s}")
    if dwell == "uniform" and not np.isfinite(max_dwell):
        raise ValueError("max_dwell_s: expected a finite number with dwell='uniform', got None")
    if dwell == "lognormal" and not sigma > 0:
        raise ValueError(f"sigma: expected a positive number, got {sigma}")
    means = _per_class(mean_dwell_s, labels, "mean_dwell_s")
    p = _transition(transition, k)
    y_pool = np.asarray(y_pool, dtype=np.int64)
    counts = np.bincount(y_pool, minlength=k)
    if np.any(counts == 0):
        raise ValueError(f"splits: expected test windows of every class, none of "
                         f"{[labels[i] for i in np.flatnonzero(counts == 0)]}")
    if start is not None and not 0 <= start < k:
        raise ValueError(f"start: expected a class index in [0, {k}), got {start}")

    rng = np.random.default_rng(seed)
    n_steps = int(round(hours * 3600.0 / hop_s))
    cum = np.cumsum(p, axis=1)
    cum[:, -1] = 1.0
    cum_rows = [row.tolist() for row in cum]
    state = int(rng.integers(k)) if start is None else int(start)
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
    bout_start = np.r_[0, np.cumsum(bout_steps)[:-1]].astype(np.int64)
    y = np.repeat(bout_class, bout_steps)
    bout = np.repeat(np.arange(n_bouts, dtype=np.int64), bout_steps)

    rec = np.asarray(windows["recording"], dtype=np.int64)
    if sampling == "sequential":
        # pool rows grouped by (class, recording), each group in time order
        seq = np.lexsort((np.asarray(windows["order"]), rec, y_pool))
        new = np.r_[True, (y_pool[seq][1:] != y_pool[seq][:-1]) | (rec[seq][1:] != rec[seq][:-1])]
        g_start = np.flatnonzero(new)
        g_len = np.diff(np.r_[g_start, len(seq)])
        g_class = y_pool[seq][g_start]
        c_first = np.searchsorted(g_class, np.arange(k))
        c_n = np.bincount(g_class, minlength=k)
        g = c_first[bout_class] + (rng.random(n_bouts) * c_n[bout_class]).astype(np.int64)
        offset = (rng.random(n_bouts) * g_len[g]).astype(np.int64)
        j = np.arange(n_steps, dtype=np.int64) - np.repeat(bout_start, bout_steps)
        g_step = np.repeat(g, bout_steps)
        pool_index = seq[g_start[g_step] + (np.repeat(offset, bout_steps) + j) % g_len[g_step]]
        bout_recording = rec[seq[g_start[g]]]
    else:
        by_class = np.argsort(y_pool, kind="stable")
        c_first = np.r_[0, np.cumsum(counts)[:-1]]
        draw = (rng.random(n_steps) * counts[y]).astype(np.int64)
        pool_index = by_class[c_first[y] + draw]
        bout_recording = None
    ctx, names = _context(context, y, bout, rec[pool_index], labels)
    meta = {**info, "hours": hours, "hop_s": hop_s, "mean_dwell_s": means.tolist(),
            "dwell": dwell, "sigma": sigma, "min_dwell_s": min_dwell_s,
            "max_dwell_s": max_dwell_s, "transition": p.tolist(), "start": start,
            "sampling": sampling, "context": context, "seed": seed, "n_bouts": n_bouts,
            "bout_class": bout_class, "bout_start": bout_start, "bout_steps": bout_steps,
            "bout_recording": bout_recording}
    t = np.arange(n_steps, dtype=np.float64) * hop_s
    return Trace("har_day", t, y, ctx, pool_index, pool_x, tuple(labels), names, meta)


def kws_context(**kwargs) -> Trace:
    """A keyword-spotting context trace: forwards ``kwargs`` to
    ``mobiprox_lab.datasets.kws.context_trace`` (imported on first use)."""
    from . import kws

    return kws.context_trace(**kwargs)
