"""The search: one categorical knob per tunable op, NSGA-II over (QoS, speedup) in numpy.

Why NSGA-II, multi-objective, with a QoS constraint
    What the selection step needs is a *front*: the best QoS at every speedup within the
    tuner threshold, not one optimum. NSGA-II optimises both objectives at once (maximise
    predicted QoS, maximise predicted speedup), keeps a spread population along the front
    (crowding distance), and takes the tuner threshold as a constraint (constrained
    domination: ``qos_loss - tuner_threshold <= 0``), which focuses it on the region the
    tuner keeps, as ApproxTuner's threshold does. Uniform crossover and random-reset
    mutation suit unordered categorical knobs; no surrogate model (TPE, GP) whose cost grows
    with the trials and the 83 HAR parameters.

Why our own (lean, vectorised) NSGA-II rather than Optuna's or pymoo's
    Optuna's sampler asks and tells one trial at a time and re-reads the study each time:
    44 ms per trial on this machine, ~270x the P1 model it drives (10,000 KWS trials took
    442 s). Here a generation is one batch: the population and its offspring are integer
    matrices, non-dominated sorting, crowding and tournaments are array operations on at
    most 2 x ``population_size`` points, and the QoS model evaluates the whole offspring
    batch at once. 10,000 P1 trials with the defaults took 3.3 s on the KWS space (200,704
    configurations) and 21 s on HAR (83 ops), the QoS model included, on the shared 2-core
    box (``run_search`` returns the split in ``timings``; ``benchmarks/tuner.py --sections
    throughput`` prints it).
    pymoo's NSGA-II would batch as well (0.6.2 installs with our pins, bringing 8 more
    packages: autograd, cma, moocore, alive-progress, Deprecated ...), but what the tuner
    needs around it is most of the code anyway: duplicate elimination against every
    configuration ever evaluated (pymoo's only looks at the current population), seeds, a
    deterministic RNG per generation, an atomic per-generation checkpoint (pymoo's is a dill
    pickle of the whole algorithm object) and the surrogate proposals below.

Additive surrogate
    Plain NSGA-II misses on these spaces (0.86 of the exact front's hypervolume after 3,000
    trials on a 30-op additive test problem; 0.93 on the KWS convs space at 5 % of it):
    the front is a long, thin set that random variation refines slowly. But QoS (P2 exactly,
    P1 nearly) and 1 / speedup (the linear cost model exactly) are close to *sums of
    per-(op, knob) terms*. So every ``surrogate_every`` generations a ridge regression
    fits those terms to all the trials so far, :func:`.front.exact_front` computes the
    exact front of the fitted sums (op by op, cheap), and a share ``surrogate`` of the
    offspring are unevaluated configurations spread along it; the rest are NSGA-II
    children. The true QoS model then scores them like any child, so a wrong fit costs
    trials, never correctness. Same test problem: 0.995; HAR under P2 (10,000 trials, 3
    seeds) 1.0 / 0.986 / 1.0 of the exact front (plain NSGA-II 0.972 / 0.987 / 0.987).
    Small budgets gain less: on a 3,136-configuration two-conv problem at 157 trials the
    worst of 5 seeds went from 0.55 (plain) to 0.87, 0.93 with seeds from the exact P2
    front (``default_seeds(..., cost=, front=)``).

Search space
    Optionally each op's knobs are pruned with the single-op profile: per nominal-speedup
    level keep the ``top_k`` knobs of best single-op accuracy (ties: smaller output
    perturbation), and drop a level whose best knob is less accurate than the best of a
    faster level. Under P2 (additive) and the linear cost model a configuration using a
    dropped knob is dominated by one using the kept knob, so the front is unchanged; under
    P1 it is a heuristic. ``top_k=None`` searches all.

Storage and resumption
    Every generation is written atomically as one file ``gen-<g>.npz`` (its new trials:
    knob matrix, predicted QoS and speedup, and the surviving population) in the study's
    folder (default ``cache_dir("tuning", "studies", <study>)``; ``storage`` names another
    parent folder). ``trials`` is the *total* budget: a rerun loads the generations,
    restores the population and continues; each generation draws from an RNG seeded by
    (seed, generation), so a search killed and rerun ends exactly as an uninterrupted one,
    and a kill loses only the generation in flight (never a finished one).
"""


from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cache, knobs
from ..profiler import CostModel
from .front import additive_tables, exact_front
from .qos import SingleOpProfile

__all__ = ["SearchArchive", "SearchResult", "SearchSpace", "additive_front_seeds", "build_space",
           "default_seeds", "open_study", "prune_knobs", "run_search", "trials_frame"]

EXACT = knobs.EXACT
DIRECTIONS = ("maximize", "maximize")  # (QoS %, predicted speedup)


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
                         max_loss: float | None = None) -> list[dict[str, int]]:
    """``n`` configurations spread along the exact front of P2 (single-op accuracy changes,
    additive) and the additive cost ``cost`` (a CostModel or a per-(op, knob) table, see
    :func:`.front.additive_tables`), among those losing at most ``max_loss`` pp under P2;
    evenly spaced by cost, the fastest and the slowest included. Under P1 / empirical QoS
    they are informed starting points, not the answer."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n: expected an int >= 0, got {n!r}")
    if n == 0:
        return []
    gains, costs, base, offset = additive_tables(space, profile, cost)
    min_qos = None if max_loss is None else base - float(max_loss)
    front = exact_front(gains, costs, qos_offset=base, cost_offset=offset, min_qos=min_qos)
    if not len(front):
        return []
    pick = np.unique(np.round(np.linspace(0, len(front) - 1, min(int(n), len(front))))
                     .astype(int))  # the front is sorted by cost: fastest first
    return [{op: int(ch[c]) for op, ch, c in zip(space.ops, space.choices, front.choice[i],
                                                  strict=True) if ch[c] != EXACT}
            for i in pick]


def default_seeds(space: SearchSpace, profile: SingleOpProfile | None = None, *,
                  singles: bool = False, max_seeds: int | None = None, cost=None,
                  front: int = 0, max_loss: float | None = None) -> list[dict[str, int]]:
    """Configurations to evaluate first: exact; per nominal-speedup level the "uniform"
    configuration (every op at its fastest knobs no faster than the level, the most
    accurate of them alone when ``profile`` is given, else the first listed); with
    ``front`` > 0 (needs ``profile`` and ``cost``) that many configurations of the exact
    additive front (:func:`additive_front_seeds`, P2 loss <= ``max_loss``); with
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
        seeds += additive_front_seeds(space, profile, cost, front, max_loss=max_loss)
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


# ------------------------------------------------------------------------ storage


class SearchArchive:
    """A study: the folder of one search's per-generation checkpoints.

    Files: ``meta.json`` (space, seed, population size, baseline QoS, tuner threshold) and
    one ``gen-<g>.npz`` per finished generation, written atomically: ``K`` int16 (n, d)
    knob ids of its new trials, ``qos`` / ``speedup`` float64 (n,), ``population`` int64
    (the trial numbers of the survivors). Trials are numbered in order of evaluation.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.meta: dict = {}
        self.K = np.zeros((0, 0), np.int16)
        self.qos = np.zeros(0)
        self.speedup = np.zeros(0)
        self.generation = np.zeros(0, np.int64)
        self.population = np.zeros(0, np.int64)
        self.n_generations = 0
        meta = self.folder / "meta.json"
        if meta.exists():
            self.meta = json.loads(meta.read_text())
            self._load()

    @property
    def name(self) -> str:
        return self.folder.name

    def _load(self) -> None:
        files = sorted(self.folder.glob("gen-*.npz"))
        ks, qs, ss, gs = [], [], [], []
        for g, f in enumerate(files):
            if f.name != f"gen-{g:06d}.npz":
                raise ValueError(f"storage: {self.folder} lacks generation {g} "
                                 f"(found {f.name}); the study is damaged")
            d = cache.load_npz(f)
            ks.append(d["K"])
            qs.append(d["qos"])
            ss.append(d["speedup"])
            gs.append(np.full(len(d["qos"]), g, np.int64))
            self.population = d["population"]
        self.n_generations = len(files)
        if files:
            self.K = np.concatenate(ks)
            self.qos, self.speedup = np.concatenate(qs), np.concatenate(ss)
            self.generation = np.concatenate(gs)

    def __len__(self) -> int:
        return len(self.qos)

    def start(self, meta: dict) -> None:
        """Create the study with ``meta``, or check that an existing one matches it."""
        if self.meta:
            for key, value in meta.items():
                if self.meta.get(key) != value:
                    raise ValueError(
                        f"{key}: the study {self.name!r} in {self.folder.parent} was run with "
                        f"{key}={self.meta.get(key)!r}, got {value!r}; use another study name "
                        f"or storage to start afresh")
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        cache.save_json(self.folder / "meta.json", meta)
        self.meta = dict(meta)
        self.K = np.zeros((0, len(meta["ops"])), np.int16)

    def append(self, K: np.ndarray, qos: np.ndarray, speedup: np.ndarray,
               population: np.ndarray) -> None:
        """Write one finished generation (atomically), then add it to memory."""
        g = self.n_generations
        cache.save_npz(self.folder / f"gen-{g:06d}.npz", K=K.astype(np.int16), qos=qos,
                       speedup=speedup, population=population.astype(np.int64))
        self.K = np.concatenate([self.K, K.astype(np.int16)])
        self.qos = np.concatenate([self.qos, qos])
        self.speedup = np.concatenate([self.speedup, speedup])
        self.generation = np.concatenate([self.generation, np.full(len(qos), g, np.int64)])
        self.population = population.astype(np.int64)
        self.n_generations += 1

    def configs(self) -> list[dict[str, int]]:
        """Sparse configuration (non-exact knobs) of every trial."""
        ops = self.meta.get("ops", [])
        return [{op: int(k) for op, k in zip(ops, row, strict=True) if k != EXACT}
                for row in self.K.tolist()]

    @property
    def trials(self) -> pd.DataFrame:
        """Every finished trial (see :class:`SearchResult`), with the study's baseline QoS
        and tuner threshold."""
        return trials_frame(self, self.meta.get("baseline_qos", np.nan),
                            self.meta.get("tuner_threshold", np.nan))


def _study_folder(study_name: str, storage) -> Path:
    if not isinstance(study_name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", study_name):
        raise ValueError(f"study_name: expected a non-empty name of letters, digits, '.', '_' "
                         f"or '-', got {study_name!r}")
    if storage is None:
        return cache.cache_dir("tuning", "studies") / study_name
    if isinstance(storage, (str, Path)) and "://" not in str(storage) and str(storage) != "sqlite":
        parent = Path(storage)
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"storage: expected a folder (studies are kept as its sub-folders), "
                             f"got the file {parent} (an Optuna journal of an older version?)")
        return parent / study_name
    raise ValueError(f"storage: expected None (cache_dir('tuning', 'studies')) or a folder "
                     f"path; Optuna storages are no longer used (the search checkpoints each "
                     f"generation itself), got {storage!r}")


def open_study(study_name: str, storage=None) -> SearchArchive:
    """The study ``study_name`` under ``storage`` (None: ``cache_dir("tuning", "studies")``;
    else a folder), as saved so far (empty if it does not exist)."""
    return SearchArchive(_study_folder(study_name, storage))


# ------------------------------------------------------------------------- NSGA-II


def _ranks(q: np.ndarray, s: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Constrained non-domination rank int (n,) (0 best): feasible points by Pareto fronts
    (maximising q and s), then infeasible ones by violation (smaller first)."""
    n = len(q)
    rank = np.empty(n, np.int64)
    feas = violation <= 0
    fi = np.flatnonzero(feas)
    r = 0
    if len(fi):
        qf, sf = q[fi], s[fi]
        dom = ((qf[:, None] >= qf[None, :]) & (sf[:, None] >= sf[None, :])
               & ((qf[:, None] > qf[None, :]) | (sf[:, None] > sf[None, :])))
        count = dom.sum(axis=0)  # how many points dominate each point
        left = np.ones(len(fi), bool)
        while left.any():
            front = left & (count == 0)
            rank[fi[front]] = r
            left &= ~front
            count = count - dom[front].sum(axis=0)
            r += 1
    ii = np.flatnonzero(~feas)
    if len(ii):
        _, dense = np.unique(violation[ii], return_inverse=True)
        rank[ii] = r + dense
    return rank


def _crowding(q: np.ndarray, s: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Crowding distance float (n,) within each rank (boundary points: inf)."""
    crowd = np.zeros(len(q))
    for r in np.unique(rank):
        idx = np.flatnonzero(rank == r)
        if len(idx) <= 2:
            crowd[idx] = np.inf
            continue
        for v in (q[idx], s[idx]):
            order = np.argsort(v, kind="stable")
            span = v[order[-1]] - v[order[0]]
            d = np.empty(len(idx))
            d[[0, -1]] = np.inf
            d[1:-1] = (v[order[2:]] - v[order[:-2]]) / (span if span > 0 else 1.0)
            crowd[idx[order]] += d
    return crowd


def _survive(q, s, violation, size: int) -> np.ndarray:
    """Indices of the ``size`` survivors: by rank, then crowding distance (ties: index)."""
    rank = _ranks(q, s, violation)
    crowd = _crowding(q, s, rank)
    order = np.lexsort((np.arange(len(q)), -crowd, rank))
    return np.sort(order[:size])


class _Engine:
    """Variation operators over choice-index matrices X int (n, d) of ``space``."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.sizes = np.array([len(c) for c in space.choices], np.int64)
        width = int(self.sizes.max())
        self.table = np.full((len(space.ops), width), EXACT, np.int64)
        self.index = np.full((len(space.ops), max(knobs.KNOBS) + 1), -1, np.int64)
        for j, ch in enumerate(space.choices):
            self.table[j, :len(ch)] = ch
            self.index[j, list(ch)] = np.arange(len(ch))
        self.d = len(space.ops)

    def knobs_of(self, X: np.ndarray) -> np.ndarray:
        return self.table[np.arange(self.d)[None, :], X]

    def indices_of(self, K: np.ndarray) -> np.ndarray:
        X = self.index[np.arange(self.d)[None, :], np.asarray(K, np.int64)]
        if (X < 0).any():
            i, j = np.argwhere(X < 0)[0]
            raise ValueError(f"seeds: knob {K[i, j]} of {self.space.ops[j]!r} is not in the "
                             f"space's choices {list(self.space.choices[j])}")
        return X

    def random(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return (rng.random((n, self.d)) * self.sizes).astype(np.int64)

    def mutate(self, rng: np.random.Generator, X: np.ndarray, rate: float) -> np.ndarray:
        """Random reset of each gene with probability ``rate`` (to another choice)."""
        X = X.copy()
        hit = rng.random(X.shape) < rate
        shift = 1 + (rng.random(X.shape) * (self.sizes - 1)).astype(np.int64)
        X[hit] = ((X + shift) % self.sizes)[hit]
        return X

    def offspring(self, rng, X, rank, crowd, n: int, crossover: float,
                  rate: float) -> np.ndarray:
        """``n`` children: binary tournaments (rank, then crowding), uniform crossover with
        probability ``crossover``, then mutation."""
        m = len(X)
        a, b = rng.integers(m, size=(2, 2 * n))
        better = (rank[a] < rank[b]) | ((rank[a] == rank[b]) & (crowd[a] >= crowd[b]))
        parents = np.where(better, a, b).reshape(2, n)
        p1, p2 = X[parents[0]], X[parents[1]]
        swap = (rng.random((n, self.d)) < 0.5) & (rng.random((n, 1)) < crossover)
        child = np.where(swap, p2, p1)
        return self.mutate(rng, child, rate)


class _AdditiveSurrogate:
    """Ridge fits of QoS and of 1 / speedup as sums of per-(op, knob) terms, learnt from the
    evaluated trials, and the configurations on the exact front of the fit (:mod:`.front`).

    Under P2 and the linear cost model both objectives *are* such sums, so once the trials
    determine the terms the proposals are the exact front; under P1 / empirical QoS the fit
    is an approximation whose front points are good candidates for the real model. The
    normal matrix holds integer counts (exact in float64, so independent of the order the
    trials were added in) and the right-hand sides are recomputed from all trials, so a
    resumed search fits exactly what an uninterrupted one does.
    """

    def __init__(self, engine: _Engine, ridge: float = 1e-3) -> None:
        self.engine = engine
        self.offset = np.concatenate([[0], np.cumsum(engine.sizes - 1)[:-1]])
        self.n_params = int((engine.sizes - 1).sum())
        self.gram = np.zeros((self.n_params + 1, self.n_params + 1))
        self.n_added = 0
        self.ridge = ridge

    def columns(self, X: np.ndarray) -> np.ndarray:
        """Feature column int (n, d) of each gene (-1: the exact knob, no column); column
        ``n_params`` is the intercept."""
        return np.where(X > 0, self.offset[None, :] + X - 1, -1)

    def sync(self, X: np.ndarray) -> None:
        """Add the trials ``X[self.n_added:]`` to the normal matrix (pair counts)."""
        m = self.n_params + 2  # + intercept + a sink column for the exact knobs
        for start in range(self.n_added, len(X), 500):
            cols = self.columns(X[start:start + 500])
            cols = np.where(cols >= 0, cols, m - 1)
            cols = np.concatenate([cols, np.full((len(cols), 1), m - 2)], axis=1)
            pairs = (cols[:, :, None] * m + cols[:, None, :]).ravel()
            self.gram += np.bincount(pairs, minlength=m * m).reshape(m, m)[:-1, :-1]
        self.n_added = len(X)

    def fit(self, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(intercepts (t,), per-column terms (n_params, t)) of the ridge fits of the
        columns of ``Y`` (n, t) on the trials ``X`` (the normal matrix must hold them)."""
        cols = self.columns(X)
        keep = cols >= 0
        rhs = np.empty((self.n_params + 1, Y.shape[1]))
        for t in range(Y.shape[1]):
            rhs[:-1, t] = np.bincount(cols[keep], minlength=self.n_params,
                                      weights=np.broadcast_to(Y[:, t:t + 1], cols.shape)[keep])
            rhs[-1, t] = Y[:, t].sum()
        from scipy.linalg import cho_factor, cho_solve

        reg = self.ridge * max(1.0, float(np.mean(np.diag(self.gram))))
        G = self.gram + reg * np.eye(len(self.gram))
        G[-1, -1] -= reg  # the intercept is not shrunk (G stays positive definite)
        w = cho_solve(cho_factor(G), rhs)
        return w[-1], w[:-1]

    def propose(self, X_all, qos, speedup, min_qos: float, step: float, seen: set, n: int,
                rng: np.random.Generator) -> np.ndarray:
        """Up to ``n`` unevaluated configurations on the front of the fit with fitted QoS >=
        ``min_qos``, spread along it (fitted per-op QoS terms rounded to ``step``, which
        bounds the front's size by the number of QoS levels)."""
        self.sync(X_all)
        (q0, c0), w = self.fit(X_all, np.column_stack([qos, 1.0 / speedup]))
        wq, wc = w[:, 0], w[:, 1]
        gains, costs = [], []
        for j, size in enumerate(self.engine.sizes):
            sl = slice(self.offset[j], self.offset[j] + size - 1)
            gains.append(np.round(np.concatenate([[0.0], wq[sl]]) / step) * step)
            costs.append(np.concatenate([[0.0], wc[sl]]))
        f = exact_front(gains, costs, qos_offset=q0, cost_offset=c0, min_qos=min_qos)
        fresh = [i for i, k in enumerate(_keys(f.choice)) if k not in seen]
        if not fresh or n <= 0:
            return np.zeros((0, self.engine.d), np.int64)
        if len(fresh) > n:
            start = rng.random() * len(fresh) / n
            fresh = [fresh[int(start + i * len(fresh) / n)] for i in range(n)]
        return f.choice[fresh]


def _qos_step(qos: np.ndarray, tuner_threshold: float) -> float:
    """The rounding step of the surrogate's fitted QoS terms: the QoS quantum of the trials
    (accuracy on N examples moves in steps of 100 / N %), at least 1 % of the threshold."""
    u = np.unique(np.round(qos, 7))
    d = np.diff(u)
    d = d[d > 1e-6]
    return max(max(tuner_threshold, 1e-3) / 100, float(d.min()) / 2 if len(d) else 0.0)


def _keys(X: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in np.ascontiguousarray(X, np.int16)]


def _distinct(engine: _Engine, rng, X: np.ndarray, seen: set, size: int,
              rate: float) -> np.ndarray:
    """Rows of ``X`` made new (not in ``seen``, not repeated): a repeat is mutated again (up
    to 5 times), then replaced by a random configuration; if 1,000 random draws find none,
    an unevaluated configuration of the grid (small spaces), else the row is dropped."""
    out, batch = [], set()
    for row in X:
        key = row.astype(np.int16).tobytes()
        tries = 0
        while (key in seen or key in batch) and tries < 5:
            row = engine.mutate(rng, row[None], max(rate, 1.0 / engine.d))[0]
            key = row.astype(np.int16).tobytes()
            tries += 1
        if key in seen or key in batch:
            for _ in range(20):
                cand = engine.random(rng, 50)
                fresh = [c for c, k in zip(cand, _keys(cand), strict=True)
                         if k not in seen and k not in batch]
                if fresh:
                    row, key = fresh[0], fresh[0].astype(np.int16).tobytes()
                    break
            else:
                row = _unseen_from_grid(engine, seen | batch, rng, size)
                if row is None:
                    continue
                key = row.astype(np.int16).tobytes()
        batch.add(key)
        out.append(row)
    return np.array(out, np.int64).reshape(-1, engine.d)


def _unseen_from_grid(engine: _Engine, seen: set, rng, size: int) -> np.ndarray | None:
    if size > 2_000_000 or len(seen) >= size:
        return None
    for K in engine.space.grid(chunk=65536):
        X = engine.indices_of(K)
        fresh = [i for i, k in enumerate(_keys(X)) if k not in seen]
        if fresh:
            return X[fresh[int(rng.integers(len(fresh)))]]
    return None


@dataclass
class SearchResult:
    """What :func:`run_search` leaves behind.

    study : the :class:`SearchArchive` (every finished trial, this run's and earlier ones).
    trials : one row per finished trial: trial (number), qos (predicted, %), qos_loss (pp),
        speedup (predicted), feasible (qos_loss <= tuner threshold), config (dict of the
        non-exact knobs), generation.
    n_evaluations : distinct configurations the QoS model evaluated in this call.
    space, study_name
    timings : seconds of this call spent in ``evaluate`` + ``speedup`` ("evaluate"), in the
        engine ("engine") and writing checkpoints ("checkpoint").
    """

    study: SearchArchive
    trials: pd.DataFrame
    n_evaluations: int
    space: SearchSpace
    study_name: str
    timings: dict | None = None


def trials_frame(study, baseline_qos: float, tuner_threshold: float) -> pd.DataFrame:
    """The finished trials of ``study`` (a :class:`SearchArchive`) as a frame (see
    :class:`SearchResult`)."""
    if not isinstance(study, SearchArchive):
        raise ValueError(f"study: expected a SearchArchive (open_study), "
                         f"got {type(study).__name__}")
    q = study.qos.astype(np.float64)
    loss = baseline_qos - q
    return pd.DataFrame({"trial": np.arange(len(q)), "qos": q, "qos_loss": loss,
                         "speedup": study.speedup.astype(np.float64),
                         "feasible": loss <= tuner_threshold + 1e-9, "config": study.configs(),
                         "generation": study.generation})


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def run_search(space: SearchSpace, evaluate: Callable[[np.ndarray], np.ndarray],
               speedup: Callable[[np.ndarray], np.ndarray], *, baseline_qos: float,
               tuner_threshold: float, trials: int, study_name: str, storage=None,
               seed: int = 0, population_size: int = 50,
               seeds: Sequence[Mapping[str, int]] = (), progress: bool = True,
               crossover: float = 0.9, mutation: float | None = None,
               surrogate: float = 0.5, surrogate_every: int | None = None) -> SearchResult:
    """Run (or resume) the NSGA-II search until the study holds ``trials`` finished trials
    (or every configuration of ``space`` has been evaluated).

    evaluate : knob matrix int (n, len(space.ops)) -> predicted QoS (%) float (n,); called
        once per generation with its whole offspring batch.
    speedup : knob matrix -> predicted speedup float (n,).
    baseline_qos : exact QoS (%); tuner_threshold : allowed QoS loss (pp) of the constraint.
    study_name, storage : where the checkpoints go (see :func:`open_study`).
    seeds : configurations evaluated first, in generation 0 (already evaluated ones skipped).
    crossover : probability that a child mixes its two parents (uniform crossover).
    mutation : per-op probability of a random knob change (default 1 / number of ops).
    surrogate : share of each generation's offspring proposed by the additive surrogate
        (:class:`_AdditiveSurrogate`: per-(op, knob) terms of QoS and 1 / speedup fitted to
        every trial so far, and the exact front of that fit); 0 for plain NSGA-II.
    surrogate_every : refit every this many generations, proposing for all of them at once
        (default: one generation per 1,000 fitted terms, rounded, at least 1: 1 for KWS's
        116 terms and HAR's 815; on HAR under P2, 10,000 trials, refitting every 4
        generations reached 0.986 of the exact front's hypervolume, every generation 1.0).
    """
    from time import perf_counter

    from tqdm.auto import tqdm

    trials = _check_int("trials", trials, 1)
    population_size = _check_int("population_size", population_size, 2)
    seed = _check_int("seed", seed, 0)
    if not np.isfinite(tuner_threshold) or tuner_threshold < 0:
        raise ValueError(f"tuner_threshold: expected a number >= 0 (pp), got {tuner_threshold!r}")
    if not np.isfinite(baseline_qos):
        raise ValueError(f"baseline_qos: expected a finite QoS (%), got {baseline_qos!r}")
    if not 0 <= crossover <= 1:
        raise ValueError(f"crossover: expected a probability in [0, 1], got {crossover!r}")
    rate = 1.0 / len(space.ops) if mutation is None else float(mutation)
    if not 0 < rate <= 1:
        raise ValueError(f"mutation: expected a probability in (0, 1], got {mutation!r}")
    if not 0 <= surrogate <= 1:
        raise ValueError(f"surrogate: expected a share in [0, 1], got {surrogate!r}")
    engine = _Engine(space)
    sur = _AdditiveSurrogate(engine) if surrogate > 0 else None
    every = (1 if sur is None else max(1, round(sur.n_params / 1000))) \
        if surrogate_every is None else _check_int("surrogate_every", surrogate_every, 1)
    n_sur = int(round(surrogate * population_size))
    proposals: dict[int, np.ndarray] = {}  # fit generation -> its proposals
    archive = open_study(study_name, storage)
    archive.start({"space": space.key, "ops": list(space.ops), "seed": seed,
                   "population_size": population_size, "baseline_qos": float(baseline_qos),
                   "tuner_threshold": float(tuner_threshold)})
    X_all = engine.indices_of(archive.K) if len(archive) else np.zeros((0, engine.d), np.int64)
    seen = set(_keys(X_all))
    size = space.size
    timings = {"evaluate": 0.0, "engine": 0.0, "checkpoint": 0.0}
    n_eval = 0
    bar = tqdm(total=trials, initial=min(len(archive), trials), desc="search",
               disable=not progress or len(archive) >= trials)

    def violation(q: np.ndarray) -> np.ndarray:
        return np.maximum(0.0, (baseline_qos - q) - tuner_threshold)

    try:
        while len(archive) < trials and len(seen) < size:
            t0 = perf_counter()
            g = archive.n_generations
            rng = np.random.default_rng([seed, g])
            budget = trials - len(archive)
            if g == 0:
                Xs = engine.indices_of(space.matrix(list(seeds))) if len(seeds) else \
                    np.zeros((0, engine.d), np.int64)
                fresh, kept = set(), []
                for i, k in enumerate(_keys(Xs)):  # seeds: first occurrences, not evaluated
                    if k not in seen and k not in fresh:
                        fresh.add(k)
                        kept.append(i)
                Xs = Xs[kept][:budget]
                fill = _distinct(engine, rng, engine.random(rng, population_size - len(Xs)),
                                 seen | fresh, size, rate) if len(Xs) < population_size else Xs[:0]
                X = np.concatenate([Xs, fill])[:budget]
            else:
                pop = archive.population
                qp, sp = archive.qos[pop], archive.speedup[pop]
                rank = _ranks(qp, sp, violation(qp))
                crowd = _crowding(qp, sp, rank)
                n = min(population_size, budget)
                Xp = np.zeros((0, engine.d), np.int64)
                g_fit = g - g % every
                if sur is not None and n_sur and g_fit >= 1:
                    if g_fit not in proposals:
                        proposals.clear()
                        m = int(np.searchsorted(archive.generation, g_fit))  # trials < g_fit
                        proposals[g_fit] = sur.propose(
                            X_all[:m], archive.qos[:m], archive.speedup[:m],
                            baseline_qos - 1.25 * tuner_threshold,
                            _qos_step(archive.qos[:m], tuner_threshold), set(_keys(X_all[:m])),
                            n_sur * every, np.random.default_rng([seed, g_fit, 1]))
                    i = (g - g_fit) * n_sur
                    Xp = proposals[g_fit][i:i + min(n_sur, n)]
                X = engine.offspring(rng, X_all[pop], rank, crowd, n - len(Xp), crossover, rate)
                X = _distinct(engine, rng, np.concatenate([Xp, X]), seen, size, rate)
            if not len(X):
                break
            K = engine.knobs_of(X)
            t1 = perf_counter()
            q = np.asarray(evaluate(K), np.float64)
            s = np.asarray(speedup(K), np.float64)
            t2 = perf_counter()
            if q.shape != (len(K),) or not np.all(np.isfinite(q)):
                raise ValueError(f"evaluate: expected {len(K)} finite QoS values, got shape "
                                 f"{q.shape}")
            if s.shape != (len(K),) or not np.all(np.isfinite(s)) or not np.all(s > 0):
                raise ValueError(f"speedup: expected {len(K)} finite speedups > 0, got shape "
                                 f"{s.shape}")
            n_eval += len(K)
            old = archive.population
            cand = np.concatenate([old, len(archive) + np.arange(len(K))])
            qc = np.concatenate([archive.qos[old], q])
            sc = np.concatenate([archive.speedup[old], s])
            survivors = cand[_survive(qc, sc, violation(qc), population_size)]
            t3 = perf_counter()
            archive.append(K, q, s, survivors)
            X_all = np.concatenate([X_all, X])
            seen.update(_keys(X))
            t4 = perf_counter()
            timings["engine"] += (t1 - t0) + (t3 - t2)
            timings["evaluate"] += t2 - t1
            timings["checkpoint"] += t4 - t3
            bar.update(min(len(K), bar.total - bar.n))
    finally:
        bar.close()
    return SearchResult(archive, trials_frame(archive, baseline_qos, tuner_threshold), n_eval,
                        space, study_name, timings)
