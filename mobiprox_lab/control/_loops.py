"""The Numba-compiled loops behind :mod:`mobiprox_lab.control`: trace validation and the
built-in controllers' rules replayed over a whole trace.

A controller describes its rule to the compiled loop with a :class:`KernelSpec`
(see ``Controller.kernel_spec``); :func:`run_rule` replays it, optionally under an energy
budget, and returns the config index used at every step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

# The rules the compiled loop knows (KernelSpec.kind).
KIND_NONE, KIND_STATIC, KIND_NAIVE, KIND_STATE, KIND_KALMAN, KIND_CONFIDENCE = range(6)

NO_INTS = np.zeros(1, dtype=np.int64)
NO_FLOATS = np.zeros(1, dtype=np.float64)
NO_TABLE = np.zeros((1, 1), dtype=np.float64)
_NO_ENERGY = np.ones(1, dtype=np.float64)


class KernelSpec(NamedTuple):
    """A built-in rule as the compiled loop reads it.

    kind : one of the ``KIND_*`` codes. ints : int64 (>= 1,) parameters (static: index;
    state: window, vote limit). floats : float64 (>= 1,) parameters (Kalman: x0, P0, R, Q,
    lower, upper). lower / upper : float64 (n_configs, n_classes) confidence thresholds
    (confidence rule; a (1, 1) dummy otherwise).
    """

    kind: int
    ints: np.ndarray = NO_INTS
    floats: np.ndarray = NO_FLOATS
    lower: np.ndarray = NO_TABLE
    upper: np.ndarray = NO_TABLE


def run_rule(spec: KernelSpec, n_configs: int, factor: int, pred: np.ndarray, conf: np.ndarray,
             budget: tuple[np.ndarray, float, float, float] | None = None) -> np.ndarray:
    """Replay ``spec`` from its reset state over a trace: int64 (T,) config indices used.

    pred / conf : (n_configs, T) predicted class / its softmax value per config and step.
    budget : None, or (energy_by_config (n_configs,) relative to config 0, target, gain,
        initial slack) of a ``BudgetController`` capping the rule's choices.
    """
    out = np.empty(pred.shape[1], dtype=np.int64)
    no_budget = (_NO_ENERGY, 0.0, 0.0, 0.0)
    energy_by_config, target, gain, slack0 = no_budget if budget is None else budget
    _rule_loop(spec.kind, n_configs, factor, spec.ints, spec.floats, pred, conf, spec.lower,
               spec.upper, budget is not None, energy_by_config, target, gain, slack0, out)
    return out


@njit(cache=True)
def _rule_loop(kind, n_configs, factor, ip, fp, pred, conf, lo, hi, budget, energy_by_config,
               target, gain, slack0, out):  # pragma: no cover - compiled
    """Every rule in one loop: the state stays in locals (a call per step would not)."""
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
            if energy_by_config[k] < energy_by_config[cheapest]:
                cheapest = k
    for t in range(T):
        j = i
        if budget:
            cap = target + gain * slack
            if energy_by_config[i] > cap:
                j = cheapest
                for k in range(n_configs):
                    if energy_by_config[k] <= cap:
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
            slack += target - energy_by_config[j]
    return out


@njit(cache=True)
def validate_softmax(p, atol, pred, conf):  # pragma: no cover - compiled
    """One pass over p (n_configs, T, n_classes): validate every row and fill pred / conf
    (n_configs, T) with argmax (first max) / max. Returns (code, config, step, value):
    code 0 ok, 1 non-finite, 2 negative, 3 row sum off by more than atol."""
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
