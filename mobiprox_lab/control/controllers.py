"""The :class:`Controller` protocol and the authors' controllers (Mobiprox, arXiv 2303.11291,
and its Android app): none, static, naive, state, Kalman and confidence, plus the
confidence tables the last one is fitted with and the :data:`BUILTINS` registry.

Every built-in describes its rule to the compiled loop (:meth:`Controller.kernel_spec`),
so :func:`~mobiprox_lab.control.simulate` replays it without the Python ``update`` loop.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .. import checks
from . import _loops
from ._loops import KernelSpec
from .prepared import PreparedProbs, check_labels, prepare_probs

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
        self.n_configs = checks.integer("n_configs", n_configs, 1)
        self.factor = checks.integer("factor", factor, 1)
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
        ``probs`` when a wrapper (``BudgetController``) overrode ``index``.
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

    # -- the fast path simulate takes -------------------------------------------------
    def kernel_spec(self, n_classes: int) -> KernelSpec | None:
        """This controller's rule for the compiled loop, or None (the default: no compiled
        rule; ``simulate`` runs the Python ``update`` loop).

        Built-ins return their rule; a subclass that changes the behaviour (``update``,
        ``reset``, ...) is not replayed with its parent's rule (see
        :func:`fast_path_applies`). n_classes : the trace's number of classes.
        """
        return None

    def fast_indices(self, prep: PreparedProbs, labels) -> np.ndarray | None:
        """The int64 (T,) indices a run from the reset state uses on ``prep``, computed
        without the Python loop, or None when there is no fast path.

        labels : int64 (T,) validated labels or None (read by the oracle only).
        """
        spec = self.kernel_spec(prep.n_classes) if fast_path_applies(self, "kernel_spec") \
            else None
        if spec is None:
            return None
        return _loops.run_rule(spec, self.n_configs, self.factor, prep.pred, prep.conf)


def _owner(cls: type, attr: str) -> type | None:
    return next((k for k in cls.__mro__ if attr in k.__dict__), None)


def fast_path_applies(ctrl: Controller, anchor: str) -> bool:
    """True if ``ctrl``'s behaviour comes from the class that provides its fast path
    ``anchor`` (e.g. ``"kernel_spec"``): a subclass overriding ``update``, ``reset``,
    ``lookahead`` or the step mechanics must run the Python loop."""
    cls = type(ctrl)
    home = _owner(cls, anchor)
    for attr in ("update", "reset", "lookahead", "_more", "_less", "_stay"):
        o = _owner(cls, attr)
        if o is not None and o not in home.__mro__:
            return False
    return True


def _read(probs) -> tuple[int, float]:
    """(predicted class, its softmax value) of a softmax vector (n_classes,)."""
    p = np.asarray(probs)
    if p.ndim != 1 or p.shape[0] == 0:
        raise ValueError(f"probs: expected a softmax vector of shape (n_classes,), got shape "
                         f"{p.shape}")
    k = int(np.argmax(p))
    return k, float(p[k])


# =========================================================================== the authors'


class NoController(Controller):
    """Always the exact configuration (index 0). ``factor`` is accepted and ignored."""

    @property
    def name(self) -> str:
        return "None"

    def update(self, probs, used_index: int | None = None) -> int:
        return 0

    def kernel_spec(self, n_classes: int) -> KernelSpec:
        return KernelSpec(_loops.KIND_NONE)


class StaticController(Controller):
    """Always configuration ``index``."""

    def __init__(self, n_configs: int, index: int, factor: int = 1) -> None:
        n = checks.integer("n_configs", n_configs, 1)
        self.fixed_index = checks.integer("index", index, 0, n - 1)
        super().__init__(n, factor)

    @property
    def name(self) -> str:
        return f"Static {self.fixed_index}"

    def reset(self) -> None:
        super().reset()
        self.index = self.fixed_index

    def update(self, probs, used_index: int | None = None) -> int:
        return self.index

    def kernel_spec(self, n_classes: int) -> KernelSpec:
        return KernelSpec(_loops.KIND_STATIC, np.array([self.fixed_index], dtype=np.int64))


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

    def kernel_spec(self, n_classes: int) -> KernelSpec:
        return KernelSpec(_loops.KIND_NAIVE)


class StateController(Controller):
    """Votes on the stability of the last ``window`` predicted classes.

    reliable = the last ``window`` (3) predictions are all equal;
    votes = max(0, v) + 1 if reliable else min(0, v) - 1, clamped to +-``vote_limit`` (2);
    votes <= -limit: less, votes = 0; votes >= limit: more, votes = 0. Until ``window``
    predictions have been seen, votes are not counted and the index stays.
    """

    def __init__(self, n_configs: int, factor: int = 1, window: int = 3,
                 vote_limit: int = 2) -> None:
        self.window = checks.integer("window", window, 1)
        self.vote_limit = checks.integer("vote_limit", vote_limit, 1)
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

    def kernel_spec(self, n_classes: int) -> KernelSpec:
        ints = np.array([self.window, self.vote_limit], dtype=np.int64)
        return KernelSpec(_loops.KIND_STATE, ints)


class KalmanController(Controller):
    """1-D Kalman filter on z = 1 if the predicted class equals the previous one (or first call).

    x0 = 1, P0 = 100, R = 1, Q = 0.1: K = P / (P + R); x += K (z - x); P = (1 - K) P + Q.
    x < ``lower`` (0.5): less; x > ``upper`` (0.95): more; else stay.
    """

    def __init__(self, n_configs: int, factor: int = 1, x0: float = 1.0, p0: float = 100.0,
                 r: float = 1.0, q: float = 0.1, lower: float = 0.5,
                 upper: float = 0.95) -> None:
        self.x0 = checks.number("x0", x0)
        self.p0 = checks.number("p0", p0, 0.0)
        self.r = checks.number("r", r, 0.0)
        self.q = checks.number("q", q, 0.0)
        self.lower = checks.number("lower", lower)
        self.upper = checks.number("upper", upper)
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

    def kernel_spec(self, n_classes: int) -> KernelSpec:
        floats = np.array([self.x0, self.p0, self.r, self.q, self.lower, self.upper])
        return KernelSpec(_loops.KIND_KALMAN, floats=floats)


# =========================================================================== confidence


def fill_confidence_table(table, default: float, *, name: str = "table") -> np.ndarray:
    """Replace NaN entries of a (n_configs, n_classes) confidence table.

    A NaN (the class was never predicted correctly / wrongly by that config during
    profiling) takes the mean of the config's other classes; a config with no entry at
    all takes the mean of the whole table; an all-NaN table becomes ``default``.
    Returns a new float64 array.
    """
    t = checks.float_array(name, table, copy=True)
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


def confidence_tables(probs_by_config, labels) -> tuple[np.ndarray, np.ndarray]:
    """Per-config, per-predicted-class mean confidence on correct / wrong predictions.

    probs_by_config : (n_configs, T, n_classes) softmax (or a :class:`PreparedProbs`).
    labels : (T,) true class. Returns (conf_correct, conf_wrong), each (n_configs,
    n_classes), NaN where config i never predicted class k correctly / wrongly.
    """
    prep = prepare_probs(probs_by_config)
    y = check_labels(labels, prep)
    C, K = prep.n_configs, prep.n_classes
    out = [np.full((C, K), np.nan), np.full((C, K), np.nan)]
    for c in range(C):
        ok = prep.pred[c] == y
        for table, mask in ((out[0], ok), (out[1], ~ok)):
            n = np.bincount(prep.pred[c][mask], minlength=K)
            s = np.bincount(prep.pred[c][mask], weights=prep.conf[c][mask], minlength=K)
            table[c] = np.where(n > 0, s / np.maximum(n, 1), np.nan)
    return out[0], out[1]


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
        n = checks.integer("n_configs", n_configs, 1)
        mc = fill_confidence_table(conf_correct, 1.0, name="conf_correct")
        mw = fill_confidence_table(conf_wrong, 0.0, name="conf_wrong")
        if mc.shape[0] != n:
            raise ValueError(f"conf_correct: expected {n} rows (n_configs), got shape {mc.shape}")
        if mw.shape != mc.shape:
            raise ValueError(f"conf_wrong: expected shape {mc.shape} (conf_correct's), "
                             f"got {mw.shape}")
        self.lower_frac = checks.number("lower_frac", lower_frac)
        self.upper_frac = checks.number("upper_frac", upper_frac)
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

    def kernel_spec(self, n_classes: int) -> KernelSpec:
        if n_classes != self.n_classes:
            raise ValueError(f"conf_correct: expected {n_classes} columns (the trace's n_classes), "
                             f"got {self.n_classes}")
        return KernelSpec(_loops.KIND_CONFIDENCE, lower=self.lower_table, upper=self.upper_table)


# =========================================================================== registry

#: The built-in controllers by name (what :func:`make_controller`, the playground and the
#: experiment suite list): each takes ``(n_configs, ..., factor=)``.
BUILTINS: dict[str, type[Controller]] = {
    "none": NoController, "naive": NaiveController, "state": StateController,
    "kalman": KalmanController, "confidence": ConfidenceController,
    "static": StaticController,
}


def make_controller(name: str, n_configs: int, factor: int = 1, **kwargs) -> Controller:
    """A built-in controller by name (case-insensitive, see :data:`BUILTINS`): none,
    static (index=), naive, state, kalman, confidence (conf_correct=, conf_wrong=)."""
    key = name.lower() if isinstance(name, str) else name
    try:
        cls = BUILTINS[key]
    except (KeyError, TypeError):
        raise ValueError(f"name: expected one of {sorted(BUILTINS)}, got {name!r}") from None
    return cls(n_configs, factor=factor, **kwargs)
