"""The search: one categorical knob per tunable op, NSGA-II over (QoS, speedup) in numpy.

:func:`run_search` ties the rooms of the search together, each read in one direction:

- :mod:`.space`: the search space (:class:`SearchSpace`, knob pruning, seeds);
- :mod:`.archive`: the study folder of per-generation checkpoints (storage, resumption);
- :mod:`.nsga`: the engine (constrained NSGA-II, duplicate elimination, the additive
  surrogate), with the reasons for its design;
- here: one run of the search, generation by generation, and its result.

Every name of the former single module is still importable from here.
"""


from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter

import numpy as np
import pandas as pd

from .. import checks, knobs
from .archive import SearchArchive, open_study, trials_frame
from .front import LAYERS
from .nsga import AdditiveSurrogate, Engine, crowding, distinct, qos_step, ranks, row_keys, survive
from .space import (
    SearchSpace,
    additive_front_seeds,
    build_space,
    default_seeds,
    guided_start,
    prune_knobs,
)

__all__ = ["SEARCH_VERSION", "SearchArchive", "SearchResult", "SearchSpace",
           "additive_front_seeds", "build_space", "default_seeds", "guided_start", "open_study",
           "prune_knobs", "run_search", "trials_frame"]

EXACT = knobs.EXACT
DIRECTIONS = ("maximize", "maximize")  # (QoS %, predicted speedup)
# Part of a study's name: a study of an older search resumes under its own name only.
# 2: surrogate with a prior and proposals from LAYERS layers of its front.
SEARCH_VERSION = 2


@dataclass
class SearchResult:
    """What :func:`run_search` leaves behind.

    study : the :class:`SearchArchive` (every finished trial, this run's and earlier ones).
    trials : one row per finished trial: trial (number), qos (predicted, %), qos_loss (pp),
        speedup (predicted), feasible (qos_loss <= tuner threshold), config (dict of the
        non-exact knobs), generation (see :func:`trials_frame`).
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


class _Run:
    """The state of one call of :func:`run_search`: the study, every evaluated configuration
    (choice indices ``X_all`` int (n, d) and their keys ``seen``) and the surrogate's current
    proposals. Each generation draws from ``default_rng([seed, generation])``; the surrogate
    fitted at generation ``g_fit`` from ``default_rng([seed, g_fit, 1])``."""

    def __init__(self, space: SearchSpace, evaluate, speedup, archive: SearchArchive, *,
                 seeds, seed: int, population_size: int, baseline_qos: float,
                 tuner_threshold: float, crossover: float, rate: float, surrogate: float,
                 every: int | None, prior=None, depth: int = 1) -> None:
        self.space, self.evaluate, self.speedup, self.archive = space, evaluate, speedup, archive
        self.seeds, self.seed, self.population_size = seeds, seed, population_size
        self.baseline_qos, self.tuner_threshold = baseline_qos, tuner_threshold
        self.crossover, self.rate = crossover, rate
        self.engine = engine = Engine(space)
        self.surrogate = AdditiveSurrogate(engine, prior=prior, depth=depth) \
            if surrogate > 0 else None
        self.every = (1 if self.surrogate is None else
                      max(1, round(self.surrogate.n_params / 1000))) if every is None else every
        self.n_sur = int(round(surrogate * population_size))
        self.proposals: dict[int, np.ndarray] = {}  # fit generation -> its proposals
        self.X_all = engine.indices_of(archive.K) if len(archive) else \
            np.zeros((0, engine.d), np.int64)
        self.seen = set(row_keys(self.X_all))
        self.size = space.size
        self.timings = {"evaluate": 0.0, "engine": 0.0, "checkpoint": 0.0}
        self.n_eval = 0

    def violation(self, q: np.ndarray) -> np.ndarray:
        """How far (pp) each QoS ``q`` (%) is beyond the tuner threshold (0: feasible)."""
        return np.maximum(0.0, (self.baseline_qos - q) - self.tuner_threshold)

    def first_generation(self, rng: np.random.Generator, budget: int) -> np.ndarray:
        """Generation 0: the seeds not evaluated yet (first occurrences), then random new
        configurations up to the population size; at most ``budget`` rows."""
        engine = self.engine
        Xs = engine.indices_of(self.space.matrix(list(self.seeds))) if len(self.seeds) else \
            np.zeros((0, engine.d), np.int64)
        fresh, kept = set(), []
        for i, k in enumerate(row_keys(Xs)):
            if k not in self.seen and k not in fresh:
                fresh.add(k)
                kept.append(i)
        Xs = Xs[kept][:budget]
        fill = Xs[:0]
        if len(Xs) < self.population_size:
            fill = distinct(engine, rng, engine.random(rng, self.population_size - len(Xs)),
                            self.seen | fresh, self.size, self.rate)
        return np.concatenate([Xs, fill])[:budget]

    def offspring(self, g: int, rng: np.random.Generator, budget: int) -> np.ndarray:
        """Generation ``g`` >= 1: the surrogate's share, then NSGA-II children of the
        population, all new; at most ``min(population_size, budget)`` rows."""
        pop = self.archive.population
        qp, sp = self.archive.qos[pop], self.archive.speedup[pop]
        rank = ranks(qp, sp, self.violation(qp))
        crowd = crowding(qp, sp, rank)
        n = min(self.population_size, budget)
        Xp = self.surrogate_share(g, n)
        X = self.engine.offspring(rng, self.X_all[pop], rank, crowd, n - len(Xp),
                                  self.crossover, self.rate)
        return distinct(self.engine, rng, np.concatenate([Xp, X]), self.seen, self.size,
                        self.rate)

    def surrogate_share(self, g: int, n: int) -> np.ndarray:
        """Generation ``g``'s part of the proposals of the surrogate fitted at the last
        multiple of ``every`` (fitted there, once, on the trials before it)."""
        g_fit = g - g % self.every
        if self.surrogate is None or not self.n_sur or g_fit < 1:
            return np.zeros((0, self.engine.d), np.int64)
        if g_fit not in self.proposals:
            self.proposals.clear()
            archive = self.archive
            m = int(np.searchsorted(archive.generation, g_fit))  # trials < g_fit
            self.proposals[g_fit] = self.surrogate.propose(
                self.X_all[:m], archive.qos[:m], archive.speedup[:m],
                self.baseline_qos - 1.25 * self.tuner_threshold,
                qos_step(archive.qos[:m], self.tuner_threshold), set(row_keys(self.X_all[:m])),
                self.n_sur * self.every, np.random.default_rng([self.seed, g_fit, 1]))
        i = (g - g_fit) * self.n_sur
        return self.proposals[g_fit][i:i + min(self.n_sur, n)]

    def survivors(self, q: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Trial numbers of the next population: the best of the current one and of the new
        trials (QoS ``q``, speedup ``s``, numbered after the study's)."""
        old = self.archive.population
        cand = np.concatenate([old, len(self.archive) + np.arange(len(q))])
        qc = np.concatenate([self.archive.qos[old], q])
        sc = np.concatenate([self.archive.speedup[old], s])
        return cand[survive(qc, sc, self.violation(qc), self.population_size)]

    def checkpoint(self, X: np.ndarray, K: np.ndarray, q: np.ndarray, s: np.ndarray,
                   survivors: np.ndarray) -> None:
        """Write the generation (atomically), then remember its configurations."""
        self.archive.append(K, q, s, survivors)
        self.X_all = np.concatenate([self.X_all, X])
        self.seen.update(row_keys(X))

    def generation(self, trials: int) -> int:
        """Run the next generation; the number of trials it evaluated (0: none new left)."""
        t0 = perf_counter()
        g = self.archive.n_generations
        rng = np.random.default_rng([self.seed, g])
        budget = trials - len(self.archive)
        X = self.first_generation(rng, budget) if g == 0 else self.offspring(g, rng, budget)
        if not len(X):
            return 0
        K = self.engine.knobs_of(X)
        t1 = perf_counter()
        q = np.asarray(self.evaluate(K), np.float64)
        s = np.asarray(self.speedup(K), np.float64)
        t2 = perf_counter()
        _check_batch(q, s, len(K))
        self.n_eval += len(K)
        survivors = self.survivors(q, s)
        t3 = perf_counter()
        self.checkpoint(X, K, q, s, survivors)
        t4 = perf_counter()
        self.timings["engine"] += (t1 - t0) + (t3 - t2)
        self.timings["evaluate"] += t2 - t1
        self.timings["checkpoint"] += t4 - t3
        return len(K)

    def run(self, trials: int, progress: bool) -> None:
        """Generations until the study holds ``trials`` trials or the space is exhausted."""
        from tqdm.auto import tqdm

        done = len(self.archive)
        bar = tqdm(total=trials, initial=min(done, trials), desc="search",
                   disable=not progress or done >= trials)
        try:
            while len(self.archive) < trials and len(self.seen) < self.size:
                n = self.generation(trials)
                if not n:
                    break
                bar.update(min(n, bar.total - bar.n))
        finally:
            bar.close()


def _check_batch(q: np.ndarray, s: np.ndarray, n: int) -> None:
    if q.shape != (n,) or not np.all(np.isfinite(q)):
        raise ValueError(f"evaluate: expected {n} finite QoS values, got shape {q.shape}")
    if s.shape != (n,) or not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise ValueError(f"speedup: expected {n} finite speedups > 0, got shape {s.shape}")


def run_search(space: SearchSpace, evaluate: Callable[[np.ndarray], np.ndarray],
               speedup: Callable[[np.ndarray], np.ndarray], *, baseline_qos: float,
               tuner_threshold: float, trials: int, study_name: str, storage=None,
               seed: int = 0, population_size: int = 50,
               seeds: Sequence[Mapping[str, int]] = (), progress: bool = True,
               crossover: float = 0.9, mutation: float | None = None,
               surrogate: float = 0.5, surrogate_every: int | None = None,
               prior: Sequence[np.ndarray] | None = None,
               surrogate_depth: int = LAYERS) -> SearchResult:
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
        (:class:`.nsga.AdditiveSurrogate`: per-(op, knob) terms of QoS and 1 / speedup fitted
        to every trial so far, and the exact front of that fit); 0 for plain NSGA-II.
    surrogate_every : refit every this many generations, proposing for all of them at once
        (default: one generation per 1,000 fitted terms, rounded, at least 1: 1 for KWS's
        116 terms and HAR's 815).
    prior : per op of ``space``, float (len(choices),) QoS terms (pp) the surrogate's fit
        starts from (it fits the residual), e.g. P2's single-op accuracy changes
        (:func:`.front.additive_tables`); None: from zero.
    surrogate_depth : the surrogate proposes from this many layers of its fit's front (the
        front, then the front of the rest, ...), not only from the front itself.
    """
    trials = checks.integer("trials", trials, 1)
    population_size = checks.integer("population_size", population_size, 2)
    seed = checks.integer("seed", seed, 0)
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
    if surrogate_every is not None:
        surrogate_every = checks.integer("surrogate_every", surrogate_every, 1)
    surrogate_depth = checks.integer("surrogate_depth", surrogate_depth, 1)
    archive = open_study(study_name, storage)
    archive.start({"space": space.key, "ops": list(space.ops), "seed": seed,
                   "population_size": population_size, "baseline_qos": float(baseline_qos),
                   "tuner_threshold": float(tuner_threshold)})
    run = _Run(space, evaluate, speedup, archive, seeds=seeds, seed=seed,
               population_size=population_size, baseline_qos=baseline_qos,
               tuner_threshold=tuner_threshold, crossover=crossover, rate=rate,
               surrogate=surrogate, every=surrogate_every, prior=prior, depth=surrogate_depth)
    run.run(trials, progress)
    return SearchResult(archive, trials_frame(archive, baseline_qos, tuner_threshold),
                        run.n_eval, space, study_name, run.timings)
