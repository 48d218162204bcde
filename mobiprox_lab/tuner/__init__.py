"""The tuner: QoS models P1 / P2, the NSGA-II search, selection, validation, config files.

``tune(model, tune_data=..., test_data=...)`` runs the whole offline pipeline of Mobiprox /
ApproxTuner on a trained network and its data (a task name is resolved to these by
:mod:`mobiprox_lab.orchestration`; the tuner imports neither ``datasets`` nor ``models``):

1. single-op profile of the tune set (:mod:`.qos`; cached per (op, knob), resumable,
   parallel through ``executor``);
2. search over one knob per tunable op (:mod:`.search`, :func:`run_search`: a batched
   NSGA-II with an additive surrogate over predicted (QoS, speedup) under the tuner
   threshold, seeded with uniform configurations and the exact front of the additive
   P2 model; checkpointed per generation, so a killed search resumes);
3. selection (:mod:`.select`): the Pareto set of the trials within the keep threshold plus
   the ``n_nearest`` points nearest to it;
4. validation: each candidate is run on the tune set ("validated") and on the test set;
   those losing more than ``keep_threshold`` pp on either are dropped;
5. the profiler measures every kept candidate (latency round-robin with the exact model,
   energy from the measured speedup, confidences on the test set);
6. the authors' final rule (validated tune-set QoS loss, **measured** speedup) ->
   conf0..confN; ``TuneResult.candidates["decision"]`` says what became of each candidate;
7. the list is written as HPVM text, JSON and CSV (:mod:`.configfile`).

QoS is accuracy in %; QoS losses and thresholds are percentage points below the exact
network's accuracy on the same data.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cache
from ..profiler import (
    PROFILE_BATCH_SIZE,
    CostModel,
    data_arrays,
    model_fingerprint,
    profile,
    profile_probs,
    softmax_stats,
)
from .configfile import ConfigFile, knob_name, read_configs, write_configs
from .qos import SingleOpProfile, empirical_qos, single_op_profile
from .search import (
    SearchResult,
    SearchSpace,
    build_space,
    default_seeds,
    open_study,
    prune_knobs,
    run_search,
    trials_frame,
)
from .select import (
    final_rule,
    final_rule_decisions,
    hypervolume_2d,
    is_exact,
    pareto_mask,
    select_candidates,
)

__all__ = [
    "QOS_MODELS", "ConfigFile", "SearchResult", "SearchSpace", "SingleOpProfile", "TuneResult",
    "build_space", "default_seeds", "empirical_qos", "final_rule", "final_rule_decisions",
    "hypervolume_2d",
    "is_exact", "knob_name", "open_study", "pareto_mask", "prune_knobs", "read_configs",
    "run_search", "select_candidates", "single_op_profile", "trials_frame", "tune",
    "write_configs",
]

QOS_MODELS = ("p1", "p2", "empirical")
COST_MODELS = ("measured", "flops")
DEFAULT_TRIALS = {"p1": 10_000, "p2": 10_000, "empirical": 300}
QUICK_TRIALS = {"p1": 400, "p2": 400, "empirical": 40}
#: Examples of the tune set the single-op profile runs on (class-stratified subset).
SINGLE_OP_EXAMPLES = 600
#: Non-Pareto candidates nearest the front validated besides the front (the authors
#: validated the best 50-200 of each search).
N_NEAREST = 150
AUTO_TOP_K, AUTO_PRUNE_FACTOR = 3, 100  # prune_top_k="auto": see tune()
MEASURE_DEFAULTS = {"batch_size": 32, "warmup": 1, "repeats": 3}
QUICK_MEASURE = {"batch_size": 8, "warmup": 1, "repeats": 2}


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    configs : the final list conf0 (exact) .. confN, one row each: name, config (dict of
        non-exact knobs), predicted_speedup, fp16_fraction, qos_pred (the search's QoS model,
        tune set, %), qos_tune / qos_loss_tune (validated on the tune set), qos_test /
        qos_loss_test, then the profile of the test set (see ``profiler.profile``: speedup
        (measured), accuracy, qos_loss, latency_s, confidences, per-class columns,
        rel_inference_energy, rel_system_energy_continuous / _duty_cycled ...) and
        relative_energy (= rel_inference_energy).
        Without measurement, speedup = predicted_speedup and the energy columns are NaN.
    candidates : every validated candidate: qos_pred (search), qos_p1 / qos_p2 where a
        single-op profile exists, qos_tune / qos_test and their losses, predicted_speedup,
        speedup (measured; NaN unless kept and measured), ``kept`` (within the keep
        threshold on both sets) and ``decision`` (why it is or is not in the final list).
    trials : every finished search trial (``search.SearchResult.trials``).
    study : the search's ``search.SearchArchive`` (``open_study``); study_name its name.
    paths : {"txt", "json", "csv"} -> written configuration files.
    baseline : exact accuracies {"tune": %, "test": %}.
    timings : seconds per stage; n_evaluations : QoS-model evaluations in this call.
    """

    configs: pd.DataFrame
    candidates: pd.DataFrame
    trials: pd.DataFrame
    study: object
    study_name: str
    paths: dict[str, Path]
    baseline: dict[str, float]
    space: SearchSpace
    single_op: SingleOpProfile | None
    model: object
    timings: dict[str, float] = field(default_factory=dict)
    n_evaluations: int = 0

    @property
    def config_list(self) -> list[dict[str, int]]:
        """The final configurations (conf0 .. confN), as mappings of non-exact knobs."""
        return [dict(c) for c in self.configs["config"]]


def _resolve(task_or_model, tune_data, test_data):
    """(ApproxModel, tune split, test split, label) of a TrainedModel or a model; the label
    names the study (the TrainedModel's task, else "model")."""
    if isinstance(task_or_model, str):
        raise ValueError(f"task_or_model: expected an ApproxModel or a TrainedModel (the "
                         f"tuner takes no task name; for {task_or_model!r} call "
                         f"mobiprox_lab.orchestration.tasks.tune_task)")
    is_trained = hasattr(task_or_model, "module") and hasattr(task_or_model, "task")
    if not is_trained and not (hasattr(task_or_model, "ops") and hasattr(task_or_model, "run")):
        raise ValueError(f"task_or_model: expected a TrainedModel or an ApproxModel, "
                         f"got {type(task_or_model).__name__}")
    if tune_data is None or test_data is None:
        raise ValueError("tune_data, test_data: required (Splits: e.g. the tune / test of "
                         "datasets.prepare(task))")
    if is_trained:
        from ..runtime import ApproxModel

        trained = task_or_model
        model = ApproxModel(trained.module, trained.input_shape, backend="numba")
        return model, tune_data, test_data, trained.task
    return task_or_model, tune_data, test_data, "model"


def _number(name: str, value, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name}: expected a number >= {minimum}, got {value!r}")
    return float(value)


def stratified_subset(y: np.ndarray, n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``n`` examples of labels ``y`` (N,), every class keeping
    its share (rounded, at least one example); all of them if ``n`` is None or >= N."""
    y = np.asarray(y)
    if n is None or n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    take = np.maximum(1, np.floor(counts * n / len(y)).astype(int))
    picked = [rng.choice(np.flatnonzero(y == c), k, replace=False)
              for c, k in zip(classes, np.minimum(take, counts), strict=True)]
    return np.sort(np.concatenate(picked))


def tune(task_or_model, *, qos_model: str = "p1", tuner_threshold: float = 3.0,
         keep_threshold: float = 5.0, trials: int | None = None, n_nearest: int = N_NEAREST,
         seed: int = 0, executor=None, scheduler: str | None = None, quick: bool = False,
         tune_data=None, test_data=None, ops=None, population_size: int = 50,
         prune_top_k: int | str | None = None, storage=None, out_dir: str | Path | None = None,
         measure: bool = True, profile_kwargs: dict | None = None,
         single_op_examples: int | None = SINGLE_OP_EXAMPLES,
         min_gain: float = 0.01, merge_within: float = 0.1, cost_model: str = "measured",
         progress: bool = True) -> TuneResult:
    """Tune a model end to end (see the module doc) and write its configuration files.

    task_or_model : a ``models.TrainedModel`` or an ``ApproxModel``; tune_data, test_data :
        its tune and test splits (required). A task name ("har" / "kws", CLI ``--model``) is
        resolved to these by ``mobiprox_lab.orchestration.tasks.tune_task``.
    qos_model : "p1", "p2" or "empirical" (``--qos-model``).
    tuner_threshold, keep_threshold : pp of QoS loss (``--tuner-threshold``,
        ``--keep-threshold``): the search's constraint; what a kept configuration may lose on
        the tune and the test set.
    trials : total search budget (``--trials``); default 10,000 (P1 / P2) or 300 (empirical),
        400 / 40 with ``quick``.
    n_nearest : non-Pareto candidates nearest the front also validated (default 150).
    cost_model : "measured" (default: the per-(op, knob) latency table measured here,
        ``profiler.CostModel.measured``, at the profile's batch size) or "flops"
        (ApproxTuner's linear FLOP model); it gives the search's predicted speedup.
    min_gain, merge_within : the authors' final rule (``select.final_rule``): a candidate
        must beat the last accepted speedup by more than ``min_gain`` (x); one whose loss
        is within ``merge_within`` pp of the last accepted one replaces it. The rule runs
        on the **measured** speedup of the kept candidates (``measure=True``), as the
        authors ran it on configurations profiled on the device.
    seed : the search's seed (deterministic for a seed).
    executor : ``concurrent.futures`` executor or ``dask.distributed.Client`` for the
        single-op profile, empirical QoS and validation; scheduler : a Dask scheduler
        address (``--scheduler``) to connect a client to instead (closed at the end).
    quick : small budgets.
    ops : op names to tune (default ``model.tunable_ops``; e.g. ``model.op_names("conv")``).
    population_size : NSGA-II generation size. prune_top_k : knobs kept per op and speedup
        level (``search.prune_knobs``, from the single-op profile); None (default) = all
        applicable knobs (the surrogate-assisted search reaches the exact P2 front of the
        whole HAR space without pruning, ``benchmarks/tuner.py``); "auto" = 3 when the
        unpruned space holds more than 100 x ``trials`` configurations, else None.
    storage : a folder whose sub-folders hold the studies' per-generation checkpoints
        (default ``cache_dir("tuning", "studies")``); Optuna storages are not accepted.
    out_dir : where the configuration files go (default ``cache_dir("tuning", study)``).
    measure : profile the final list (numba latency, energy) with ``profile_kwargs``
        (default batch_size 32, warmup 1, repeats 3; quick: 8 / 1 / 2).
    single_op_examples : the single-op profile (P1 / P2, knob pruning) runs on a
        class-stratified subset of at most this many tune examples (None: all). It runs
        once per (op, knob): 116 runs for the KWS CNN, whose 96 MFLOP inference made the
        1,440-example tune set cost ~8.5 min there; 600 (HAR: nearly all 606) brought that
        to 2.3 min (measured). The search's constraint is then relative to the subset's
        baseline, and the validation (empirical re-measure) uses the whole tune and test sets.
    """
    if qos_model not in QOS_MODELS:
        raise ValueError(f"qos_model: expected one of {QOS_MODELS}, got {qos_model!r}")
    tuner_threshold = _number("tuner_threshold", tuner_threshold)
    keep_threshold = _number("keep_threshold", keep_threshold)
    if trials is None:
        trials = (QUICK_TRIALS if quick else DEFAULT_TRIALS)[qos_model]
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) or trials < 1:
        raise ValueError(f"trials: expected an int >= 1, got {trials!r}")
    if isinstance(n_nearest, bool) or not isinstance(n_nearest, (int, np.integer)) \
            or n_nearest < 0:
        raise ValueError(f"n_nearest: expected an int >= 0, got {n_nearest!r}")
    if not (prune_top_k is None or prune_top_k == "auto" or (
            isinstance(prune_top_k, (int, np.integer)) and not isinstance(prune_top_k, bool)
            and prune_top_k >= 1)):
        raise ValueError(f"prune_top_k: expected an int >= 1, 'auto' or None, "
                         f"got {prune_top_k!r}")
    if single_op_examples is not None and (
            isinstance(single_op_examples, bool)
            or not isinstance(single_op_examples, (int, np.integer)) or single_op_examples < 1):
        raise ValueError(f"single_op_examples: expected an int >= 1 or None, "
                         f"got {single_op_examples!r}")
    if cost_model not in COST_MODELS:
        raise ValueError(f"cost_model: expected one of {COST_MODELS}, got {cost_model!r}")
    min_gain = _number("min_gain", min_gain)
    merge_within = _number("merge_within", merge_within)
    if executor is not None and scheduler is not None:
        raise ValueError("scheduler: give either executor or scheduler, not both")
    client = None
    if scheduler is not None:
        from distributed import Client

        executor = client = Client(scheduler)
    try:
        return _tune(task_or_model, qos_model, tuner_threshold, keep_threshold, int(trials),
                     int(n_nearest), int(seed), executor, quick, tune_data, test_data, ops,
                     population_size, prune_top_k, storage, out_dir, measure, profile_kwargs,
                     single_op_examples, progress, min_gain=min_gain,
                     merge_within=merge_within, cost_model=cost_model)
    finally:
        if client is not None:
            client.close()


def _tune(task_or_model, qos_model, tuner_threshold, keep_threshold, trials, n_nearest, seed,
          executor, quick, tune_data, test_data, ops, population_size, prune_top_k, storage,
          out_dir, measure, profile_kwargs, single_op_examples,
          progress, *, min_gain: float, merge_within: float,
          cost_model: str) -> TuneResult:
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now

    model, tune_data, test_data, label = _resolve(task_or_model, tune_data, test_data)
    xt, yt = data_arrays(tune_data, "tune_data")
    data_arrays(test_data, "test_data")
    kw = dict(QUICK_MEASURE if quick else MEASURE_DEFAULTS)
    kw.update(profile_kwargs or {})
    if cost_model == "measured":
        cost = CostModel.measured(model, batch_size=kw.get("batch_size", PROFILE_BATCH_SIZE),
                                  repeats=kw.get("repeats", 3), progress=progress)
    else:
        cost = CostModel.of(model)
    ops = list(model.tunable_ops if ops is None else ops)
    lap("setup")

    if prune_top_k == "auto":
        unpruned = build_space(cost, ops).size
        prune_top_k = AUTO_TOP_K if unpruned > AUTO_PRUNE_FACTOR * trials else None
    single = None
    if qos_model in ("p1", "p2") or prune_top_k is not None:
        idx = stratified_subset(yt, single_op_examples, seed=0)
        single = single_op_profile(model, (xt[idx], yt[idx]), ops=ops, executor=executor,
                                   progress=progress)
        ops = single.ops
    lap("single_op_profile")
    space = build_space(cost, ops, single, prune_top_k)

    def speedup(K: np.ndarray) -> np.ndarray:
        return cost.speedups(space.embed(K, cost.names))

    if qos_model in ("p1", "p2"):
        baseline_qos = single.baseline_accuracy

        def evaluate(K: np.ndarray) -> np.ndarray:
            return single.predict(space.embed(K, single.ops), qos_model)
    else:
        baseline_qos = float(empirical_qos(model, [{}], tune_data, executor=executor,
                                           progress=False)[0])

        def evaluate(K: np.ndarray) -> np.ndarray:
            return empirical_qos(model, [space.config(r) for r in K], tune_data,
                                 executor=executor, progress=False)

    key = cache.cache_key(model=model_fingerprint(model), data=cache.cache_key(x=xt, y=yt),
                          qos_model=qos_model, tuner_threshold=tuner_threshold,
                          space=space.key, seed=seed, population_size=int(population_size))
    study_name = f"{label}-{qos_model}-{key}"
    seeds = default_seeds(space, single, max_seeds=max(1, trials // 4),
                          cost=cost if single is not None else None,
                          front=30 if single is not None else 0,
                          max_loss=1.5 * tuner_threshold)
    result = run_search(space, evaluate, speedup, baseline_qos=baseline_qos,
                        tuner_threshold=tuner_threshold, trials=trials, study_name=study_name,
                        storage=storage, seed=seed, population_size=population_size,
                        seeds=seeds, progress=progress)
    lap("search")

    cands = select_candidates(result.trials, baseline_qos=baseline_qos,
                              keep_threshold=keep_threshold, n_nearest=n_nearest)
    cands = cands[[not is_exact(c) for c in cands["config"]]]
    configs = [{}] + [dict(c) for c in cands["config"]]
    table = pd.DataFrame({
        "config": configs,
        "trial": [-1] + list(cands["trial"]),
        "pareto": [True] + list(cands["pareto"]),
        "qos_pred": [baseline_qos] + list(cands["qos"]),
    })
    Kc = cost.matrix(configs)
    table["predicted_speedup"] = cost.speedups(Kc)
    table["fp16_fraction"] = cost.fp16_fractions(Kc)
    if single is not None:
        Kp = single.matrix(configs)
        table["qos_p1"] = single.predict_p1(Kp)
        table["qos_p2"] = single.predict_p2(Kp)
    for name, data in (("tune", tune_data), ("test", test_data)):
        acc = empirical_qos(model, configs, data, executor=executor, progress=progress)
        table[f"qos_{name}"] = acc
        table[f"qos_loss_{name}"] = acc[0] - acc
    ok_tune = table["qos_loss_tune"] <= keep_threshold + 1e-9
    ok_test = table["qos_loss_test"] <= keep_threshold + 1e-9
    table["kept"] = ok_tune & ok_test
    table["decision"] = np.where(~ok_tune, f"loss > {keep_threshold:g} pp on tune",
                                 np.where(~ok_test, f"loss > {keep_threshold:g} pp on test", ""))
    baseline = {"tune": float(table.at[0, "qos_tune"]), "test": float(table.at[0, "qos_test"])}
    lap("validate")

    table["speedup"] = np.nan  # measured, for the kept candidates
    kept = table[table["kept"]].reset_index()
    if measure:
        # the authors applied the final rule to configurations profiled on the device:
        # measure every kept candidate (exact and all, round-robin) and rule on that
        prof = profile(model, list(kept["config"]), test_data, progress=progress,
                       cost_model=cost, **kw)
        prof = prof.drop(columns=["name", "config", "predicted_speedup", "fp16_fraction"])
        kept = pd.concat([kept.drop(columns="speedup"), prof], axis=1)
        table.loc[kept["index"], "speedup"] = kept["speedup"].to_numpy()
        rule_speedup = "speedup"
    else:
        rule_speedup = "predicted_speedup"
    accepted, why = final_rule_decisions(kept, loss="qos_loss_tune", speedup=rule_speedup,
                                         min_gain=min_gain, merge_within=merge_within)
    table.loc[kept["index"], "decision"] = why
    final = kept.loc[accepted].drop(columns=["index", "kept", "decision"]).reset_index(drop=True)
    final.insert(0, "name", [f"conf{i}" for i in range(len(final))])
    if measure:
        final["relative_energy"] = final["rel_inference_energy"]
        latency_ms = float(final.at[0, "latency_s"]) * 1e3
    else:
        x_test, y_test = data_arrays(test_data, "test_data")
        probs = profile_probs(model, list(final["config"]), x_test, progress=False)
        stats = [softmax_stats(p, y_test) for p in probs]
        final["speedup"] = final["predicted_speedup"]
        final["accuracy"] = [s["accuracy"] for s in stats]
        final["qos_loss"] = stats[0]["accuracy"] - final["accuracy"]
        for c in ("conf_mean", "conf_correct", "conf_wrong"):
            final[c] = [s[c] for s in stats]
        for k in range(probs.shape[2]):
            for c in ("acc", "conf_mean", "conf_correct", "conf_wrong"):
                final[f"{c}_c{k}"] = [s[f"{c}_class"][k] for s in stats]
        final["relative_energy"] = math.nan
        latency_ms = math.nan
    lap("profile")

    folder = Path(out_dir) if out_dir is not None else cache.cache_dir("tuning", study_name)
    cf = ConfigFile(final, list(zip(model.ops["name"], model.ops["kind"], strict=True)),
                    latency_ms, {"study": study_name, "qos_model": qos_model,
                                 "tuner_threshold": tuner_threshold,
                                 "keep_threshold": keep_threshold, "baseline": baseline})
    paths = {ext: write_configs(folder / f"configs.{ext}", cf) for ext in ("txt", "json", "csv")}
    lap("write")
    return TuneResult(final, table, result.trials, result.study, study_name, paths, baseline,
                      space, single, model, timings, result.n_evaluations)
