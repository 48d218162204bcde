"""Run-time controllers that pick an approximation configuration per inference, and a simulator.

Configurations are numbered 0 (exact) .. N = n_configs - 1 (most approximate). A
controller holds ``index`` (the config for the next inference); after the
inference it is fed that inference's softmax with ``update(probs)`` and returns
the next index. :func:`simulate` replays a trace of precomputed softmax outputs
of every config and reports accuracy, agreement with the exact model and energy.

The authors' controllers (Mobiprox, arXiv 2303.11291, and its Android app) share one step rule:
"more" is ``i = min(i + step, N); step *= factor`` (factor 1 linear, 2
exponential), "less" is ``i //= 2; step = 1``. :class:`Controller` implements
them as ``_more()`` / ``_less()`` / ``_stay()``, so a strategy of your own is a
few lines:

>>> import numpy as np
>>> from mobiprox_lab import control
>>> class Confident(control.Controller):
...     '''More while the top class holds >= 90% of the mass, else back off.'''
...     def update(self, probs):
...         return self._more() if np.max(probs) >= 0.9 else self._less()
>>> c = Confident(n_configs=4)
>>> [c.update(p) for p in ([.95, .05], [.92, .08], [.6, .4], [.99, .01])]
[1, 2, 1, 2]
>>> probs = np.array([[[.95, .05]] * 4, [[.8, .2]] * 4, [[.7, .3]] * 4, [[.6, .4]] * 4])
>>> r = control.simulate(probs, Confident(4), energy_by_config=[1.0, .9, .8, .7])
>>> r.index.tolist(), round(r.summary()["relative_inference_energy"], 3)
([0, 1, 0, 1], 0.95)

Beyond the authors: :class:`OracleController` / :func:`oracle_indices` (the
cheapest schedule that keeps agreement; a lower bound on energy), and
:class:`BudgetController`, a wrapper that holds any controller to an energy
budget. Built-in controllers run in a Numba-compiled loop (``simulate(...,
fast=True)``); user-defined ones run the generic Python loop; both give the
same indices.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = [
    "BudgetController",
    "ConfidenceController",
    "Controller",
    "KalmanController",
    "NaiveController",
    "NoController",
    "OracleController",
    "PreparedProbs",
    "ReplayController",
    "SimResult",
    "StateController",
    "StaticController",
    "confidence_tables",
    "fill_confidence_table",
    "make_controller",
    "make_synthetic_probs",
    "oracle_frontier",
    "oracle_indices",
    "prepare",
    "simulate",
    "summary_table",
]


def _int_arg(name: str, value, lo: int, hi: int | None = None) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}") from None
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name}: expected an int {rng}, got {v}")
    return v


def _float_arg(name: str, value, lo: float = -math.inf, hi: float = math.inf) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number, got {value!r}") from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"{name}: expected a finite number in [{lo}, {hi}], got {value!r}")
    return v


def _float_array(name: str, value, *, copy: bool = False) -> np.ndarray:
    """``value`` as a float64 array; a ValueError naming ``name`` if it is not numeric."""
    try:
        a = np.array(value, dtype=np.float64, copy=True if copy else None)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a numeric array, got {type(value).__name__} "
                         f"({exc})") from None
    return a


# =========================================================================== base class


class Controller:
    """Base class: holds ``index`` and ``step`` and implements the shared step rule.

    n_configs : number of configurations (index 0 exact .. n_configs - 1 most approximate).
    factor : step growth after each "more": 1 linear, 2 exponential (int >= 1).

    Subclasses override :meth:`update` (and :meth:`reset` if they keep state, calling
    ``super().reset()``; a subclass ``__init__`` sets its own attributes before calling
    ``super().__init__``, which calls ``reset()``). ``_more()``, ``_less()`` and
    ``_stay()`` apply a decision and return the new index. The step is capped at ``N`` (a
    larger step cannot change ``min(i + step, N)``), which keeps it a machine integer.
    """

    needs_lookahead: bool = False
    """True if :func:`simulate` must call ``lookahead(probs_all, label)`` before each step."""

    def __init__(self, n_configs: int, factor: int = 1) -> None:
        self.n_configs = _int_arg("n_configs", n_configs, 1)
        self.factor = _int_arg("factor", factor, 1)
        self.index = 0
        self.step = 1
        self.reset()

    @property
    def name(self) -> str:
        """Short label used in summaries, e.g. ``"State x2"``."""
        base = type(self).__name__.removesuffix("Controller") or type(self).__name__
        return f"{base} x{self.factor}"

    def __repr__(self) -> str:
        return f"<{self.name} index={self.index} step={self.step} n_configs={self.n_configs}>"

    def reset(self) -> None:
        """Back to the initial state: index 0, step 1."""
        self.index = 0
        self.step = 1

    def update(self, probs) -> int:
        """Feed the softmax (n_classes,) of the inference just made with ``self.index``.

        Built-in controllers also take ``used_index``: the config that actually produced
        ``probs`` when a wrapper (:class:`BudgetController`) overrode ``index``.
        """
        raise NotImplementedError(f"{type(self).__name__}.update: override it in the subclass")

    # -- the shared step mechanics --------------------------------------------------
    def _more(self) -> int:
        """Approximate more: ``i = min(i + step, N)``, then ``step *= factor``."""
        n = self.n_configs - 1
        self.index = min(self.index + self.step, n)
        self.step = min(self.step * self.factor, max(n, 1))
        return self.index

    def _less(self) -> int:
        """Approximate less: ``i //= 2``, ``step = 1``."""
        self.index = self.index // 2
        self.step = 1
        return self.index

    def _stay(self) -> int:
        """Keep the index."""
        return self.index

    # -- hooks used by simulate -------------------------------------------------------
    def _kernel_spec(self, n_classes: int):
        """(kind, int params, float params, lo (C,K), hi (C,K)) for the jitted loop, or None."""
        return None

    def _fast_indices(self, prep: PreparedProbs, labels) -> np.ndarray | None:
        """Indices (T,) computed without the Python loop, or None if there is no fast path."""
        spec = self._kernel_spec(prep.n_classes) if _native(self, "_kernel_spec") else None
        if spec is None:
            return None
        kind, ip, fp, lo, hi = spec
        out = np.empty(prep.n_steps, dtype=np.int64)
        _run_kernel(kind, self.n_configs, self.factor, ip, fp, prep.pred, prep.conf, lo, hi,
                    False, _ONE, 0.0, 0.0, 0.0, out)
        return out


def _owner(cls: type, attr: str) -> type | None:
    return next((k for k in cls.__mro__ if attr in k.__dict__), None)


def _native(ctrl: Controller, anchor: str) -> bool:
    """True if ``ctrl``'s behaviour comes from the class that provides its fast path
    ``anchor`` (a subclass overriding ``update`` etc. must run the Python loop)."""
    cls = type(ctrl)
    home = _owner(cls, anchor)
    for attr in ("update", "reset", "lookahead", "_more", "_less", "_stay"):
        o = _owner(cls, attr)
        if o is not None and o not in home.__mro__:
            return False
    return True


def _read(probs) -> tuple[int, float]:
    p = np.asarray(probs)
    if p.ndim != 1 or p.shape[0] == 0:
        raise ValueError(f"probs: expected a softmax vector of shape (n_classes,), got shape "
                         f"{p.shape}")
    k = int(np.argmax(p))
    return k, float(p[k])


_DUMMY2 = np.zeros((1, 1), dtype=np.float64)
_NOI = np.zeros(1, dtype=np.int64)
_NOF = np.zeros(1, dtype=np.float64)
_ONE = np.ones(1, dtype=np.float64)

_K_NONE, _K_STATIC, _K_NAIVE, _K_STATE, _K_KALMAN, _K_CONF = range(6)


# =========================================================================== the authors'


class NoController(Controller):
    """Always the exact configuration (index 0). ``factor`` is accepted and ignored."""

    @property
    def name(self) -> str:
        return "None"

    def update(self, probs, used_index: int | None = None) -> int:
        return 0

    def _kernel_spec(self, n_classes):
        return _K_NONE, _NOI, _NOF, _DUMMY2, _DUMMY2


class StaticController(Controller):
    """Always configuration ``index``."""

    def __init__(self, n_configs: int, index: int, factor: int = 1) -> None:
        n = _int_arg("n_configs", n_configs, 1)
        self.fixed_index = _int_arg("index", index, 0, n - 1)
        super().__init__(n, factor)

    @property
    def name(self) -> str:
        return f"Static {self.fixed_index}"

    def reset(self) -> None:
        super().reset()
        self.index = self.fixed_index

    def update(self, probs, used_index: int | None = None) -> int:
        return self.index

    def _kernel_spec(self, n_classes):
        return _K_STATIC, np.array([self.fixed_index], dtype=np.int64), _NOF, _DUMMY2, _DUMMY2


class NaiveController(Controller):
    """Less when the predicted class differs from the previous prediction, else more.

    The first call counts as unchanged (more). (The authors' code compared with the
    first prediction only; this compares with the previous one, as intended.)
    """

    def reset(self) -> None:
        super().reset()
        self._prev: int | None = None

    def update(self, probs, used_index: int | None = None) -> int:
        pred, _ = _read(probs)
        changed = self._prev is not None and pred != self._prev
        self._prev = pred
        return self._less() if changed else self._more()

    def _kernel_spec(self, n_classes):
        return _K_NAIVE, _NOI, _NOF, _DUMMY2, _DUMMY2


class StateController(Controller):
    """Votes on the stability of the last ``window`` predicted classes.

    reliable = the last ``window`` (3) predictions are all equal;
    votes = max(0, v) + 1 if reliable else min(0, v) - 1, clamped to +-``vote_limit`` (2);
    votes <= -limit: less, votes = 0; votes >= limit: more, votes = 0. Until ``window``
    predictions have been seen, votes are not counted and the index stays.
    """

    def __init__(self, n_configs: int, factor: int = 1, window: int = 3,
                 vote_limit: int = 2) -> None:
        self.window = _int_arg("window", window, 1)
        self.vote_limit = _int_arg("vote_limit", vote_limit, 1)
        super().__init__(n_configs, factor)

    def reset(self) -> None:
        super().reset()
        self._hist: deque[int] = deque(maxlen=self.window)
        self.votes = 0

    def update(self, probs, used_index: int | None = None) -> int:
        pred, _ = _read(probs)
        self._hist.append(pred)
        if len(self._hist) < self.window:
            return self._stay()
        reliable = all(p == self._hist[0] for p in self._hist)
        v = max(0, self.votes) + 1 if reliable else min(0, self.votes) - 1
        self.votes = max(-self.vote_limit, min(self.vote_limit, v))
        if self.votes <= -self.vote_limit:
            self.votes = 0
            return self._less()
        if self.votes >= self.vote_limit:
            self.votes = 0
            return self._more()
        return self._stay()

    def _kernel_spec(self, n_classes):
        ip = np.array([self.window, self.vote_limit], dtype=np.int64)
        return _K_STATE, ip, _NOF, _DUMMY2, _DUMMY2


class KalmanController(Controller):
    """1-D Kalman filter on z = 1 if the predicted class equals the previous one (or first call).

    x0 = 1, P0 = 100, R = 1, Q = 0.1: K = P / (P + R); x += K (z - x); P = (1 - K) P + Q.
    x < ``lower`` (0.5): less; x > ``upper`` (0.95): more; else stay.
    """

    def __init__(self, n_configs: int, factor: int = 1, x0: float = 1.0, p0: float = 100.0,
                 r: float = 1.0, q: float = 0.1, lower: float = 0.5,
                 upper: float = 0.95) -> None:
        self.x0 = _float_arg("x0", x0)
        self.p0 = _float_arg("p0", p0, 0.0)
        self.r = _float_arg("r", r, 0.0)
        self.q = _float_arg("q", q, 0.0)
        self.lower = _float_arg("lower", lower)
        self.upper = _float_arg("upper", upper)
        if self.r <= 0:
            raise ValueError(f"r: expected the measurement noise R > 0, got {r!r}")
        if self.lower > self.upper:
            raise ValueError(f"lower: expected <= upper ({self.upper!r}), got {self.lower!r}")
        super().__init__(n_configs, factor)

    def reset(self) -> None:
        super().reset()
        self.x = self.x0
        self.p = self.p0
        self._prev: int | None = None

    def update(self, probs, used_index: int | None = None) -> int:
        pred, _ = _read(probs)
        z = 1.0 if (self._prev is None or pred == self._prev) else 0.0
        self._prev = pred
        gain = self.p / (self.p + self.r)
        self.x = self.x + gain * (z - self.x)
        self.p = (1.0 - gain) * self.p + self.q
        if self.x < self.lower:
            return self._less()
        if self.x > self.upper:
            return self._more()
        return self._stay()

    def _kernel_spec(self, n_classes):
        fp = np.array([self.x0, self.p0, self.r, self.q, self.lower, self.upper])
        return _K_KALMAN, _NOI, fp, _DUMMY2, _DUMMY2


def fill_confidence_table(table, default: float, *, name: str = "table") -> np.ndarray:
    """Replace NaN entries of a (n_configs, n_classes) confidence table.

    A NaN (the class was never predicted correctly / wrongly by that config during
    profiling) takes the mean of the config's other classes; a config with no entry at
    all takes the mean of the whole table; an all-NaN table becomes ``default``.
    Returns a new float64 array.
    """
    t = _float_array(name, table, copy=True)
    if t.ndim != 2:
        raise ValueError(f"{name}: expected shape (n_configs, n_classes), got {t.shape}")
    finite = ~np.isnan(t)
    if np.any(np.isinf(t)) or np.any(t[finite] < 0) or np.any(t[finite] > 1):
        raise ValueError(f"{name}: expected confidences in [0, 1] or NaN")
    if not finite.any():
        return np.full_like(t, float(default))
    overall = float(t[finite].mean())
    count = finite.sum(axis=1)
    row = np.where(count > 0, np.where(finite, t, 0.0).sum(axis=1) / np.maximum(count, 1),
                   overall)
    return np.where(finite, t, row[:, None])


class ConfidenceController(Controller):
    """Compares the top-class confidence with per-config, per-class thresholds from profiling.

    conf_correct, conf_wrong : (n_configs, n_classes) mean softmax confidence of config i
        on its correct / wrong predictions of class k (keyed by the predicted class, the
        only one known at run time; see :func:`confidence_tables`). NaN entries are
        filled by :func:`fill_confidence_table` (defaults 1.0 / 0.0 for an all-NaN table).
    lower = mw + lower_frac (mc - mw), upper = mw + upper_frac (mc - mw), with mc / mw
    taken for the config that produced the softmax and its predicted class.
    c < lower: less (checked first); c > upper: more; else stay.
    """

    def __init__(self, n_configs: int, conf_correct, conf_wrong, factor: int = 1,
                 lower_frac: float = 0.5, upper_frac: float = 0.75) -> None:
        n = _int_arg("n_configs", n_configs, 1)
        mc = fill_confidence_table(conf_correct, 1.0, name="conf_correct")
        mw = fill_confidence_table(conf_wrong, 0.0, name="conf_wrong")
        if mc.shape[0] != n:
            raise ValueError(f"conf_correct: expected {n} rows (n_configs), got shape {mc.shape}")
        if mw.shape != mc.shape:
            raise ValueError(f"conf_wrong: expected shape {mc.shape} (conf_correct's), "
                             f"got {mw.shape}")
        self.lower_frac = _float_arg("lower_frac", lower_frac)
        self.upper_frac = _float_arg("upper_frac", upper_frac)
        if self.lower_frac > self.upper_frac:
            raise ValueError(f"lower_frac: expected <= upper_frac ({self.upper_frac!r}), got "
                             f"{self.lower_frac!r}")
        self.conf_correct, self.conf_wrong = mc, mw
        self.lower_table = mw + self.lower_frac * (mc - mw)
        self.upper_table = mw + self.upper_frac * (mc - mw)
        super().__init__(n, factor)

    @property
    def n_classes(self) -> int:
        return self.conf_correct.shape[1]

    def update(self, probs, used_index: int | None = None) -> int:
        pred, c = _read(probs)
        if pred >= self.n_classes:
            raise ValueError(f"probs: expected {self.n_classes} classes (conf_correct's columns), "
                             f"got {np.shape(probs)[0]}")
        used = self.index if used_index is None else used_index
        if c < self.lower_table[used, pred]:
            return self._less()
        if c > self.upper_table[used, pred]:
            return self._more()
        return self._stay()

    def _kernel_spec(self, n_classes):
        if n_classes != self.n_classes:
            raise ValueError(f"conf_correct: expected {n_classes} columns (the trace's n_classes), "
                             f"got {self.n_classes}")
        return _K_CONF, _NOI, _NOF, self.lower_table, self.upper_table


def confidence_tables(probs_by_config, labels) -> tuple[np.ndarray, np.ndarray]:
    """Per-config, per-predicted-class mean confidence on correct / wrong predictions.

    probs_by_config : (n_configs, T, n_classes) softmax (or a :class:`PreparedProbs`).
    labels : (T,) true class. Returns (conf_correct, conf_wrong), each (n_configs,
    n_classes), NaN where config i never predicted class k correctly / wrongly.
    """
    prep = probs_by_config if isinstance(probs_by_config, PreparedProbs) else prepare(
        probs_by_config)
    y = _check_labels(labels, prep)
    C, K = prep.n_configs, prep.n_classes
    out = [np.full((C, K), np.nan), np.full((C, K), np.nan)]
    for c in range(C):
        ok = prep.pred[c] == y
        for table, mask in ((out[0], ok), (out[1], ~ok)):
            n = np.bincount(prep.pred[c][mask], minlength=K)
            s = np.bincount(prep.pred[c][mask], weights=prep.conf[c][mask], minlength=K)
            table[c] = np.where(n > 0, s / np.maximum(n, 1), np.nan)
    return out[0], out[1]


# =========================================================================== beyond


def _cost_vector(n_configs: int, energy_by_config) -> np.ndarray:
    if energy_by_config is None:  # cheapest = most approximate
        return np.arange(n_configs - 1, -1, -1, dtype=np.float64)
    return _check_energy(energy_by_config, n_configs)


def _oracle_schedule(pred: np.ndarray, ref: np.ndarray, cost: np.ndarray, fallback_index: int,
                     min_agreement: float) -> np.ndarray:
    C, T = pred.shape
    match = pred == ref[None, :]
    masked = np.where(match, cost[:, None], np.inf)
    best = (C - 1) - np.argmin(masked[::-1], axis=0)  # ties -> highest index
    any_match = match.any(axis=0)
    idx = np.where(any_match, best, fallback_index).astype(np.int64)
    if min_agreement < 1.0:
        cheapest = (C - 1) - int(np.argmin(cost[::-1]))
        k = math.floor((1.0 - min_agreement) * T + 1e-9) - int((~any_match).sum())
        if k > 0:
            saving = np.where(any_match, cost[idx] - cost[cheapest], 0.0)
            order = np.argsort(-saving, kind="stable")[:k]
            order = order[saving[order] > 0]
            idx[order] = cheapest
    return idx


def oracle_indices(probs_by_config, energy_by_config=None, labels=None, *,
                   target: str = "baseline", baseline: int = 0, fallback: str = "baseline",
                   min_agreement: float = 1.0) -> np.ndarray:
    """The oracle's schedule (T,) of config indices: a lower bound on energy.

    Per input, the cheapest config (lowest ``energy_by_config``, ties to the higher index;
    without energies the highest index) whose prediction matches config ``baseline``'s
    (``target="baseline"``) or the label (``target="correct"``; ``fallback`` when none is
    correct: ``"baseline"`` = config ``baseline``, ``"cheapest"`` = the cheapest config).
    ``min_agreement`` < 1 lets a fraction of inputs stop matching, choosing those where
    that saves most: the cheapest schedule with at least that agreement (accuracy).
    """
    prep = probs_by_config if isinstance(probs_by_config, PreparedProbs) else prepare(
        probs_by_config)
    C = prep.n_configs
    baseline = _int_arg("baseline", baseline, 0, C - 1)
    cost = _cost_vector(C, energy_by_config)
    if target == "baseline":
        ref = prep.pred[baseline]
    elif target == "correct":
        if labels is None:
            raise ValueError("labels: required by target='correct'")
        ref = _check_labels(labels, prep)
    else:
        raise ValueError(f"target: expected 'baseline' or 'correct', got {target!r}")
    if fallback == "baseline":
        fb = baseline
    elif fallback == "cheapest":
        fb = (C - 1) - int(np.argmin(cost[::-1]))
    else:
        raise ValueError(f"fallback: expected 'baseline' or 'cheapest', got {fallback!r}")
    min_agreement = _float_arg("min_agreement", min_agreement, 0.0, 1.0)
    return _oracle_schedule(prep.pred, ref, cost, fb, min_agreement)


def oracle_frontier(probs_by_config, energy_by_config, labels=None, *, target: str = "baseline",
                    baseline: int = 0, fallback: str = "baseline"):
    """Lowest relative inference energy reachable at each agreement (or accuracy) level.

    Returns a DataFrame with columns ``disagreements`` (inputs allowed to stop matching),
    ``agreement`` (fraction matching), ``relative_energy`` (mean energy / energy[0]), one row
    per level from full agreement down to the cheapest schedule. Any controller's
    (agreement, relative energy) lies on or above this curve.
    """
    import pandas as pd

    prep = probs_by_config if isinstance(probs_by_config, PreparedProbs) else prepare(
        probs_by_config)
    cost = _check_energy(energy_by_config, prep.n_configs)
    T = prep.n_steps
    idx0 = oracle_indices(prep, cost, labels, target=target, baseline=baseline,
                          fallback=fallback)
    ref = prep.pred[baseline] if target == "baseline" else _check_labels(labels, prep)
    chosen = prep.pred[idx0, np.arange(T)] == ref
    cheapest = (prep.n_configs - 1) - int(np.argmin(cost[::-1]))
    saving = np.where(chosen, cost[idx0] - cost[cheapest], 0.0)
    saving = np.sort(saving[saving > 0])[::-1]
    base_total = float(cost[idx0].sum())
    n0 = int(chosen.sum())
    k = np.arange(len(saving) + 1)
    total = base_total - np.concatenate([[0.0], np.cumsum(saving)])
    return pd.DataFrame({"disagreements": k, "agreement": (n0 - k) / T,
                         "relative_energy": total / T / cost[0]})


class OracleController(Controller):
    """Looks at every config's output on the current input and picks the cheapest that matches.

    energy_by_config : (n_configs,) energies, or None (cheapest = highest index).
    target : ``"baseline"`` (match config ``baseline``'s prediction) or ``"correct"`` (match
        the label; ``fallback`` config when none does). Not realisable on a device: a bound.
    :func:`simulate` feeds it through ``lookahead(probs_all (n_configs, n_classes), label)``.
    """

    needs_lookahead = True

    def __init__(self, n_configs: int, energy_by_config=None, target: str = "baseline",
                 baseline: int = 0, fallback: str = "baseline") -> None:
        n = _int_arg("n_configs", n_configs, 1)
        self.cost = _cost_vector(n, energy_by_config)
        self.energy_by_config = None if energy_by_config is None else self.cost
        if target not in ("baseline", "correct"):
            raise ValueError(f"target: expected 'baseline' or 'correct', got {target!r}")
        if fallback not in ("baseline", "cheapest"):
            raise ValueError(f"fallback: expected 'baseline' or 'cheapest', got {fallback!r}")
        self.target, self.fallback = target, fallback
        self.baseline = _int_arg("baseline", baseline, 0, n - 1)
        super().__init__(n, 1)

    @property
    def name(self) -> str:
        return f"Oracle ({self.target})"

    def lookahead(self, probs_all, label: int | None = None) -> int:
        """Choose the config for the current input from every config's softmax (C, K)."""
        p = np.asarray(probs_all)
        if p.ndim != 2 or p.shape[0] != self.n_configs:
            raise ValueError(f"probs_all: expected shape ({self.n_configs}, n_classes), "
                             f"got {p.shape}")
        preds = [int(np.argmax(p[c])) for c in range(self.n_configs)]
        if self.target == "baseline":
            ref = preds[self.baseline]
        else:
            if label is None:
                raise ValueError("labels: required by OracleController(target='correct')")
            ref = int(label)
        best, best_cost = -1, math.inf
        for c in range(self.n_configs):
            if preds[c] == ref and self.cost[c] <= best_cost:
                best, best_cost = c, self.cost[c]
        if best < 0:
            if self.fallback == "baseline":
                best = self.baseline
            else:
                best = min(range(self.n_configs), key=lambda c: (self.cost[c], -c))
        self.index = best
        return best

    def update(self, probs, used_index: int | None = None) -> int:
        return self.index

    def _fast_indices(self, prep, labels):
        if not _native(self, "_fast_indices"):
            return None
        if self.target == "correct" and labels is None:
            raise ValueError("labels: required by OracleController(target='correct')")
        return oracle_indices(prep, self.energy_by_config, labels, target=self.target,
                              baseline=self.baseline, fallback=self.fallback)


class ReplayController(Controller):
    """Replays a fixed schedule ``indices`` (T,): e.g. ``oracle_indices(..., min_agreement=.9)``."""

    def __init__(self, n_configs: int, indices) -> None:
        n = _int_arg("n_configs", n_configs, 1)
        idx = np.asarray(indices)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"indices: expected a 1-D int array, got {idx.dtype} {idx.shape}")
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"indices: expected values in [0, {n}), "
                             f"got [{idx.min()}, {idx.max()}]")
        self.indices = idx.astype(np.int64)
        super().__init__(n, 1)

    @property
    def name(self) -> str:
        return "Replay"

    def reset(self) -> None:
        super().reset()
        self._t = 0
        self.index = int(self.indices[0]) if len(self.indices) else 0

    def update(self, probs, used_index: int | None = None) -> int:
        self._t += 1
        if self._t > len(self.indices):
            raise IndexError(f"indices: the schedule has {len(self.indices)} steps; the trace "
                             "is longer")
        if self._t < len(self.indices):
            self.index = int(self.indices[self._t])
        return self.index

    def _fast_indices(self, prep, labels):
        if not _native(self, "_fast_indices"):
            return None
        if len(self.indices) != prep.n_steps:
            raise ValueError(f"indices: expected length {prep.n_steps} (the trace's T), "
                             f"got {len(self.indices)}")
        return self.indices.copy()


class BudgetController(Controller):
    """Holds any controller to an energy budget: the long-run mean of
    ``energy_by_config[i] / energy_by_config[0]`` stays at or below ``target_relative_energy``.

    An integral (token-bucket) loop: ``slack`` accumulates ``target - e[i]`` after every
    inference (the energy saved against the budget so far, in exact-inference units).
    Before each inference the cap is ``target + gain * slack``; if the inner controller's
    choice costs more than the cap, the least approximate config within the cap is used
    instead (the cheapest config if none is). When ``slack <= 0`` the cap is at most the
    target, so ``slack`` never drops below ``min(initial_slack, target - max e)``: over T
    inferences the mean relative energy is at most ``target + max(0, initial_slack + max e
    - target) / T``. Saved-up slack lets the inner controller run above budget later;
    ``gain`` (1 / relative-energy units) sets how fast: larger = tighter tracking, more
    switching.

    inner : the controller whose choices are capped. Its own state steps on its own index;
    it sees the softmax of (and, for Confidence, the tables of) the config actually used.
    """

    def __init__(self, inner: Controller, energy_by_config, target_relative_energy: float,
                 gain: float = 0.05, initial_slack: float = 0.0) -> None:
        if not isinstance(inner, Controller):
            raise TypeError(f"inner: expected a Controller, got {type(inner).__name__}")
        n = inner.n_configs
        e = _check_energy(energy_by_config, n)
        self.inner = inner
        self._inner_takes_used = "used_index" in inspect.signature(inner.update).parameters
        self.energy_by_config = e
        self.e_rel = e / e[0]
        lo = float(self.e_rel.min())
        self.target = _float_arg("target_relative_energy", target_relative_energy)
        if self.target < lo:
            raise ValueError(f"target_relative_energy: expected >= {lo:.4g} (the cheapest "
                             f"config's relative energy), got {self.target!r}")
        self.gain = _float_arg("gain", gain, 0.0)
        self.initial_slack = _float_arg("initial_slack", initial_slack)
        self._cheapest = int(np.argmin(self.e_rel))
        super().__init__(n, 1)

    @property
    def name(self) -> str:
        return f"Budget {self.target:.2f} ({self.inner.name})"

    @property
    def needs_lookahead(self) -> bool:  # type: ignore[override]
        return self.inner.needs_lookahead

    def _effective(self, i: int) -> int:
        cap = self.target + self.gain * self.slack
        if self.e_rel[i] <= cap:
            return i
        for k in range(self.n_configs):
            if self.e_rel[k] <= cap:
                return k
        return self._cheapest

    def reset(self) -> None:
        super().reset()
        self.inner.reset()
        self.slack = self.initial_slack
        self.index = self._effective(self.inner.index)

    def lookahead(self, probs_all, label: int | None = None) -> int:
        self.inner.lookahead(probs_all, label)
        self.index = self._effective(self.inner.index)
        return self.index

    def update(self, probs, used_index: int | None = None) -> int:
        used = self.index if used_index is None else used_index
        if self._inner_takes_used:
            self.inner.update(probs, used_index=used)
        else:
            self.inner.update(probs)
        self.slack += self.target - self.e_rel[used]
        self.index = self._effective(self.inner.index)
        return self.index

    def _fast_indices(self, prep, labels):
        if not (_native(self, "_fast_indices") and _native(self.inner, "_kernel_spec")):
            return None
        spec = self.inner._kernel_spec(prep.n_classes)
        if spec is None:
            return None
        kind, ip, fp, lo, hi = spec
        out = np.empty(prep.n_steps, dtype=np.int64)
        _run_kernel(kind, self.n_configs, self.inner.factor, ip, fp, prep.pred, prep.conf, lo,
                    hi, True, self.e_rel, self.target, self.gain, self.initial_slack, out)
        return out


_BUILTINS = {
    "none": NoController, "naive": NaiveController, "state": StateController,
    "kalman": KalmanController, "confidence": ConfidenceController,
    "static": StaticController,
}


def make_controller(name: str, n_configs: int, factor: int = 1, **kwargs) -> Controller:
    """A built-in controller by name: none, static (index=), naive, state, kalman,
    confidence (conf_correct=, conf_wrong=)."""
    try:
        cls = _BUILTINS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"name: expected one of {sorted(_BUILTINS)}, got {name!r}") from None
    return cls(n_configs, factor=factor, **kwargs)


# =========================================================================== jitted loop


@njit(cache=True)
def _run_kernel(kind, n_configs, factor, ip, fp, pred, conf, lo, hi, budget, e_rel, target,
                gain, slack0, out):  # pragma: no cover - compiled
    T = pred.shape[1]
    n = n_configs - 1
    step_cap = max(n, 1)
    i = 0
    step = 1
    if kind == 1:
        i = ip[0]
    prev = -1
    run = 0
    seen = 0
    votes = 0
    x = 0.0
    p_var = 0.0
    if kind == 4:
        x = fp[0]
        p_var = fp[1]
    slack = slack0
    cheapest = 0
    if budget:
        for k in range(n_configs):
            if e_rel[k] < e_rel[cheapest]:
                cheapest = k
    for t in range(T):
        j = i
        if budget:
            cap = target + gain * slack
            if e_rel[i] > cap:
                j = cheapest
                for k in range(n_configs):
                    if e_rel[k] <= cap:
                        j = k
                        break
        out[t] = j
        pr = pred[j, t]
        action = 0  # -1 less, 0 stay, 1 more
        if kind == 2:  # naive
            action = 1 if (prev < 0 or pr == prev) else -1
        elif kind == 3:  # state
            run = run + 1 if pr == prev else 1
            seen += 1
            if seen >= ip[0]:
                limit = ip[1]
                if run >= ip[0]:
                    v = max(0, votes) + 1
                else:
                    v = min(0, votes) - 1
                votes = max(-limit, min(limit, v))
                if votes <= -limit:
                    votes = 0
                    action = -1
                elif votes >= limit:
                    votes = 0
                    action = 1
        elif kind == 4:  # kalman
            z = 1.0 if (prev < 0 or pr == prev) else 0.0
            g = p_var / (p_var + fp[2])
            x = x + g * (z - x)
            p_var = (1.0 - g) * p_var + fp[3]
            if x < fp[4]:
                action = -1
            elif x > fp[5]:
                action = 1
        elif kind == 5:  # confidence
            c = conf[j, t]
            if c < lo[j, pr]:
                action = -1
            elif c > hi[j, pr]:
                action = 1
        prev = pr
        if action == 1:
            i = min(i + step, n)
            step = min(step * factor, step_cap)
        elif action == -1:
            i = i // 2
            step = 1
        if budget:
            slack += target - e_rel[j]
    return out


# =========================================================================== simulation


@dataclass(frozen=True)
class PreparedProbs:
    """A validated trace with its per-config argmax / max precomputed (reuse it across runs).

    probs : (n_configs, T, n_classes) softmax. pred : int64 (n_configs, T) predicted class.
    conf : float64 (n_configs, T) softmax at the predicted class.
    """

    probs: np.ndarray
    pred: np.ndarray
    conf: np.ndarray

    @property
    def n_configs(self) -> int:
        return self.probs.shape[0]

    @property
    def n_steps(self) -> int:
        return self.probs.shape[1]

    @property
    def n_classes(self) -> int:
        return self.probs.shape[2]


def prepare(probs_by_config, *, atol: float = 1e-3) -> PreparedProbs:
    """Validate a (n_configs, T, n_classes) softmax array and precompute argmax / max.

    Rows must be finite, >= 0 and sum to 1 within ``atol``.
    """
    try:
        p = np.asarray(probs_by_config)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"probs_by_config: expected an array of shape (n_configs, T, "
                         f"n_classes), got {type(probs_by_config).__name__} ({exc})") from None
    if p.ndim != 3:
        raise ValueError(f"probs_by_config: expected shape (n_configs, T, n_classes), got "
                         f"{p.ndim}-D shape {p.shape}")
    if min(p.shape) == 0:
        raise ValueError(f"probs_by_config: expected non-empty axes, got shape {p.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        raise ValueError(f"probs_by_config: expected a float array of softmax outputs, got "
                         f"dtype {p.dtype}")
    if p.dtype not in (np.float32, np.float64):  # float16 / longdouble: compute in float64
        p = p.astype(np.float64)
    pred = np.empty(p.shape[:2], dtype=np.int64)
    conf = np.empty(p.shape[:2], dtype=np.float64)
    atol = _float_arg("atol", atol, 0.0)
    code, c, t, value = _prepare_kernel(np.ascontiguousarray(p), atol, pred, conf)
    if code == 1:
        raise ValueError(f"probs_by_config: expected finite softmax values, got NaN/inf at "
                         f"config {c}, step {t}")
    if code == 2:
        raise ValueError(f"probs_by_config: expected values >= 0 (softmax), got {value:.6g} at "
                         f"config {c}, step {t}")
    if code == 3:
        raise ValueError(f"probs_by_config: expected rows summing to 1 (softmax, atol {atol}), "
                         f"got {value:.6g} at config {c}, step {t}")
    return PreparedProbs(p, pred, conf)


@njit(cache=True)
def _prepare_kernel(p, atol, pred, conf):  # pragma: no cover - compiled
    """One pass: validate every row and fill argmax (first max) / max. Returns
    (code, config, step, value): code 0 ok, 1 non-finite, 2 negative, 3 bad sum."""
    C, T, K = p.shape
    for c in range(C):
        for t in range(T):
            row = p[c, t]
            best = 0
            bestv = row[0]
            total = 0.0
            for k in range(K):
                v = row[k]
                if not np.isfinite(v):
                    return 1, c, t, 0.0
                if v < 0:
                    return 2, c, t, float(v)
                total += v
                if v > bestv:
                    best = k
                    bestv = v
            if abs(total - 1.0) > atol:
                return 3, c, t, total
            pred[c, t] = best
            conf[c, t] = bestv
    return 0, 0, 0, 0.0


def _check_energy(energy_by_config, n_configs: int) -> np.ndarray:
    e = _float_array("energy_by_config", energy_by_config)
    if e.ndim != 1 or len(e) != n_configs:
        raise ValueError(f"energy_by_config: expected {n_configs} values (one per config), got "
                         f"shape {e.shape}")
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError(f"energy_by_config: expected finite values > 0, got {e.tolist()}")
    return e


def _check_labels(labels, prep: PreparedProbs) -> np.ndarray:
    try:
        y = np.asarray(labels)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"labels: expected {prep.n_steps} integer class indices, got "
                         f"{type(labels).__name__} ({exc})") from None
    if y.ndim != 1 or len(y) != prep.n_steps:
        raise ValueError(f"labels: expected {prep.n_steps} values (the trace's T), got shape "
                         f"{y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels: expected integer class indices, got dtype {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= prep.n_classes):
        raise ValueError(f"labels: expected values in [0, {prep.n_classes}), got "
                         f"[{y.min()}, {y.max()}]")
    return y.astype(np.int64)


@dataclass
class SimResult:
    """Per-step outcome of :func:`simulate` (arrays of length T).

    index : config used. pred : its predicted class. baseline_pred : config ``baseline``'s.
    agree : pred == baseline_pred. correct / baseline_correct : vs labels (None without).
    step_energy : energy_by_config[index]. relative_energy : step_energy / energy_by_config[0].
    cumulative_saving : 1 - (inference energy so far) / (exact inference energy so far).
    inference_share : the exact inference's share of the system energy (None: not given).
    """

    controller: str
    index: np.ndarray
    pred: np.ndarray
    baseline_pred: np.ndarray
    agree: np.ndarray
    correct: np.ndarray | None
    baseline_correct: np.ndarray | None
    step_energy: np.ndarray
    relative_energy: np.ndarray
    cumulative_saving: np.ndarray
    energy_by_config: np.ndarray
    inference_share: float | None

    def __len__(self) -> int:
        return len(self.index)

    def summary(self) -> dict:
        """Scalars: accuracy, baseline_accuracy (nan without labels), agreement,
        relative_inference_energy, inference_saving, relative_system_energy, system_saving,
        inference_share, switches, mean_index, steps, controller. The system-wide figures
        are NaN when no ``inference_share`` was given to :func:`simulate`."""
        rel = float(self.relative_energy.mean())
        share = math.nan if self.inference_share is None else self.inference_share
        return {
            "controller": self.controller,
            "steps": len(self),
            "accuracy": float(self.correct.mean()) if self.correct is not None else math.nan,
            "baseline_accuracy": (float(self.baseline_correct.mean())
                                  if self.baseline_correct is not None else math.nan),
            "agreement": float(self.agree.mean()),
            "relative_inference_energy": rel,
            "inference_saving": 1.0 - rel,
            "inference_share": share,
            "relative_system_energy": 1.0 - share * (1.0 - rel),
            "system_saving": share * (1.0 - rel),
            "switches": int(np.count_nonzero(np.diff(self.index))),
            "mean_index": float(self.index.mean()),
        }

    def to_frame(self):
        """Per-step DataFrame: index, pred, baseline_pred, agree, [correct], step_energy,
        relative_energy, cumulative_saving."""
        import pandas as pd

        cols = {"index": self.index, "pred": self.pred, "baseline_pred": self.baseline_pred,
                "agree": self.agree}
        if self.correct is not None:
            cols["correct"] = self.correct
        cols.update(step_energy=self.step_energy, relative_energy=self.relative_energy,
                    cumulative_saving=self.cumulative_saving)
        return pd.DataFrame(cols)


def summary_table(results: Sequence[SimResult]):
    """One row of :meth:`SimResult.summary` per result, as a DataFrame."""
    import pandas as pd

    return pd.DataFrame([r.summary() for r in results])


def _python_loop(prep: PreparedProbs, controller: Controller, labels) -> np.ndarray:
    T, C = prep.n_steps, prep.n_configs
    out = np.empty(T, dtype=np.int64)
    look = controller.needs_lookahead
    probs = prep.probs
    for t in range(T):
        if look:
            controller.lookahead(probs[:, t, :], None if labels is None else int(labels[t]))
        j = controller.index
        if not (isinstance(j, int | np.integer) and 0 <= j < C):
            raise ValueError(f"controller: {controller.name}.index must be an int in [0, {C}), "
                             f"got {j!r} at step {t}")
        out[t] = j
        controller.update(probs[j, t])
    return out


def simulate(probs_by_config, controller: Controller, energy_by_config, labels=None, *,
             baseline: int = 0, inference_share: float | None = None,
             fast: bool | None = None) -> SimResult:
    """Replay a trace under ``controller``.

    probs_by_config : (n_configs, T, n_classes) softmax of every config on every input, or
        a :class:`PreparedProbs` from :func:`prepare` (skips validation on re-runs).
    energy_by_config : (n_configs,) energy per inference of each config (J or relative).
    labels : (T,) true classes, optional. baseline : the config agreement is measured against.
    inference_share : the exact inference's share of the system energy (see
        :func:`mobiprox_lab.energy.inference_share`; 1.0 under continuous inference);
        None (default): no system-wide figures (NaN in the summary), never an assumed share.
    fast : None = the jitted path when the controller has one; False = always the Python
        ``update`` loop; True = require the jitted path.
    The controller is reset first. After a jitted run its Python state is left reset.
    """
    prep = probs_by_config if isinstance(probs_by_config, PreparedProbs) else prepare(
        probs_by_config)
    if not isinstance(controller, Controller):
        raise TypeError(f"controller: expected a mobiprox_lab.control.Controller, got "
                        f"{type(controller).__name__}")
    C, T = prep.n_configs, prep.n_steps
    if controller.n_configs != C:
        raise ValueError(f"controller: expected n_configs == {C} (probs_by_config's first axis), "
                         f"got {controller.n_configs}")
    e = _check_energy(energy_by_config, C)
    y = None if labels is None else _check_labels(labels, prep)
    baseline = _int_arg("baseline", baseline, 0, C - 1)
    share = (None if inference_share is None
             else _float_arg("inference_share", inference_share, 0.0, 1.0))

    controller.reset()
    idx = None if fast is False else controller._fast_indices(prep, y)
    if idx is None:
        if fast:
            raise ValueError(f"fast: {controller.name} has no jitted path; use fast=None/False")
        idx = _python_loop(prep, controller, y)
    else:
        controller.reset()

    steps = np.arange(T)
    pred = prep.pred[idx, steps]
    base = prep.pred[baseline]
    step_e = e[idx]
    rel = step_e / e[0]
    cum = 1.0 - np.cumsum(step_e) / (e[0] * np.arange(1, T + 1))
    return SimResult(
        controller=controller.name, index=idx, pred=pred, baseline_pred=base.copy(),
        agree=pred == base, correct=None if y is None else pred == y,
        baseline_correct=None if y is None else base == y, step_energy=step_e,
        relative_energy=rel, cumulative_saving=cum, energy_by_config=e, inference_share=share)


def make_synthetic_probs(n_steps: int, n_configs: int = 10, n_classes: int = 7, *,
                         seed: int = 0, mean_dwell: float = 200.0, noise: float = 0.25,
                         dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic trace for tests, benchmarks and demos (not a model's output).

    Activity bouts with geometric dwell times (mean ``mean_dwell`` steps); config i's logits
    are the true class's one-hot plus Gaussian noise growing with i, so higher configs err
    more. Returns (probs (n_configs, n_steps, n_classes), labels (n_steps,) int64).
    """
    rng = np.random.default_rng(seed)
    n_steps = _int_arg("n_steps", n_steps, 1)
    n_bouts = max(1, int(n_steps / mean_dwell * 2) + 2)
    lengths = rng.geometric(1.0 / mean_dwell, size=n_bouts)
    while lengths.sum() < n_steps:
        lengths = np.concatenate([lengths, rng.geometric(1.0 / mean_dwell, size=n_bouts)])
    labels = np.repeat(rng.integers(0, n_classes, size=len(lengths)), lengths)[:n_steps]
    hard = rng.random(n_steps)  # per-input difficulty shared by all configs
    scale = 1.0 + noise * np.arange(n_configs)
    logits = rng.normal(size=(n_configs, n_steps, n_classes)) * (hard[None, :, None] + 0.2)
    logits *= scale[:, None, None]
    logits[:, np.arange(n_steps), labels] += 3.0
    logits -= logits.max(axis=2, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=2, keepdims=True)
    return probs.astype(dtype), labels.astype(np.int64)
