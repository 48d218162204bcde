"""The engine of the search: constrained NSGA-II over (QoS, speedup) in numpy, and the
additive surrogate that proposes part of each generation.

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
    box (:func:`.search.run_search` returns the split in ``timings``;
    ``benchmarks/tuner.py --sections throughput`` prints it).
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
    trials, never correctness. Same test problem: 0.995. The ridge (1e-4 of the mean count
    per term, :class:`AdditiveSurrogate`) was chosen by measurement with
    ``benchmarks/tuner.py``: at 1e-3 one HAR P2 seed of 5 stayed at 0.986 of the exact front
    (10,000 trials; its fit never proposed the front's high-QoS end), at 1e-2, 1e-4 and 1e-6
    all 5 reached 1.0 (1e-4: 10 of 10; plain NSGA-II 0.943-0.987).

Guided by the single-op profile (what ``tuner.tune`` runs)
    On the trained KWS CNN's 3,136-configuration two-conv space under P1 at 157 trials
    (5 %) the surrogate alone left the worst of 10 seeds at 0.925 of the exhaustive front's
    hypervolume. That front is a handful of points one tune example apart, and P2 ranks
    each of them 2nd to 4th at its speed level: just *behind* P2's front. So the search now
    starts from the profile it already has: seeds from the first ``front.LAYERS`` layers of
    P2's exact front (not only the front itself), P2's per-op terms as the surrogate's
    prior (it fits the residual, so a knob the trials have not tried yet keeps P2's
    estimate instead of 0), and proposals from as many layers of the fit's front. Worst of
    10 seeds at 157 trials: 1.0 on that space and on a synthetic profile of the same
    ops (P2's front alone as seeds, with the prior: 0.940 and 0.932; 4 layers: 0.966).
"""


from __future__ import annotations

import numpy as np

from .. import kernels, knobs
from .front import exact_front
from .space import EXACT, SearchSpace

__all__ = ["AdditiveSurrogate", "Engine", "crowding", "distinct", "qos_step", "ranks",
           "row_keys", "survive"]


def ranks(q: np.ndarray, s: np.ndarray, violation: np.ndarray) -> np.ndarray:
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


def crowding(q: np.ndarray, s: np.ndarray, rank: np.ndarray) -> np.ndarray:
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


def survive(q, s, violation, size: int) -> np.ndarray:
    """Indices of the ``size`` survivors: by rank, then crowding distance (ties: index)."""
    rank = ranks(q, s, violation)
    crowd = crowding(q, s, rank)
    order = np.lexsort((np.arange(len(q)), -crowd, rank))
    return np.sort(order[:size])


class Engine:
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


class AdditiveSurrogate:
    """Ridge fits of QoS and of 1 / speedup as sums of per-(op, knob) terms, learnt from the
    evaluated trials, and the configurations on the exact front of the fit (:mod:`.front`).

    Under P2 and the linear cost model both objectives *are* such sums, so once the trials
    determine the terms the proposals are the exact front; under P1 / empirical QoS the fit
    is an approximation whose front points are good candidates for the real model. The
    normal matrix holds integer counts (exact in float64, so independent of the order the
    trials were added in) and the right-hand sides are recomputed from all trials, so a
    resumed search fits exactly what an uninterrupted one does.

    prior : per op, QoS terms (pp) per choice the QoS fit starts from (see :meth:`terms`).
    depth : layers of the fit's front to propose from when the front itself runs out of
        unevaluated configurations; max_points bounds their work (``front.exact_front``).
    """

    def __init__(self, engine: Engine, ridge: float = 1e-4, prior=None,
                 depth: int = 1, max_points: int = 5_000) -> None:
        self.engine = engine
        self.offset = np.concatenate([[0], np.cumsum(engine.sizes - 1)[:-1]])
        self.n_params = int((engine.sizes - 1).sum())
        self.gram = np.zeros((self.n_params + 1, self.n_params + 1))
        self.n_added = 0
        self.ridge = ridge
        self.prior = None if prior is None else self._prior_table(prior)
        self.depth = depth
        self.max_points = max_points

    def _prior_table(self, prior) -> np.ndarray:
        """The prior's QoS terms as one table float (d, max choices) (choice 0: exact, 0)."""
        if len(prior) != self.engine.d:
            raise ValueError(f"prior: expected {self.engine.d} per-op arrays of QoS terms, "
                             f"got {len(prior)}")
        table = np.zeros((self.engine.d, int(self.engine.sizes.max())))
        for j, (terms, size) in enumerate(zip(prior, self.engine.sizes, strict=True)):
            t = np.asarray(terms, np.float64).ravel()
            if t.shape != (size,) or not np.all(np.isfinite(t)):
                raise ValueError(f"prior[{j}]: expected {size} finite QoS terms (pp), one per "
                                 f"choice of {self.engine.space.ops[j]!r}, got shape {t.shape}")
            table[j, :size] = t - t[0]
        return table

    def prior_qos(self, X: np.ndarray) -> np.ndarray:
        """The prior's QoS terms summed over each row of ``X`` (0 without a prior)."""
        if self.prior is None:
            return np.zeros(len(X))
        return self.prior[np.arange(self.engine.d)[None, :], X].sum(axis=1)

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
        # one BLAS thread: the Cholesky (HAR: 816 x 816) gains nothing from more, and with the
        # box's cores busy two spinning OpenBLAS threads made 10,000 HAR trials take 77 s, not 8
        with kernels.single_threaded_blas():
            w = cho_solve(cho_factor(G), rhs)
        return w[-1], w[:-1]

    def terms(self, X_all, qos, speedup) -> tuple[float, float, list, list]:
        """(QoS intercept, cost intercept, per-op QoS terms, per-op cost terms) fitted to
        the trials: per op j, float (len(choices_j),) with 0 for the exact choice. Cost is
        1 / speedup. With a prior the QoS terms are prior + ridge-fitted residual, so a
        knob the trials never tried keeps its prior term (without one: 0)."""
        self.sync(X_all)
        residual = np.asarray(qos, np.float64) - self.prior_qos(X_all)
        (q0, c0), w = self.fit(X_all, np.column_stack([residual, 1.0 / speedup]))
        gains, costs = [], []
        for j, size in enumerate(self.engine.sizes):
            sl = slice(self.offset[j], self.offset[j] + size - 1)
            g = np.concatenate([[0.0], w[sl, 0]])
            gains.append(g if self.prior is None else g + self.prior[j, :size])
            costs.append(np.concatenate([[0.0], w[sl, 1]]))
        return float(q0), float(c0), gains, costs

    def propose(self, X_all, qos, speedup, min_qos: float, step: float, seen: set, n: int,
                rng: np.random.Generator) -> np.ndarray:
        """Up to ``n`` unevaluated configurations on the front of the fit (:meth:`terms`)
        with fitted QoS >= ``min_qos``, spread along it; if the front has fewer than ``n``
        unevaluated ones, its first ``depth`` layers, the front first (fitted QoS terms
        rounded to ``step``, which bounds each layer's size by the number of QoS levels)."""
        q0, c0, gains, costs = self.terms(X_all, qos, speedup)
        gains = [np.round(g / step) * step for g in gains]
        for depth in sorted({1, self.depth}):  # deeper layers cost more: only when needed
            f = exact_front(gains, costs, qos_offset=q0, cost_offset=c0, min_qos=min_qos,
                            depth=depth, max_points=self.max_points)
            fresh = [i for i, k in enumerate(row_keys(f.choice)) if k not in seen]
            if len(fresh) >= n:
                break
        if not fresh or n <= 0:
            return np.zeros((0, self.engine.d), np.int64)
        return f.choice[f.pick(n, fresh, start=rng.random())]


def qos_step(qos: np.ndarray, tuner_threshold: float) -> float:
    """The rounding step of the surrogate's fitted QoS terms: the QoS quantum of the trials
    (accuracy on N examples moves in steps of 100 / N %), at least 1 % of the threshold."""
    u = np.unique(np.round(qos, 7))
    d = np.diff(u)
    d = d[d > 1e-6]
    return max(max(tuner_threshold, 1e-3) / 100, float(d.min()) / 2 if len(d) else 0.0)


def row_keys(X: np.ndarray) -> list[bytes]:
    """One hashable key per row of a choice-index matrix (duplicate detection)."""
    return [row.tobytes() for row in np.ascontiguousarray(X, np.int16)]


def distinct(engine: Engine, rng, X: np.ndarray, seen: set, size: int,
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
                fresh = [c for c, k in zip(cand, row_keys(cand), strict=True)
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


def _unseen_from_grid(engine: Engine, seen: set, rng, size: int) -> np.ndarray | None:
    if size > 2_000_000 or len(seen) >= size:
        return None
    for K in engine.space.grid(chunk=65536):
        X = engine.indices_of(K)
        fresh = [i for i, k in enumerate(row_keys(X)) if k not in seen]
        if fresh:
            return X[fresh[int(rng.integers(len(fresh)))]]
    return None

