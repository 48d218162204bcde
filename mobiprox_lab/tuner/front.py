"""The exact Pareto front of an additive problem, op by op, and hypervolume ratios.

When both objectives are sums of per-op terms (P2: baseline + sum of single-op accuracy
changes; the linear cost model: sum of FLOPs / nominal speedup, or any per-(op, knob) cost
table such as a measured latency table), the Pareto front of the whole space is computable
exactly without enumerating it: start from the front {(0, 0)} and merge one op at a time,
adding each of its choices to every point of the running front and keeping only the
non-dominated sums. A configuration whose prefix (first j ops) is dominated by another
prefix is dominated by the same completion of that prefix, so nothing on the final front
is lost. With ``min_qos`` a prefix that cannot reach it even with the best remaining
choices is dropped too (exact as well). With ``depth`` = k the first k layers of
non-dominated sorting are kept (the front, then the front of the rest, ...): a prefix in a
deeper layer has a chain of k prefixes each dominating the next, and the same completion
keeps that chain, so this is exact too. The deeper layers hold the near-misses a surrogate
or an approximate QoS model ranks just behind the front. The front size is bounded by the number of
distinct QoS values (P2 on N examples: multiples of 100/N %): the HAR MobileNet's ~1e45
configurations (83 ops, P2 on 597 tune examples, FLOPs cost) give a front of 30 points in
0.02 s (``benchmarks/tuner.py --sections harfront``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import checks, knobs

__all__ = ["LAYERS", "AdditiveFront", "additive_tables", "exact_front", "hypervolume_ratio",
           "layers", "nondominated", "spread"]

# How many non-dominated layers the search's P2 seeds and surrogate proposals come from.
# Measured with ``benchmarks/tuner.py --sections front`` (KWS convs space, P1, 157 trials =
# 5 %, 10 seeds): the worst seed's hypervolume ratio was 0.966 with 4 layers and 1.0 with 8
# and 12 (real and synthetic profiles alike); P1's front points sat at P2 ranks 2-4 of
# their speed level, behind P2's own front.
LAYERS = 8


def nondominated(qos, cost, tol: float = 0.0) -> np.ndarray:
    """Indices int (m,) of the points not dominated when maximising ``qos`` and minimising
    ``cost`` (a point with >= QoS and <= cost, better in one, dominates); of equal points
    only the first is kept. QoS values within ``tol`` count as equal (sums of the same
    terms in another order differ in the last bits). Sorted by cost ascending (so QoS
    ascending too)."""
    q = np.asarray(qos, np.float64)
    c = np.asarray(cost, np.float64)
    if q.shape != c.shape or q.ndim != 1:
        raise ValueError(f"cost: expected the shape of qos {q.shape}, got {c.shape}")
    if not len(q):
        return np.zeros(0, np.int64)
    order = np.lexsort((-q, c))  # cost asc, then QoS desc, then first index (stable)
    qs = q[order]
    best_before = np.concatenate([[-np.inf], np.maximum.accumulate(qs)[:-1]])
    return order[qs > best_before + tol]


def layers(qos, cost, depth: int, tol: float = 0.0) -> np.ndarray:
    """Non-dominated sorting layer int (n,) of each point: 0 for :func:`nondominated`'s
    points, 1 for those of the rest, ...; ``depth`` for every point past layer depth - 1.
    An equal point after the first one goes one layer down (the tie rule of
    :func:`nondominated`). One sort, then one O(n) pass per layer."""
    q = np.asarray(qos, np.float64)
    c = np.asarray(cost, np.float64)
    order = np.lexsort((-q, c))  # the order nondominated uses; peeling keeps it
    qs = q[order]
    out = np.full(len(q), int(depth), np.int64)
    rest = np.arange(len(q))  # positions in ``order`` not assigned yet, ascending
    for layer in range(int(depth)):
        if not len(rest):
            break
        qr = qs[rest]
        best_before = np.concatenate([[-np.inf], np.maximum.accumulate(qr)[:-1]])
        top = qr > best_before + tol
        out[order[rest[top]]] = layer
        rest = rest[~top]
    return out


def _first_layers(q, c, depth: int, tol: float, max_points: int | None) -> np.ndarray:
    """Indices of the points in layers < ``depth``, by layer, cut after the last whole layer
    that keeps the count <= ``max_points`` (layer 0 always kept)."""
    lay = layers(q, c, depth, tol)
    keep = np.flatnonzero(lay < depth)
    if max_points is None or len(keep) <= max_points:
        return keep
    counts = np.cumsum(np.bincount(lay[keep], minlength=depth))
    last = max(0, int(np.searchsorted(counts, max_points, side="right")) - 1)
    return keep[lay[keep] <= last]


def spread(length: int, n: int, start: float | None = None) -> np.ndarray:
    """Up to ``n`` of the positions 0..length-1, evenly spaced: the first and the last
    included (``start`` None), or from ``start`` in [0, 1) of the first gap on (a random
    phase, so repeated picks cover different points)."""
    n = min(int(n), int(length))
    if n <= 0:
        return np.zeros(0, np.int64)
    if start is None:
        return np.unique(np.round(np.linspace(0, length - 1, n)).astype(np.int64))
    return (float(start) * length / n + np.arange(n) * length / n).astype(np.int64)


@dataclass
class AdditiveFront:
    """The exact front of an additive problem (with ``depth`` > 1, its first layers),
    sorted by layer, then by cost ascending.

    qos : float64 (m,) total QoS (``qos_offset`` + sum of the chosen gains).
    cost : float64 (m,) total cost (``cost_offset`` + sum of the chosen costs).
    choice : int64 (m, n_ops) index of the chosen entry of each op's table.
    layer : int64 (m,) non-dominated sorting layer (0: the front itself).
    """

    qos: np.ndarray
    cost: np.ndarray
    choice: np.ndarray
    layer: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.layer is None:
            self.layer = np.zeros(len(self.qos), np.int64)

    def __len__(self) -> int:
        return len(self.qos)

    def pick(self, n: int, rows=None, start: float | None = None) -> np.ndarray:
        """Up to ``n`` row indices among ``rows`` (default all): whole layers, front first,
        while they fit, then points of the next layer evenly spaced by cost (see
        :func:`spread`)."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows, np.int64)
        out: list[np.ndarray] = []
        left = int(n)
        for layer in np.unique(self.layer[rows]):
            if left <= 0:
                break
            these = rows[self.layer[rows] == layer]  # rows are in cost order within a layer
            take = these if len(these) <= left else these[spread(len(these), left, start)]
            out.append(take)
            left -= len(take)
        return np.concatenate(out) if out else np.zeros(0, np.int64)


def exact_front(gains: Sequence, costs: Sequence, *, qos_offset: float = 0.0,
                cost_offset: float = 0.0, min_qos: float | None = None, depth: int = 1,
                max_points: int | None = None, progress: bool = False) -> AdditiveFront:
    """The Pareto front (max QoS, min cost) of every combination of one entry per op; with
    ``depth`` k > 1 the first k layers of non-dominated sorting.

    gains : per op j, float (k_j,) the QoS contribution of each of its choices.
    costs : per op j, float (k_j,) the cost contribution of each choice.
    min_qos : keep only points with total QoS >= this (prefixes that cannot reach it are
        dropped early; exact).
    max_points : with ``depth`` > 1, the running set keeps whole layers, the front first,
        only while it holds at most this many points (the front itself always): a bound on
        the work for wide, fitted problems; the deeper layers are then no longer exact.
    Ties (equal QoS and cost; QoS equal up to rounding, 1e-9 relative) keep one
    configuration per layer, the cheapest, then the one first in op-by-op order.
    """
    from tqdm.auto import tqdm

    depth = checks.integer("depth", depth, 1)
    if max_points is not None:
        max_points = checks.integer("max_points", max_points, 1)
    if len(gains) != len(costs):
        raise ValueError(f"costs: expected {len(gains)} per-op arrays (len(gains)), "
                         f"got {len(costs)}")
    g = [np.asarray(a, np.float64).ravel() for a in gains]
    c = [np.asarray(a, np.float64).ravel() for a in costs]
    for j, (gj, cj) in enumerate(zip(g, c, strict=True)):
        if len(gj) < 1 or gj.shape != cj.shape:
            raise ValueError(f"gains[{j}], costs[{j}]: expected two non-empty arrays of one "
                             f"length, got {gj.shape} and {cj.shape}")
        if not (np.all(np.isfinite(gj)) and np.all(np.isfinite(cj))):
            raise ValueError(f"gains[{j}], costs[{j}]: expected finite values")
    # best QoS still reachable from op j on (suffix sums of the per-op maxima)
    best_rest = np.concatenate([np.cumsum([gj.max() for gj in g][::-1])[::-1], [0.0]])
    # QoS ties up to rounding: 1e-9 of the largest magnitude a sum can reach
    tol = 1e-9 * max(1.0, abs(float(qos_offset)) + sum(float(np.abs(gj).max()) for gj in g))
    q = np.array([float(qos_offset)])
    k = np.array([float(cost_offset)])
    parents: list[np.ndarray] = []
    picks: list[np.ndarray] = []
    for j in tqdm(range(len(g)), desc="exact front", disable=not progress, leave=False):
        qq = (q[:, None] + g[j][None, :]).ravel()
        kk = (k[:, None] + c[j][None, :]).ravel()
        # prefixes that cannot reach min_qos go first: they dominate no prefix that can
        reach = np.arange(len(qq)) if min_qos is None else \
            np.flatnonzero(qq + best_rest[j + 1] >= min_qos - 1e-9)
        keep = reach[nondominated(qq[reach], kk[reach], tol) if depth == 1 else
                     _first_layers(qq[reach], kk[reach], depth, tol, max_points)]
        parents.append(keep // len(g[j]))
        picks.append(keep % len(g[j]))
        q, k = qq[keep], kk[keep]
    choice = np.zeros((len(q), len(g)), np.int64)
    idx = np.arange(len(q))
    for j in range(len(g) - 1, -1, -1):
        choice[:, j] = picks[j][idx]
        idx = parents[j][idx]
    if depth == 1:
        return AdditiveFront(q, k, choice)
    layer = layers(q, k, depth, tol)
    order = np.lexsort((k, layer))
    return AdditiveFront(q[order], k[order], choice[order], layer[order])


def additive_tables(space, profile, cost) -> tuple[list[np.ndarray], list[np.ndarray],
                                                   float, float]:
    """The P2 gains and linear-cost terms of ``space``'s choices, for :func:`exact_front`.

    space : ``search.SearchSpace``; profile : ``qos.SingleOpProfile`` covering its ops;
    cost : ``profiler.CostModel`` (FLOPs / nominal speedup) or a per-(op, knob) cost table:
    a mapping op name -> {knob id: cost} (e.g. measured latencies, ms) covering every choice.
    Returns (gains, costs, qos_offset = baseline accuracy %, cost_offset = cost of the exact
    configuration: the whole network's with a CostModel, so speedup = cost(exact) / total
    cost; with a table only the space's ops, each at its exact knob).
    """
    pos = {op: j for j, op in enumerate(profile.ops)}
    base = profile.baseline_accuracy
    gains = []
    for op, ch in zip(space.ops, space.choices, strict=True):
        if op not in pos:
            raise ValueError(f"profile: operator {op!r} of the space is missing")
        r = profile.pair_index[pos[op], list(ch)]
        if (r < 0).any():
            raise ValueError(f"profile: a knob of {op!r} in {list(ch)} is not profiled")
        gains.append(profile.accuracy[r] - base)
    if hasattr(cost, "costs") and hasattr(cost, "names"):
        exact = float(cost.costs(np.full((1, len(cost.names)), knobs.EXACT, np.int64))[0])
        costs = []
        for op, ch in zip(space.ops, space.choices, strict=True):
            K = np.full((len(ch), len(cost.names)), knobs.EXACT, np.int64)
            K[:, cost.index[op]] = ch
            costs.append(cost.costs(K) - exact)
        return gains, costs, base, exact
    costs = []
    try:
        for op, ch in zip(space.ops, space.choices, strict=True):
            costs.append(np.array([float(cost[op][k]) for k in ch]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"cost: expected a CostModel or a mapping op -> {{knob: cost}} "
                         f"covering every choice of the space; missing {exc}") from None
    exact_terms = np.array([cj[0] for cj in costs])  # choices start with the exact knob
    return gains, [cj - cj[0] for cj in costs], base, float(exact_terms.sum())


def hypervolume_ratio(qos, speedup, front_qos, front_speedup, ref_qos: float,
                      ref_speedup: float = 1.0) -> float:
    """Hypervolume of the points (``qos``, ``speedup``) over that of a reference front,
    both bounded below by (``ref_qos``, ``ref_speedup``); 1.0 if the reference has none."""
    from .select import hypervolume_2d

    ref = hypervolume_2d(front_qos, front_speedup, ref_qos, ref_speedup)
    if ref <= 0:
        return 1.0
    return hypervolume_2d(qos, speedup, ref_qos, ref_speedup) / ref
