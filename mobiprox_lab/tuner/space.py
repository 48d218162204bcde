"""The search space: one categorical knob per searched op, its pruning and its seeds.

Search space
    Optionally each op's knobs are pruned with the single-op profile: per nominal-speedup
    level keep the ``top_k`` knobs of best single-op accuracy (ties: smaller output
    perturbation), and drop a level whose best knob is less accurate than the best of a
    faster level. Under P2 (additive) and the linear cost model a configuration using a
    dropped knob is dominated by one using the kept knob, so the front is unchanged; under
    P1 it is a heuristic. ``top_k=None`` searches all.

Seeds
    :func:`default_seeds` lists configurations to evaluate first (exact, one "uniform"
    configuration per speed level, optionally points of the exact additive front and the
    single-knob configurations); :func:`additive_front_seeds` gives the front points.
"""


from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .. import knobs
from ..profiler import CostModel
from .front import LAYERS, additive_tables, exact_front
from .qos import SingleOpProfile

__all__ = ["EXACT", "FRONT_SEEDS", "SearchSpace", "additive_front_seeds", "build_space",
           "default_seeds", "guided_start", "prune_knobs"]

EXACT = knobs.EXACT
FRONT_SEEDS = 30  # P2 front configurations among the seeds of a profiled search


@dataclass
class SearchSpace:
    """One categorical choice per searched op.

    ops : searched op names (execution order); every other op stays exact.
    choices : per op, its candidate knob ids (11 first).
    """

    ops: list[str]
    choices: list[tuple[int, ...]]

    def __post_init__(self) -> None:
        if len(self.ops) != len(self.choices):
            raise ValueError(f"choices: expected {len(self.ops)} knob lists, got "
                             f"{len(self.choices)}")
        for op, ch in zip(self.ops, self.choices, strict=True):
            if len(ch) < 2 or ch[0] != EXACT:
                raise ValueError(f"choices[{op!r}]: expected >= 2 knobs starting with 11, "
                                 f"got {list(ch)}")

    @property
    def size(self) -> int:
        """Number of configurations in the space."""
        return int(np.prod([len(c) for c in self.choices], dtype=object))

    @property
    def key(self) -> str:
        text = json.dumps([self.ops, [list(c) for c in self.choices]])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def distributions(self) -> dict:
        from optuna.distributions import CategoricalDistribution

        return {op: CategoricalDistribution(list(ch))
                for op, ch in zip(self.ops, self.choices, strict=True)}

    def matrix(self, configs: Sequence[Mapping[str, int]]) -> np.ndarray:
        """Knob matrix int64 (n, len(ops)) of configurations (missing ops -> 11)."""
        K = np.full((len(configs), len(self.ops)), EXACT, np.int64)
        for j, op in enumerate(self.ops):
            for i, cfg in enumerate(configs):
                if op in cfg:
                    K[i, j] = int(cfg[op])
        return K

    def embed(self, K, names: Sequence[str]) -> np.ndarray:
        """A knob matrix over ``names`` (e.g. a cost model's or a profile's ops) from one over
        this space's ops (n, len(ops)): every other op is 11."""
        pos = {n: i for i, n in enumerate(names)}
        try:
            cols = [pos[op] for op in self.ops]
        except KeyError as exc:
            raise ValueError(f"names: operator {exc.args[0]!r} of the space is missing") from None
        out = np.full((len(K), len(names)), EXACT, np.int64)
        out[:, cols] = K
        return out

    def config(self, row: Sequence[int]) -> dict[str, int]:
        """The sparse configuration (non-exact knobs only) of one knob-matrix row."""
        return {op: int(k) for op, k in zip(self.ops, row, strict=True) if int(k) != EXACT}

    def grid(self, chunk: int = 4096) -> Iterator[np.ndarray]:
        """Every configuration of the space, as knob-matrix chunks (exhaustive search)."""
        sizes = [len(c) for c in self.choices]
        total = self.size
        table = [np.asarray(c, np.int64) for c in self.choices]
        for start in range(0, total, chunk):
            idx = np.arange(start, min(start + chunk, total))
            K = np.empty((len(idx), len(sizes)), np.int64)
            for j in range(len(sizes) - 1, -1, -1):
                K[:, j] = table[j][idx % sizes[j]]
                idx = idx // sizes[j]
            yield K


def prune_knobs(profile: SingleOpProfile, top_k: int = 2) -> dict[str, tuple[int, ...]]:
    """Per op of ``profile``, the knobs worth searching (11 first): per nominal-speedup
    level the ``top_k`` best by single-op accuracy (ties: smaller logit perturbation), minus
    levels whose best is less accurate than the best of a faster level."""
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k: expected an int >= 1, got {top_k!r}")
    rms = profile.delta_rms
    out = {}
    for j, op in enumerate(profile.ops):
        levels: dict[float, list[tuple[float, float, int]]] = {}
        for k in profile.knobs[j]:
            if k == EXACT:
                continue
            r = profile.pair_index[j, k]
            levels.setdefault(round(knobs.KNOBS[k].speedup, 6), []).append(
                (-profile.accuracy[r], rms[r], k))
        kept = [EXACT]
        best_faster = -np.inf
        for level in sorted(levels, reverse=True):
            ranked = sorted(levels[level])
            best = -ranked[0][0]
            if best >= best_faster:
                kept.extend(k for _, _, k in ranked[:top_k])
            best_faster = max(best_faster, best)
        out[op] = (EXACT, *sorted(set(kept) - {EXACT}))
    return out


def build_space(cost: CostModel, ops: Sequence[str], profile: SingleOpProfile | None = None,
                top_k: int | None = None) -> SearchSpace:
    """The search space over ``ops``: all applicable knobs, or with ``profile`` and ``top_k``
    the pruned ones (:func:`prune_knobs`). Ops left with a single knob are not searched."""
    pruned = prune_knobs(profile, top_k) if (profile is not None and top_k is not None) else {}
    names, choices = [], []
    for op in ops:
        if op not in cost.index:
            raise ValueError(f"ops: unknown operator {op!r}")
        ch = pruned.get(op, cost.knobs[cost.index[op]])
        ch = (EXACT, *[k for k in ch if k != EXACT])
        if len(ch) > 1:
            names.append(op)
            choices.append(tuple(int(k) for k in ch))
    if not names:
        raise ValueError("ops: no operator has more than one knob to search")
    return SearchSpace(names, choices)


def additive_front_seeds(space: SearchSpace, profile: SingleOpProfile, cost, n: int, *,
                         max_loss: float | None = None, depth: int = 1) -> list[dict[str, int]]:
    """``n`` configurations from the exact front of P2 (single-op accuracy changes,
    additive) and the additive cost ``cost`` (a CostModel or a per-(op, knob) table, see
    :func:`.front.additive_tables`), among those losing at most ``max_loss`` pp under P2;
    with ``depth`` k > 1 from its first k non-dominated layers, the front first. The last
    layer taken is evenly spaced by cost, its fastest and slowest included. Under P1 /
    empirical QoS they are informed starting points, not the answer: P2's near-misses
    (deeper layers) are where P1's front points often sit."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n: expected an int >= 0, got {n!r}")
    if n == 0:
        return []
    gains, costs, base, offset = additive_tables(space, profile, cost)
    min_qos = None if max_loss is None else base - float(max_loss)
    front = exact_front(gains, costs, qos_offset=base, cost_offset=offset, min_qos=min_qos,
                        depth=depth)
    return [{op: int(ch[c]) for op, ch, c in zip(space.ops, space.choices, front.choice[i],
                                                  strict=True) if ch[c] != EXACT}
            for i in front.pick(int(n))]


def default_seeds(space: SearchSpace, profile: SingleOpProfile | None = None, *,
                  singles: bool = False, max_seeds: int | None = None, cost=None,
                  front: int = 0, max_loss: float | None = None,
                  depth: int = 1) -> list[dict[str, int]]:
    """Configurations to evaluate first: exact; per nominal-speedup level the "uniform"
    configuration (every op at its fastest knobs no faster than the level, the most
    accurate of them alone when ``profile`` is given, else the first listed); with
    ``front`` > 0 (needs ``profile`` and ``cost``) that many configurations of the exact
    additive front (:func:`additive_front_seeds`, P2 loss <= ``max_loss``, its first
    ``depth`` layers); with
    ``singles`` then the single-knob configurations, most accurate first. Duplicates
    dropped; truncated to ``max_seeds``."""
    def acc(op: str, k: int) -> float:
        if profile is None or op not in profile.ops:
            return 0.0
        j = profile.ops.index(op)
        return float(profile.accuracy[profile.pair_index[j, k]])

    seeds: list[dict[str, int]] = [{}]
    levels = sorted({round(knobs.KNOBS[k].speedup, 6) for ch in space.choices for k in ch[1:]})
    for level in levels:
        cfg = {}
        for op, ch in zip(space.ops, space.choices, strict=True):
            ok = [k for k in ch[1:] if knobs.KNOBS[k].speedup <= level + 1e-9]
            if ok:
                cfg[op] = max(ok, key=lambda k, _op=op: (round(knobs.KNOBS[k].speedup, 6),
                                                         acc(_op, k), -k))
        seeds.append(cfg)
    if front:
        if profile is None or cost is None:
            raise ValueError("front: additive-front seeds need both profile and cost")
        seeds += additive_front_seeds(space, profile, cost, front, max_loss=max_loss,
                                      depth=depth)
    one_knob = [(-acc(op, k), i, {op: k}) for i, (op, ch) in
                enumerate(zip(space.ops, space.choices, strict=True)) for k in ch[1:]]
    if singles:
        seeds += [c for _, _, c in sorted(one_knob, key=lambda t: (t[0], t[1]))]
    unique, seen = [], set()
    for cfg in seeds:
        key = json.dumps(sorted(cfg.items()))
        if key not in seen:
            seen.add(key)
            unique.append(cfg)
    return unique if max_seeds is None else unique[:max_seeds]



def guided_start(space: SearchSpace, profile: SingleOpProfile, cost, *, max_seeds: int,
                 max_loss: float, depth: int = LAYERS
                 ) -> tuple[list[dict[str, int]], list[np.ndarray]]:
    """(seeds, prior) of a search guided by the single-op profile: :func:`default_seeds`
    with ``FRONT_SEEDS`` configurations from the first ``depth`` layers of the P2 front
    (P2 loss <= ``max_loss`` pp), and P2's per-op accuracy changes as the surrogate's prior
    (``run_search(prior=...)``). Both only decide what is evaluated first; every trial is
    still scored by the search's own QoS model."""
    seeds = default_seeds(space, profile, max_seeds=max_seeds, cost=cost, front=FRONT_SEEDS,
                          max_loss=max_loss, depth=depth)
    return seeds, additive_tables(space, profile, cost)[0]
