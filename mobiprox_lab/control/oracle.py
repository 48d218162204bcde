"""Beyond the authors: fixed schedules. The oracle (the cheapest config that keeps agreement
on every input; not realisable on a device, a lower bound on energy) and the
:class:`ReplayController` that replays any schedule, e.g. an oracle's at a given agreement.
"""

from __future__ import annotations

import math

import numpy as np

from .. import checks
from .controllers import Controller, fast_path_applies
from .prepared import PreparedProbs, check_energy, check_labels, prepare_probs

TARGETS = ("baseline", "correct")
FALLBACKS = ("baseline", "cheapest")


def _cost_vector(n_configs: int, energy_by_config) -> np.ndarray:
    if energy_by_config is None:  # cheapest = most approximate
        return np.arange(n_configs - 1, -1, -1, dtype=np.float64)
    return check_energy(energy_by_config, n_configs)


def _cheapest(cost: np.ndarray) -> int:
    """The lowest-cost config, ties to the higher index."""
    return (len(cost) - 1) - int(np.argmin(cost[::-1]))


def _oracle_schedule(pred: np.ndarray, ref: np.ndarray, cost: np.ndarray, fallback_index: int,
                     min_agreement: float) -> np.ndarray:
    C, T = pred.shape
    match = pred == ref[None, :]
    masked = np.where(match, cost[:, None], np.inf)
    best = (C - 1) - np.argmin(masked[::-1], axis=0)  # ties -> highest index
    any_match = match.any(axis=0)
    idx = np.where(any_match, best, fallback_index).astype(np.int64)
    if min_agreement < 1.0:
        cheapest = _cheapest(cost)
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
    prep = prepare_probs(probs_by_config)
    C = prep.n_configs
    baseline = checks.integer("baseline", baseline, 0, C - 1)
    cost = _cost_vector(C, energy_by_config)
    checks.choice("target", target, TARGETS)
    if target == "baseline":
        ref = prep.pred[baseline]
    else:
        if labels is None:
            raise ValueError("labels: required by target='correct'")
        ref = check_labels(labels, prep)
    checks.choice("fallback", fallback, FALLBACKS)
    fb = baseline if fallback == "baseline" else _cheapest(cost)
    min_agreement = checks.number("min_agreement", min_agreement, 0.0, 1.0)
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

    prep = prepare_probs(probs_by_config)
    cost = check_energy(energy_by_config, prep.n_configs)
    T = prep.n_steps
    idx0 = oracle_indices(prep, cost, labels, target=target, baseline=baseline,
                          fallback=fallback)
    ref = prep.pred[baseline] if target == "baseline" else check_labels(labels, prep)
    chosen = prep.pred[idx0, np.arange(T)] == ref
    saving = np.where(chosen, cost[idx0] - cost[_cheapest(cost)], 0.0)
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
        n = checks.integer("n_configs", n_configs, 1)
        self.cost = _cost_vector(n, energy_by_config)
        self.energy_by_config = None if energy_by_config is None else self.cost
        self.target = checks.choice("target", target, TARGETS)
        self.fallback = checks.choice("fallback", fallback, FALLBACKS)
        self.baseline = checks.integer("baseline", baseline, 0, n - 1)
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

    def fast_indices(self, prep: PreparedProbs, labels) -> np.ndarray | None:
        """The whole schedule at once (:func:`oracle_indices`)."""
        if not fast_path_applies(self, "fast_indices"):
            return None
        if self.target == "correct" and labels is None:
            raise ValueError("labels: required by OracleController(target='correct')")
        return oracle_indices(prep, self.energy_by_config, labels, target=self.target,
                              baseline=self.baseline, fallback=self.fallback)


class ReplayController(Controller):
    """Replays a fixed schedule ``indices`` (T,): e.g. ``oracle_indices(..., min_agreement=.9)``."""

    def __init__(self, n_configs: int, indices) -> None:
        n = checks.integer("n_configs", n_configs, 1)
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

    def fast_indices(self, prep: PreparedProbs, labels) -> np.ndarray | None:
        """The schedule itself (its length must be the trace's)."""
        if not fast_path_applies(self, "fast_indices"):
            return None
        if len(self.indices) != prep.n_steps:
            raise ValueError(f"indices: expected length {prep.n_steps} (the trace's T), "
                             f"got {len(self.indices)}")
        return self.indices.copy()
