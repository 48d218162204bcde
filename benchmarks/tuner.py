"""Tuner benchmark: search throughput, front quality vs exhaustive and exact fronts,
QoS-model error, HAR tune wall time.

Usage: ``.venv/bin/python benchmarks/tuner.py [--sections throughput front harfront prune
error har] [--seeds 5] [--budget 0.05] [--trials 10000] [--threads N] [--quick] [--warm]
[--train-epochs 1] [--profile-examples 600]``

throughput (KWS CNN and HAR MobileNet, P1)
    10,000 trials of the search (unpruned spaces: KWS 200,704 configurations, HAR ~1e45)
    with its defaults; wall time split into the QoS model + speedup ("evaluate"), the
    NSGA-II engine and its additive surrogate ("engine") and the per-generation
    checkpoints. Targets: < 30 s (KWS), < 60 s (HAR).
front (KWS CNN, P1)
    Enumerates the "convs" space (two convolutions with 56 knobs each, 3,136
    configurations, the other ops exact; with ``--all-space`` also the 200,704 of every
    tunable op) and compares the search's front with the exhaustive one: hypervolume ratio
    (reference point: QoS = baseline - tuner threshold, speedup 1.0) at a budget of
    ``--budget`` (default 5 %) of the space, unpruned, over ``--seeds`` seeds (target: worst
    seed >= 0.99), for the ``SEARCHES``: plain NSGA-II, NSGA-II + additive surrogate, and
    the profile-guided search with one layer of P2's front or with ``tuner.tune``'s
    default layers. Also the evaluations needed to reach 0.99.
harfront (HAR MobileNet, P2 + linear cost)
    The exact Pareto front of the whole HAR space under P2 and the linear cost model,
    computed op by op (``tuner.front.exact_front``), then the hypervolume ratio of
    ``--trials`` (default 10,000) P2 search trials against it (target >= 0.99): plain
    NSGA-II and with the additive surrogate measure the search; the guided variants take
    P2 itself as seeds and prior, which makes the ratio trivially ~1 (a sanity check of
    the pipeline, not of the search).
prune
    HAR MobileNet: hypervolume found by 3,000 P1 trials with the knobs pruned to the top 2
    / top 3 per op and speed level, and unpruned.
error
    P1 and P2 predicted QoS vs the empirical (validated) QoS of the configurations the tuner
    chose (tune set): mean / max absolute error in pp, for KWS and HAR.
har
    Wall time of a full HAR tune (``tuner.tune`` defaults: P1, 3,000 trials) by stage, in a
    fresh cache (trained models and datasets reused) unless ``--warm``.

Trained weights are used when cached or shipped (``models.cached_model``); else
(throughput, front, harfront, prune) the shipped architecture trained for
``--train-epochs`` epochs with the task's recipe (kept under ``cache_dir("benchmarks")``,
never as a cached model), or random weights with ``--train-epochs 0``. The output says
which: QoS numbers of a briefly trained network say little about accuracy, but the search
problem (a real single-op profile of the real network) is the one the tuner faces.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mobiprox_lab import cache, datasets, tuner  # noqa: E402
from mobiprox_lab.models import TRAIN_DEFAULTS, build_model, cached_model, train  # noqa: E402
from mobiprox_lab.profiler import CostModel  # noqa: E402
from mobiprox_lab.runtime import ApproxModel  # noqa: E402
from mobiprox_lab.tuner import front as front_mod  # noqa: E402

TUNER_THRESHOLD = 3.0


def _model(task: str, quick: bool, train_epochs: int = 0):
    """(ApproxModel, splits, TrainedModel or None, description of the weights)."""
    splits = datasets.prepare(task, quick=quick)
    trained = cached_model(task, quick=quick)
    if trained is not None:
        return (ApproxModel(trained.module, trained.input_shape, backend="numba"), splits,
                trained, "trained (cached model)")
    torch.manual_seed(0)
    module = build_model(task, splits.n_classes, splits.input_shape).eval()
    kind = "random"
    if train_epochs > 0:
        path = cache.cache_dir("benchmarks") / f"tuner-{task}-{int(quick)}-{train_epochs}ep.pt"
        if path.exists():
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        else:
            kw = {**TRAIN_DEFAULTS[task], "epochs": train_epochs}
            module, _ = train(module, splits, **kw)
            with cache.atomic_path(path) as tmp:
                torch.save(module.state_dict(), tmp)
        module.eval()
        kind = f"trained {train_epochs} epoch(s) here (no cached model)"
    return ApproxModel(module, splits.input_shape, backend="numba"), splits, None, kind


def _problem(task: str, args):
    """(model, splits, weights, single-op profile, cost model)."""
    model, splits, _, kind = _model(task, args.quick, args.train_epochs)
    t0 = time.perf_counter()
    n = args.profile_examples if task == "kws" or args.har_profile_examples is None \
        else args.har_profile_examples
    idx = tuner.stratified_subset(splits.tune.y, n, seed=0)
    if task == "kws" and args.kws_synthetic:
        single = _synthetic_profile(CostModel.of(model), model.tunable_ops, splits.tune.y[idx])
        print(f"[{task}] {kind} weights; synthetic single-op profile (--kws-synthetic): "
              f"{single.n_pairs} pairs of the real ops and knobs, {len(idx)} tune labels, "
              f"baseline {single.baseline_accuracy:.2f} %", flush=True)
        return model, splits, kind, single, CostModel.of(model)
    single = tuner.single_op_profile(model, (splits.tune.x[idx], splits.tune.y[idx]),
                                     progress=not args.quiet)
    print(f"[{task}] {kind} weights; single-op profile: {single.n_pairs} (op, knob) pairs, "
          f"{len(idx)} of {len(splits.tune)} tune inputs (class-stratified), baseline "
          f"{single.baseline_accuracy:.2f} % "
          f"({time.perf_counter() - t0:.1f} s, cached after the first run)", flush=True)
    return model, splits, kind, single, CostModel.of(model)


def _objectives(space: tuner.SearchSpace, single: tuner.SingleOpProfile, cost: CostModel,
                qos_model: str = "p1"):
    """(QoS, predicted speedup) of knob matrices over ``space``'s ops."""
    def evaluate(K):
        return single.predict(space.embed(K, single.ops), qos_model)

    def speedup(K):
        return cost.speedups(space.embed(K, cost.names))

    return evaluate, speedup


def _search(space, single, cost, *, trials, seed, qos_model="p1", population_size=50,
            seeds=None, guided=True, **kw):
    """One search in a temporary study; (SearchResult, seconds). ``guided`` (what
    ``tuner.tune`` does): seeds and surrogate prior from the profile (``tuner.guided_start``);
    else the plain seeds (exact + uniform levels) unless ``seeds`` are given."""
    evaluate, speedup = _objectives(space, single, cost, qos_model)
    max_seeds = max(1, trials // 4)
    if guided:
        seeds, prior = tuner.guided_start(space, single, cost, max_seeds=max_seeds,
                                          max_loss=1.5 * TUNER_THRESHOLD)
        kw.setdefault("prior", prior)
    elif seeds is None:
        seeds = tuner.default_seeds(space, single, max_seeds=max_seeds)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = tuner.run_search(space, evaluate, speedup, baseline_qos=single.baseline_accuracy,
                               tuner_threshold=TUNER_THRESHOLD, trials=trials,
                               study_name="bench", storage=tmp, seed=seed,
                               population_size=population_size, seeds=seeds, progress=False,
                               **kw)
        return res, time.perf_counter() - t0


# The search variants compared by the front sections: plain NSGA-II; with the additive
# surrogate alone (the search before profile guidance); guided as ``tuner.tune`` runs it
# (seeds from the first LAYERS layers of P2's front, P2 as the surrogate's prior, proposals
# from LAYERS layers of the fit's front); and guided with one layer (P2's front only).
SEARCHES = {
    "nsga2": {"guided": False, "surrogate": 0.0},
    "nsga2+surrogate": {"guided": False, "surrogate_depth": 1},
    "guided, 1 layer": {"guided": "1 layer"},
    "guided (tuner default)": {},
}


def _variant(space, single, cost, spec: dict, budget: int) -> dict:
    """``_search`` keywords of a ``SEARCHES`` entry."""
    kw = dict(spec)
    if kw.get("guided") == "1 layer":
        seeds, prior = tuner.guided_start(space, single, cost, max_seeds=max(1, budget // 4),
                                          max_loss=1.5 * TUNER_THRESHOLD, depth=1)
        kw.update(guided=False, seeds=seeds, prior=prior, surrogate_depth=1)
    return kw


def _hv_curve(trials: pd.DataFrame, ref_qos: float, checkpoints: np.ndarray) -> np.ndarray:
    """Hypervolume of the first n trials, for each n in ``checkpoints``."""
    q, s = trials["qos"].to_numpy(float), trials["speedup"].to_numpy(float)
    return np.array([tuner.hypervolume_2d(q[:n], s[:n], ref_qos) for n in checkpoints])


def _row(row: dict) -> None:
    print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in row.items()), flush=True)


def throughput_section(args) -> pd.DataFrame:
    print(f"\n== search throughput: {args.trials} P1 trials, unpruned spaces, search defaults "
          f"(population 50, additive surrogate 0.5) ==")
    rows = []
    for task, target in (("kws", 30.0), ("har", 60.0)):
        model, _, kind, single, cost = _problem(task, args)
        n = len(single.labels)
        if n < tuner.SINGLE_OP_EXAMPLES:
            # P1's cost grows with the examples: time it on as many as ``tune`` profiles
            # (600), the profiled ones repeated (same shapes, same predictions)
            reps = -(-tuner.SINGLE_OP_EXAMPLES // n)
            single = tuner.SingleOpProfile(
                single.ops, single.knobs, np.tile(single.labels, reps),
                np.tile(single.baseline, (reps, 1)), np.tile(single.deltas, (1, reps, 1)),
                single.accuracy, single.pair_index)
            print(f"[{task}] P1 timed on {len(single.labels)} examples (the {n} profiled ones "
                  f"x {reps})")
        space = tuner.build_space(cost, single.ops, single, top_k=None)
        res, secs = _search(space, single, cost, trials=args.trials, seed=0)
        t = res.timings
        row = {"task": task, "space": f"{space.size:.4g}", "trials": len(res.trials),
               "seconds": secs, "target_s": target, "ok": secs < target,
               "evaluate_s": t["evaluate"], "engine_s": t["engine"],
               "checkpoint_s": t["checkpoint"], "trials_per_s": len(res.trials) / secs}
        rows.append(row)
        _row(row)
    return pd.DataFrame(rows)


def _synthetic_profile(cost: CostModel, ops, labels: np.ndarray,
                       seed: int = 0) -> tuner.SingleOpProfile:
    """A single-op profile over ``ops`` (their real knobs) on ``labels``: baseline logits with
    a margin (~90 % accuracy), per (op, knob) Gaussian logit deltas of scale
    sensitivity(op) x (nominal speedup - 1) x a random factor in [0.5, 1.5]."""
    from mobiprox_lab import knobs

    rng = np.random.default_rng(seed)
    y = np.asarray(labels, np.int64)
    n, c = len(y), int(y.max()) + 1
    base = rng.normal(0, 1, (n, c)).astype(np.float32)
    base[np.arange(n), y] += 2.5
    outputs, op_knobs = {}, []
    for op in ops:
        ks = cost.knobs[cost.index[op]]
        op_knobs.append(ks)
        sens = rng.uniform(0.3, 1.0)
        for k in ks[1:]:
            scale = sens * (knobs.KNOBS[k].speedup - 1 + 0.05) * rng.uniform(0.5, 1.5)
            outputs[(op, k)] = base + rng.normal(0, scale, (n, c)).astype(np.float32)
    return tuner.SingleOpProfile.from_outputs(list(ops), op_knobs, y, base, outputs)


def front_section(args) -> pd.DataFrame:
    model, _, kind, single, cost = _problem("kws", args)
    print(f"\n== front quality: KWS CNN ({kind} weights), P1, tuner threshold "
          f"{TUNER_THRESHOLD} pp, unpruned ==")
    rows = []
    spaces = [] if args.kws_synthetic else [("convs", model.op_names("conv"), single)]
    if args.all_space and not args.kws_synthetic:
        spaces.append(("all", single.ops, single))
    # A P1 problem with the network's real conv ops, knobs and FLOPs but a synthetic
    # single-op profile whose logit perturbations grow with each knob's nominal speedup
    # and each op's random sensitivity: a non-trivial front even when the weights at hand
    # (briefly trained) make approximation free.
    spaces.append(("convs-synthetic", model.op_names("conv"),
                   _synthetic_profile(cost, model.op_names("conv"), single.labels, seed=0)))
    for label, ops, single in spaces:
        ref = single.baseline_accuracy - TUNER_THRESHOLD
        space = tuner.build_space(cost, ops, single, top_k=None)
        evaluate, speedup = _objectives(space, single, cost)
        t0 = time.perf_counter()
        qs, ss = [], []
        for K in space.grid(chunk=2048):
            qs.append(evaluate(K))
            ss.append(speedup(K))
        secs = time.perf_counter() - t0
        q, s = np.concatenate(qs), np.concatenate(ss)
        hv_ex = tuner.hypervolume_2d(q, s, ref)
        front = tuner.pareto_mask(q[q > ref], s[q > ref]).sum() if (q > ref).any() else 0
        print(f"[{label}] exhaustive: {space.size} configurations in {secs:.1f} s "
              f"({space.size / secs:,.0f} P1 evaluations/s), front {front} points, "
              f"hypervolume {hv_ex:.4f}", flush=True)
        budget = max(2, math.ceil(args.budget * space.size))
        pop = min(50, max(10, budget // 8))
        for name, spec in SEARCHES.items():
            kw = _variant(space, single, cost, spec, budget)
            for seed in range(args.seeds):
                res, secs = _search(space, single, cost, trials=budget, seed=seed,
                                    population_size=pop, **kw)
                checkpoints = np.unique(np.linspace(1, len(res.trials), 60).astype(int))
                curve = _hv_curve(res.trials, ref, checkpoints) / hv_ex if hv_ex > 0 else \
                    np.ones(len(checkpoints))
                reach = checkpoints[np.flatnonzero(curve >= 0.99)]
                needed = int(reach[0]) if len(reach) else None
                row = {"space": label, "size": space.size, "search": name, "seed": seed,
                       "budget": budget, "evaluations": res.n_evaluations,
                       "hv_ratio": curve[-1], "needed_for_0.99": needed,
                       "needed_%": None if needed is None else 100 * needed / space.size,
                       "seconds": secs}
                rows.append(row)
                _row(row)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        agg = table.groupby(["space", "search"], sort=False).agg(
            hv_ratio_worst=("hv_ratio", "min"), hv_ratio_mean=("hv_ratio", "mean"),
            needed_pct_worst=("needed_%", "max"), budget=("budget", "first"))
        agg["ok (worst >= 0.99)"] = agg["hv_ratio_worst"] >= 0.99
        print(agg.to_string(float_format=lambda v: f"{v:.4g}"))
    return table


def harfront_section(args) -> pd.DataFrame:
    model, _, kind, single, cost = _problem("har", args)
    space = tuner.build_space(cost, single.ops, single, top_k=None)
    print(f"\n== exact P2 front of the whole HAR space ({kind} weights, {len(space.ops)} ops, "
          f"{space.size:.3g} configurations) vs {args.trials} P2 search trials ==")
    base = single.baseline_accuracy
    ref = base - TUNER_THRESHOLD
    t0 = time.perf_counter()
    gains, costs, q0, c0 = front_mod.additive_tables(space, single, cost)
    whole = front_mod.exact_front(gains, costs, qos_offset=q0, cost_offset=c0)
    t_whole = time.perf_counter() - t0
    t0 = time.perf_counter()
    front = front_mod.exact_front(gains, costs, qos_offset=q0, cost_offset=c0, min_qos=ref)
    t_ref = time.perf_counter() - t0
    fs = c0 / front.cost
    hv_ex = tuner.hypervolume_2d(front.qos, fs, ref)
    # the front's configurations really score what the front says
    K = np.array([[ch[i] for ch, i in zip(space.choices, row, strict=True)]
                  for row in front.choice])
    evaluate, speedup = _objectives(space, single, cost, "p2")
    err = max(np.abs(evaluate(K) - front.qos).max(), np.abs(speedup(K) - fs).max())
    print(f"exact front: {len(whole)} points over the whole QoS range in {t_whole:.2f} s; "
          f"{len(front)} with QoS >= {ref:.2f} % in {t_ref:.2f} s (max speedup "
          f"{fs.max():.3f}, hypervolume {hv_ex:.4f}; P2 / cost model re-evaluated on its "
          f"configurations: max abs difference {err:.2g})", flush=True)
    rows = []
    for name, spec in SEARCHES.items():
        if "guided" in name:
            name += " (circular under P2: its prior is P2)"
        kw = _variant(space, single, cost, spec, args.trials)
        for seed in range(args.har_seeds):
            res, secs = _search(space, single, cost, trials=args.trials, seed=seed,
                                qos_model="p2", **kw)
            t = res.trials
            row = {"search": name, "seed": seed, "trials": len(t), "seconds": secs,
                   "hv_ratio": front_mod.hypervolume_ratio(t["qos"], t["speedup"], front.qos,
                                                           fs, ref),
                   "best_feasible_speedup": t.loc[t["feasible"], "speedup"].max(),
                   "exact_max_speedup": fs.max()}
            rows.append(row)
            _row(row)
    return pd.DataFrame(rows)


def prune_section(args) -> pd.DataFrame:
    _, _, kind, single, cost = _problem("har", args)
    print(f"\n== knob pruning on HAR ({kind} weights): P1 search, 3,000 trials ==")
    ref = single.baseline_accuracy - TUNER_THRESHOLD
    rows = []
    for top_k in (2, tuner.AUTO_TOP_K, None):
        space = tuner.build_space(cost, single.ops, single, top_k=top_k)
        for seed in range(args.seeds):
            res, secs = _search(space, single, cost, trials=3000, seed=seed)
            t = res.trials
            row = {"pruning": f"top-{top_k}" if top_k else "none", "space": f"{space.size:.3g}",
                   "seed": seed, "hypervolume": tuner.hypervolume_2d(t["qos"], t["speedup"], ref),
                   "best_feasible_speedup": t.loc[t["feasible"], "speedup"].max(),
                   "trials_per_s": len(t) / secs}
            rows.append(row)
            _row(row)
    return pd.DataFrame(rows)


def _tune(task: str, args, **kw) -> tuner.TuneResult:
    model, splits, trained, kind = _model(task, args.quick)
    print(f"[{task}] {kind} weights")
    target = trained if trained is not None else model
    return tuner.tune(target, quick=args.quick, progress=not args.quiet,
                      tune_data=splits.tune, test_data=splits.test, **kw)


def error_section(args) -> pd.DataFrame:
    print("\n== P1 / P2 prediction error vs empirical QoS (tune set, chosen configurations) ==")
    rows = []
    for task in ("kws", "har"):
        r = _tune(task, args, measure=False)
        c = r.candidates.iloc[1:]  # row 0 is the exact configuration
        for m in ("p1", "p2"):
            err = (c[f"qos_{m}"] - c["qos_tune"]).abs()
            rows.append({"task": task, "model": m, "configs": len(c),
                         "mean_abs_err_pp": err.mean(), "max_abs_err_pp": err.max()})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return table


def har_section(args) -> pd.DataFrame:
    print("\n== wall time of a full HAR tune (P1, defaults) ==")
    old = os.environ.get("MOBIPROX_DATA")
    tmp = None
    if not args.warm:
        tmp = tempfile.mkdtemp(prefix="mpx-bench-")
        for sub in ("datasets", "models"):
            (Path(tmp) / "cache").mkdir(parents=True, exist_ok=True)
            os.symlink(cache.cache_dir(sub), Path(tmp) / "cache" / sub)
        os.environ["MOBIPROX_DATA"] = tmp
    try:
        t0 = time.perf_counter()
        r = _tune("har", args)
        total = time.perf_counter() - t0
    finally:
        if tmp is not None:
            if old is None:
                del os.environ["MOBIPROX_DATA"]
            else:
                os.environ["MOBIPROX_DATA"] = old
    stages = pd.DataFrame([{"stage": k, "seconds": v} for k, v in r.timings.items()])
    print(stages.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    n_pairs = r.single_op.n_pairs if r.single_op is not None else 0
    print(f"total {total:.1f} s ({'warm' if args.warm else 'fresh'} tuning cache); "
          f"{n_pairs} single-op pairs, {len(r.trials)} trials "
          f"({len(r.trials) / max(r.timings.get('search', 1e-9), 1e-9):.0f} trials/s), "
          f"{len(r.candidates) - 1} candidates validated, {len(r.configs)} final configurations")
    with pd.option_context("display.width", 160):
        print(r.configs[["name", "predicted_speedup", "qos_loss_tune", "qos_loss_test",
                         "speedup", "energy"]].to_string(index=False))
    return stages


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sections = ["throughput", "front", "harfront", "prune", "error", "har"]
    ap.add_argument("--sections", nargs="+", default=sections, choices=sections)
    ap.add_argument("--seeds", type=int, default=5, help="search seeds per front setting")
    ap.add_argument("--har-seeds", type=int, default=2, help="seeds per harfront setting")
    ap.add_argument("--trials", type=int, default=10000,
                    help="trials of the throughput and harfront sections")
    ap.add_argument("--all-space", action="store_true",
                    help="front section: also the 200,704-configuration KWS space")
    ap.add_argument("--profile-examples", type=int, default=tuner.SINGLE_OP_EXAMPLES,
                    help="tune inputs of the single-op profile (class-stratified subset)")
    ap.add_argument("--kws-synthetic", action="store_true",
                    help="KWS: a synthetic single-op profile of the real ops (no profiling)")
    ap.add_argument("--har-profile-examples", type=int, default=None,
                    help="the same for HAR (default: --profile-examples)")
    ap.add_argument("--train-epochs", type=int, default=1,
                    help="without a cached model: train this many epochs (0: random weights)")
    ap.add_argument("--budget", type=float, default=0.05,
                    help="search budget as a fraction of the space (front section)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--quick", action="store_true", help="quick data and budgets")
    ap.add_argument("--warm", action="store_true",
                    help="har section: reuse the project's tuning cache")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.1f}")
    for section in args.sections:
        {"throughput": throughput_section, "front": front_section,
         "harfront": harfront_section, "prune": prune_section, "error": error_section,
         "har": har_section}[section](args)


if __name__ == "__main__":
    main()
