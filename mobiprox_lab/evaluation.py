"""Metrics for judging controllers: static baselines, time-shares, temperature, intervals.

Small pure functions on arrays; :mod:`mobiprox_lab.orchestration.experiments` composes them into the
controller tables and the headline. Conventions:

- ``probs_by_config`` float (C, T, K): softmax of each of the C configurations (0 = exact)
  on each of the T inputs of a trace.
- A *loss* is in percentage points (pp). The agreement loss of a schedule is
  ``100 * (1 - agreement with the exact model)``, the quantity the authors scored
  adaptation by; the accuracy loss uses true labels where the trace has them.
- ``relative_energy`` float (C,): inference energy of each configuration relative to
  conf0 (exact), from :mod:`mobiprox_lab.energy`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = [
    "agreement_loss_pp",
    "best_timeshare_energy",
    "fit_temperature",
    "grouped_accuracy_ci",
    "mean_ci",
    "schedule_relative_energy",
    "static_points",
    "temper",
    "timeshare_frontier",
]


def _probs(probs, name: str = "probs") -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim < 1 or p.shape[-1] < 2:
        raise ValueError(f"{name}: expected (..., n_classes >= 2) probabilities, got shape "
                         f"{p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name}: expected finite, non-negative probabilities")
    if not np.allclose(p.sum(axis=-1), 1.0, atol=1e-3):
        raise ValueError(f"{name}: expected rows summing to 1 (softmax outputs)")
    return p


def _energy(relative_energy, n: int | None = None) -> np.ndarray:
    e = np.asarray(relative_energy, dtype=np.float64)
    if e.ndim != 1 or (n is not None and len(e) != n):
        raise ValueError(f"relative_energy: expected {n or 'C'} values (one per configuration), "
                         f"got shape {e.shape}")
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("relative_energy: expected finite values > 0")
    return e


def temper(probs, temperature: float) -> np.ndarray:
    """Temperature-scaled softmax from a softmax: ``softmax(log(p) / temperature)``, float64
    of ``probs``' shape. T > 1 flattens, T < 1 sharpens; the argmax never changes."""
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature: expected a finite number > 0, got {temperature!r}")
    p = _probs(probs)
    logp = np.log(np.clip(p, 1e-300, None)) / t
    logp -= logp.max(axis=-1, keepdims=True)
    q = np.exp(logp)
    return q / q.sum(axis=-1, keepdims=True)


def fit_temperature(probs, labels, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature minimising the negative log-likelihood of ``labels`` (N,) under
    ``temper(probs, T)`` (N, K) (Guo et al. 2017's calibration); fit it on the tune split."""
    from scipy.optimize import minimize_scalar

    p = _probs(probs)
    if p.ndim != 2:
        raise ValueError(f"probs: expected (N, n_classes), got shape {p.shape}")
    y = np.asarray(labels)
    if y.shape != (len(p),) or not np.issubdtype(y.dtype, np.integer) or (
            len(y) and (y.min() < 0 or y.max() >= p.shape[1])):
        raise ValueError(f"labels: expected {len(p)} class indices in [0, {p.shape[1]})")
    logp = np.log(np.clip(p, 1e-300, None))

    def nll(log_t: float) -> float:
        z = logp / math.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(lse - z[np.arange(len(y)), y]))

    res = minimize_scalar(nll, bounds=(math.log(bounds[0]), math.log(bounds[1])),
                          method="bounded", options={"xatol": 1e-4})
    return float(math.exp(res.x))


def agreement_loss_pp(pred, reference_pred) -> float:
    """100 x the share of inputs where ``pred`` differs from the exact model's prediction."""
    a, b = np.asarray(pred), np.asarray(reference_pred)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"pred: expected the shape of reference_pred {b.shape}, got {a.shape}")
    return float(100.0 * np.mean(a != b)) if len(a) else math.nan


def static_points(probs_by_config, relative_energy, labels=None) -> pd.DataFrame:
    """One row per configuration run on every input: ``index``, ``loss_pp`` (agreement loss
    vs conf0), ``accuracy`` (on inputs with a label >= 0; NaN without labels) and
    ``relative_energy``."""
    p = _probs(probs_by_config, "probs_by_config")
    if p.ndim != 3:
        raise ValueError(f"probs_by_config: expected (C, T, n_classes), got shape {p.shape}")
    e = _energy(relative_energy, p.shape[0])
    pred = p.argmax(axis=2)
    rows = []
    for i in range(p.shape[0]):
        acc = math.nan
        if labels is not None:
            y = np.asarray(labels)
            if y.shape != (p.shape[1],):
                raise ValueError(f"labels: expected shape ({p.shape[1]},), got {y.shape}")
            known = y >= 0
            acc = float(np.mean(pred[i][known] == y[known])) if known.any() else math.nan
        rows.append({"index": i, "loss_pp": agreement_loss_pp(pred[i], pred[0]),
                     "accuracy": acc, "relative_energy": float(e[i])})
    return pd.DataFrame(rows)


def timeshare_frontier(loss_pp, relative_energy) -> tuple[np.ndarray, np.ndarray]:
    """The lower convex hull of the static points (loss, energy) from the lowest-loss point
    to the lowest-energy one: what running configuration i a share w of the time and j the
    rest can reach (loss and energy are both averages over inputs, so time-sharing mixes
    them linearly). Returns (loss_pp, energy) of the hull's vertices, loss ascending."""
    q = np.asarray(loss_pp, dtype=np.float64)
    e = _energy(relative_energy, len(q))
    if q.ndim != 1 or not np.all(np.isfinite(q)):
        raise ValueError(f"loss_pp: expected finite values, one per configuration, got {q}")
    order = np.lexsort((e, q))
    hull: list[int] = []
    for i in order:
        if hull and e[i] >= e[hull[-1]]:
            continue  # no energy gain for more loss: never on the lower-left frontier
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b when it lies on or above the segment a -> i
            if (e[b] - e[a]) * (q[i] - q[a]) >= (e[i] - e[a]) * (q[b] - q[a]):
                hull.pop()
            else:
                break
        hull.append(int(i))
    return q[hull], e[hull]


#: Losses within this many pp of a budget count as within it (float round-off).
LOSS_TOLERANCE_PP = 1e-9


def best_timeshare_energy(loss_pp, relative_energy, at_loss_pp: float) -> float:
    """The least relative energy a time-share of static configurations reaches with an
    agreement loss of at most ``at_loss_pp`` (+ :data:`LOSS_TOLERANCE_PP`); NaN when even
    the best static loses more."""
    hq, he = timeshare_frontier(loss_pp, relative_energy)
    x = float(at_loss_pp)
    if not math.isfinite(x):
        raise ValueError(f"at_loss_pp: expected a finite number, got {at_loss_pp!r}")
    x += LOSS_TOLERANCE_PP
    if x < hq[0]:
        return math.nan
    if x >= hq[-1]:
        return float(he[-1])
    return float(np.interp(x, hq, he))


def schedule_relative_energy(index, coefficients) -> float:
    """The authors' relative energy of a run: the mean, over inputs, of the energy
    coefficient of the configuration used, over conf0's coefficient."""
    idx = np.asarray(index)
    c = _energy(coefficients)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or (
            len(idx) and (idx.min() < 0 or idx.max() >= len(c))):
        raise ValueError(f"index: expected configuration indices in [0, {len(c)})")
    return float(c[idx].mean() / c[0])


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean of ``values`` (NaNs dropped); the
    interval is NaN with fewer than two values."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def grouped_accuracy_ci(correct, groups, level: float = 0.95, n_boot: int = 4000,
                        seed: int = 0) -> tuple[float, float, float]:
    """(accuracy, low, high): accuracy of ``correct`` (bool (N,)) with a percentile
    bootstrap interval that resamples whole ``groups`` (int (N,): subjects, voices) with
    replacement, so the interval shows how much the figure depends on who was held out.
    The interval is NaN with fewer than two groups."""
    c = np.asarray(correct, dtype=bool).ravel()
    g = np.asarray(groups).ravel()
    if g.shape != c.shape or not len(c):
        raise ValueError(f"correct, groups: expected two non-empty arrays of one length, got "
                         f"{c.shape} and {g.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a float in (0, 1), got {level!r}")
    _, inverse = np.unique(g, return_inverse=True)
    hits = np.bincount(inverse, weights=c.astype(np.float64))
    counts = np.bincount(inverse).astype(np.float64)
    acc = float(hits.sum() / counts.sum())
    if len(counts) < 2:
        return acc, math.nan, math.nan
    draw = np.random.default_rng(seed).integers(0, len(counts), (int(n_boot), len(counts)))
    boot = hits[draw].sum(axis=1) / counts[draw].sum(axis=1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return acc, float(lo), float(hi)
