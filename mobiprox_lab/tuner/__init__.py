"""The tuner: QoS models P1 / P2, the NSGA-II search, selection, validation, config files.

``tune(model, tune_data=..., test_data=...)`` runs the whole offline pipeline of Mobiprox /
ApproxTuner on a trained network and its data (a task name is resolved to these by
:mod:`mobiprox_lab.orchestration`; the tuner imports neither ``datasets`` nor ``models``):

1. single-op profile of the tune set (:mod:`.qos`; cached per (op, knob), resumable,
   parallel through ``executor``);
2. search over one knob per tunable op (:mod:`.search`, :func:`run_search`: a batched
   NSGA-II with an additive surrogate over predicted (QoS, speedup) under the tuner
   threshold, seeded with uniform configurations and the first layers of the exact front
   of the additive P2 model, whose per-op terms are also the surrogate's prior;
   checkpointed per generation, so a killed search resumes);
3. selection (:mod:`.select`): the Pareto set of the trials within the keep threshold plus
   the ``n_nearest`` points nearest to it;
4. validation: each candidate is run on the tune set ("validated"); those losing more
   than ``keep_threshold`` pp there are dropped. The authors also ran every candidate on
   the test set and dropped those over it there (``keep_on_test=True``); by default the
   test set chooses nothing and only the final list runs on it, so the list's test losses
   are out-of-sample;
5. the profiler times every kept candidate round-robin with the exact model, on one
   kernel thread (``profiler.TIMING_THREADS``; energy from the measured speedup);
6. the authors' final rule (validated tune-set QoS loss, **measured** speedup) ->
   conf0..confN; the list is timed again in a session of its own, its configurations
   take their re-timed speedups and the rule runs again on every candidate, until it keeps
   a list already timed (one candidate timed fast by chance would otherwise shadow every
   slower one); after ``MAX_SELECTIONS`` sessions it runs once more on the configurations
   timed again only. The list reports its own session, and a configuration whose gain
   does not repeat there (timing noise is about the size of the rule's 0.01x) is dropped.
   Both are extensions of the authors' rule; ``TuneResult.candidates["decision"]`` says
   what became of each candidate, and ``retimed_speedup`` what a later session measured;
7. the list is written as HPVM text, JSON and CSV (:mod:`.configfile`).

QoS is accuracy in %; QoS losses and thresholds are percentage points below the exact
network's accuracy on the same data. The steps are functions of :mod:`.pipeline`.
"""

from __future__ import annotations

from pathlib import Path

from .configfile import ConfigFile, knob_name, read_configs, write_configs
from .pipeline import (  # noqa: F401 - tuner.<name> too: benchmarks read the defaults
    AUTO_PRUNE_FACTOR,
    AUTO_TOP_K,
    COST_MODELS,
    DEFAULT_TRIALS,
    MEASURE_DEFAULTS,
    N_NEAREST,
    QOS_MODELS,
    QUICK_MEASURE,
    QUICK_TRIALS,
    SINGLE_OP_EXAMPLES,
    TuneResult,
    check_settings,
    run_pipeline,
    stratified_subset,
)
from .qos import SingleOpProfile, empirical_qos, single_op_profile
from .search import (
    SearchResult,
    SearchSpace,
    build_space,
    default_seeds,
    guided_start,
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
    "guided_start", "hypervolume_2d",
    "is_exact", "knob_name", "open_study", "pareto_mask", "prune_knobs", "read_configs",
    "run_search", "select_candidates", "single_op_profile", "trials_frame", "tune",
    "write_configs",
]


def tune(task_or_model, *, qos_model: str = "p1", tuner_threshold: float = 3.0,
         keep_threshold: float = 5.0, keep_on_test: bool = False, trials: int | None = None,
         n_nearest: int = N_NEAREST,
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
        the tune set. keep_on_test : also drop candidates that lose more than
        keep_threshold on the test set, as the authors did (then the test set takes part
        in the choice, and the list's test losses are biased towards small).
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
        (default batch_size 32, warmup 1, repeats 3; quick: 8 / 1 / 2; ``threads``, default
        ``profiler.TIMING_THREADS``, also times the cost model's latency table).
    single_op_examples : the single-op profile (P1 / P2, knob pruning) runs on a
        class-stratified subset of at most this many tune examples (None: all). It runs
        once per (op, knob): 116 runs for the KWS CNN, whose 96 MFLOP inference made the
        1,440-example tune set cost ~8.5 min there; 600 (HAR: nearly all 606) brought that
        to 2.3 min (measured). The search's constraint is then relative to the subset's
        baseline, and the validation (empirical re-measure) uses the whole tune set.
    """
    s = check_settings(
        qos_model=qos_model, tuner_threshold=tuner_threshold, keep_threshold=keep_threshold,
        keep_on_test=keep_on_test, trials=trials, n_nearest=n_nearest, seed=seed, quick=quick,
        population_size=population_size, prune_top_k=prune_top_k, measure=measure,
        profile_kwargs=profile_kwargs, single_op_examples=single_op_examples,
        min_gain=min_gain, merge_within=merge_within, cost_model=cost_model, progress=progress)
    if executor is not None and scheduler is not None:
        raise ValueError("scheduler: give either executor or scheduler, not both")
    client = None
    if scheduler is not None:
        from distributed import Client

        executor = client = Client(scheduler)
    try:
        return run_pipeline(task_or_model, tune_data, test_data, s, ops=ops, executor=executor,
                            storage=storage, out_dir=out_dir)
    finally:
        if client is not None:
            client.close()
