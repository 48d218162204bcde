"""The search: one categorical knob per tunable op, Optuna NSGA-II over (QoS, speedup).

Why NSGA-II (``optuna.samplers.NSGAIISampler``), multi-objective, with a QoS constraint
    What the selection step needs is a *front*: the best QoS at every speedup within the
    tuner threshold, not one optimum. NSGA-II optimises both objectives at once (maximise
    predicted QoS, maximise predicted speedup) and keeps a spread population along the
    front (crowding distance); the tuner threshold enters as a constraint
    (``qos_loss - tuner_threshold <= 0``, constrained domination), which focuses the
    population on the region the tuner keeps, as ApproxTuner's threshold does. Its
    uniform crossover and random-reset mutation suit unordered categorical knobs; its
    cost per trial is a few microseconds of bookkeeping (no surrogate model, unlike TPE or
    GP, whose cost grows with the number of trials and of parameters: HAR has 83 tunable
    ops), so thousands of trials are cheap when the QoS model is; and it is deterministic
    for a seed. Generations are asked as a batch and the QoS model evaluates the batch at
    once (P1 vectorised, or empirical runs in parallel through an executor).
    Duplicate elimination (as in pymoo's NSGA-II): a child that repeats an evaluated
    configuration is resampled, so the population does not collapse onto copies of its
    best individuals (crowding distance cannot separate identical points) and every trial
    is a new configuration: when children keep repeating evaluated ones, a random
    unevaluated configuration takes the slot. The search stops early once every
    configuration of the space has been evaluated.
    The population is seeded (``enqueue_trial``) with the exact configuration and the
    "uniform" configurations (every op as close to one nominal speedup as its knobs allow).
    Single-knob seeds are optional: on the KWS benchmark they only spent budget (the
    single-op profile already knows their QoS), and neither did one-op "local moves"
    around the front help there, so the search is plain NSGA-II plus seeds.

Search space
    Optionally each op's knobs are pruned with the single-op profile: per nominal-speedup
    level keep the ``top_k`` knobs of best single-op accuracy (ties: smaller output
    perturbation), and drop a level whose best knob is less accurate than the best of a
    faster level. Under P2 (additive) and the linear cost model a configuration using a
    dropped knob is dominated by one using the kept knob, so the front is unchanged; under
    P1 it is a heuristic: it lost 2 % of the front's hypervolume on KWS and doubled what
    3,000 trials find on HAR (``benchmarks/tuner.py``); ``tune`` prunes only spaces far
    larger than the budget. ``top_k=None`` searches all.

Storage and resumption
    Optuna's SQLite storage costs ~0.2 s per 84-parameter trial on this machine (one SQL
    statement per parameter), so the sampler runs on an in-memory study and every finished
    trial is copied at once to the persistent study (default: an Optuna journal file
    ``cache_dir("tuning")/<study>.journal``; any Optuna storage URL or object, e.g.
    ``"sqlite"`` for ``cache_dir("tuning")/studies.sqlite``). ``trials`` is the *total*
    budget of the study: a rerun loads the finished trials (with their NSGA-II generation),
    re-seeds the sampler with ``seed + n_finished`` and runs only the remainder. Killing a
    search loses only the trials of the batch not yet told.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cache, knobs
from ..profiler import CostModel
from .qos import SingleOpProfile

__all__ = ["SearchResult", "SearchSpace", "build_space", "default_seeds", "open_study",
           "prune_knobs", "run_search", "trials_frame"]

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


def default_seeds(space: SearchSpace, profile: SingleOpProfile | None = None, *,
                  singles: bool = False, max_seeds: int | None = None) -> list[dict[str, int]]:
    """Configurations to enqueue first: exact; per nominal-speedup level the "uniform"
    configuration (every op at its fastest knobs no faster than the level, the most
    accurate of them alone when ``profile`` is given, else the first listed); with
    ``singles`` then the
    single-knob configurations, most accurate first. Truncated to ``max_seeds``."""
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


def _storage(storage, study_name: str):
    """An Optuna storage: None -> journal file, "sqlite" -> SQLite file (both under
    ``cache_dir("tuning")``), a ``*.journal`` / ``*.log`` path, a URL, or a storage object."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if storage is None:
        return JournalStorage(JournalFileBackend(str(cache.cache_dir("tuning") /
                                                     f"{study_name}.journal")))
    if isinstance(storage, str) and storage == "sqlite":
        return f"sqlite:///{cache.cache_dir('tuning') / 'studies.sqlite'}"
    if isinstance(storage, (str, Path)) and str(storage).endswith((".journal", ".log")) \
            and "://" not in str(storage):
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(storage)))
    if isinstance(storage, (str, optuna.storages.BaseStorage)):
        return storage
    raise ValueError(f"storage: expected None, 'sqlite', a journal file path, an Optuna storage "
                     f"URL or object, got {type(storage).__name__}")


def open_study(study_name: str, storage=None):
    """The persistent multi-objective study ``study_name`` (created if absent)."""
    import optuna

    with quiet_optuna():
        return optuna.create_study(study_name=study_name, storage=_storage(storage, study_name),
                                   directions=list(DIRECTIONS), load_if_exists=True)


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's per-trial INFO logging inside the block."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


# ------------------------------------------------------------------------- search


def _ask_distinct(mem, dists: dict, space: SearchSpace, memo: dict, batch: int,
                  max_rejects: int, rng: np.random.Generator) -> tuple[list, list[tuple]]:
    """Ask ``batch`` trials whose configurations are new (duplicate elimination).

    A child equal to an evaluated configuration or to another child of the batch is told
    FAIL (NSGA-II ignores failed trials) and resampled. After ``max_rejects`` rejections in
    the batch (a nearly exhausted neighbourhood) a random unevaluated configuration is
    enqueued instead; only if 1,000 random draws find none is a duplicate accepted (it
    costs no evaluation).
    """
    from optuna.trial import TrialState

    asked, keys, seen, rejects = [], [], set(), 0
    while len(asked) < batch:
        t = mem.ask(dists)
        key = tuple(int(t.params[op]) for op in space.ops)
        if key in memo or key in seen:
            if rejects < max_rejects or _enqueue_random(mem, space, memo, seen, rng):
                mem.tell(t, state=TrialState.FAIL)
                rejects += 1
                continue
        asked.append(t)
        keys.append(key)
        seen.add(key)
    return asked, keys


def _enqueue_random(mem, space: SearchSpace, memo: dict, seen: set,
                    rng: np.random.Generator, draws: int = 1000) -> bool:
    """Enqueue a uniformly drawn configuration not in ``memo`` / ``seen``; False if none."""
    for _ in range(draws):
        key = tuple(int(ch[rng.integers(len(ch))]) for ch in space.choices)
        if key not in memo and key not in seen:
            mem.enqueue_trial(dict(zip(space.ops, key, strict=True)))
            return True
    return False


@dataclass
class SearchResult:
    """What :func:`run_search` leaves behind.

    study : the persistent Optuna study (every finished trial, this run's and earlier ones).
    trials : one row per finished trial: trial (number), qos (predicted, %), qos_loss (pp),
        speedup (predicted), feasible (qos_loss <= tuner threshold), config (dict of the
        non-exact knobs).
    n_evaluations : distinct configurations the QoS model evaluated in this call.
    space, study_name
    """

    study: object
    trials: pd.DataFrame
    n_evaluations: int
    space: SearchSpace
    study_name: str


def trials_frame(study, baseline_qos: float, tuner_threshold: float) -> pd.DataFrame:
    """The finished trials of ``study`` as a frame (see :class:`SearchResult`)."""
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        q, s = t.values
        rows.append({"trial": t.number, "qos": q, "qos_loss": baseline_qos - q, "speedup": s,
                     "feasible": baseline_qos - q <= tuner_threshold + 1e-9,
                     "config": {op: int(k) for op, k in t.params.items() if int(k) != EXACT}})
    cols = ["trial", "qos", "qos_loss", "speedup", "feasible", "config"]
    return pd.DataFrame(rows, columns=cols)


def run_search(space: SearchSpace, evaluate: Callable[[np.ndarray], np.ndarray],
               speedup: Callable[[np.ndarray], np.ndarray], *, baseline_qos: float,
               tuner_threshold: float, trials: int, study_name: str, storage=None,
               seed: int = 0, population_size: int = 50,
               seeds: Sequence[Mapping[str, int]] = (), progress: bool = True) -> SearchResult:
    """Run (or resume) the NSGA-II search until the study holds ``trials`` finished trials
    (or every configuration of ``space`` has been evaluated).

    evaluate : knob matrix int (n, len(space.ops)) -> predicted QoS (%) float (n,).
    speedup : knob matrix -> predicted speedup float (n,).
    baseline_qos : exact QoS (%); tuner_threshold : allowed QoS loss (pp) of the constraint.
    seeds : configurations enqueued first (skipped if already evaluated).
    """
    import optuna
    from optuna.trial import TrialState
    from tqdm.auto import tqdm

    if not isinstance(trials, (int, np.integer)) or trials < 1:
        raise ValueError(f"trials: expected an int >= 1, got {trials!r}")
    if not isinstance(population_size, (int, np.integer)) or population_size < 2:
        raise ValueError(f"population_size: expected an int >= 2, got {population_size!r}")
    if not np.isfinite(tuner_threshold) or tuner_threshold < 0:
        raise ValueError(f"tuner_threshold: expected a number >= 0 (pp), got {tuner_threshold!r}")
    study = open_study(study_name, storage)
    dists = space.distributions()
    with quiet_optuna():
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        sampler = optuna.samplers.NSGAIISampler(population_size=int(population_size),
                                                seed=int(seed) + len(done))
        mem = optuna.create_study(directions=list(DIRECTIONS), sampler=sampler)
        mem.add_trials(done)
        memo: dict[tuple, tuple[float, float]] = {}
        for t in done:
            memo[tuple(int(t.params.get(op, EXACT)) for op in space.ops)] = tuple(t.values)
        n_done = len(done)
        budget = int(trials) - n_done
        if budget > 0:
            K_seeds = space.matrix(list(seeds))
            queued = 0
            for row in K_seeds:
                if queued >= budget:
                    break
                if tuple(int(k) for k in row) not in memo:
                    mem.enqueue_trial({op: int(k) for op, k in zip(space.ops, row, strict=True)})
                    queued += 1
        n_eval = 0
        size = space.size
        bar = tqdm(total=int(trials), initial=min(n_done, int(trials)), desc="search",
                   disable=not progress or budget <= 0)
        try:
            while n_done < trials and len(memo) < size:
                batch = int(min(population_size - n_done % population_size, trials - n_done))
                rng = np.random.default_rng([int(seed), n_done])
                asked, keys = _ask_distinct(mem, dists, space, memo, batch, 5 * batch, rng)
                fresh = list(dict.fromkeys(k for k in keys if k not in memo))
                if fresh:
                    Kf = np.array(fresh, np.int64)
                    q = np.asarray(evaluate(Kf), np.float64)
                    s = np.asarray(speedup(Kf), np.float64)
                    if q.shape != (len(fresh),) or not np.all(np.isfinite(q)):
                        raise ValueError(f"evaluate: expected {len(fresh)} finite QoS values, "
                                         f"got {q.shape}")
                    for k, qi, si in zip(fresh, q, s, strict=True):
                        memo[k] = (float(qi), float(si))
                    n_eval += len(fresh)
                for t, k in zip(asked, keys, strict=True):
                    q, s = memo[k]
                    t.set_constraint("qos_loss", (baseline_qos - q) - tuner_threshold)
                    frozen = mem.tell(t, [q, s])
                    study.add_trial(frozen)
                    n_done += 1
                    bar.update()
        finally:
            bar.close()
    return SearchResult(study, trials_frame(study, baseline_qos, tuner_threshold), n_eval,
                        space, study_name)
