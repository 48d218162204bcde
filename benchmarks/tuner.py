"""Tuner benchmark: front quality vs exhaustive search, QoS-model error, HAR tune wall time.

Usage: ``.venv/bin/python benchmarks/tuner.py [--sections front prune error har] [--seeds 3]
[--budget 0.05] [--threads N] [--quick] [--warm]``

front (KWS CNN)
    Enumerates the whole configuration space of the KWS network under the P1 QoS model
    (two convolutions with 56 knobs each; "convs": 3,136 configurations with the other ops
    exact; "all": 56 x 56 x 2^6 = 200,704 with fp16 / fp32 for bn1, relu1, pool1, bn2, relu2
    and the classifier) and compares the tuner's front with the exhaustive one: hypervolume ratio
    (reference point: QoS = baseline - tuner threshold, speedup 1.0; target >= 0.99) at a
    budget of ``--budget`` (default 5 %) of the space, and the evaluations needed to reach
    0.99 (target <= 5 % of the space), with and without knob pruning (top 3), over
    ``--seeds`` seeds.
    Also prints P1's throughput (configurations per second).
prune
    HAR MobileNet (83 tunable ops, ~1e45 configurations): hypervolume found by 3,000 P1
    trials with the knobs pruned to the top 2 / top 3 per op and speed level, and unpruned.
error
    P1 and P2 predicted QoS vs the empirical (validated) QoS of the configurations the tuner
    chose (tune set): mean / max absolute error in pp, for KWS and HAR.
har
    Wall time of a full HAR tune (``tuner.tune`` defaults: P1, 3,000 trials) by stage, in a
    fresh cache (trained models and datasets reused) unless ``--warm``.

Trained weights are used when cached (``models.cached_model``), else random weights of the
shipped architecture (the output says which: QoS numbers then mean little).
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
from mobiprox_lab.models import build_model, cached_model  # noqa: E402
from mobiprox_lab.profiler import CostModel  # noqa: E402
from mobiprox_lab.runtime import ApproxModel  # noqa: E402

TUNER_THRESHOLD = 3.0


def _model(task: str, quick: bool):
    """(ApproxModel, splits, TrainedModel or None, "trained" | "random")."""
    splits = datasets.prepare(task, quick=quick)
    trained = cached_model(task, quick=quick)
    if trained is not None:
        return (ApproxModel(trained.module, trained.input_shape, backend="numba"), splits,
                trained, "trained")
    torch.manual_seed(0)
    module = build_model(task, splits.n_classes, splits.input_shape).eval()
    return ApproxModel(module, splits.input_shape, backend="numba"), splits, None, "random"


def _p1_objectives(space: tuner.SearchSpace, single: tuner.SingleOpProfile, cost: CostModel):
    """(P1 QoS, predicted speedup) of knob matrices over ``space``'s ops."""
    def evaluate(K):
        return single.predict_p1(space.embed(K, single.ops))

    def speedup(K):
        return cost.speedups(space.embed(K, cost.names))

    return evaluate, speedup


def _hv_curve(trials: pd.DataFrame, ref_qos: float, checkpoints: np.ndarray) -> np.ndarray:
    """Hypervolume of the first n trials, for each n in ``checkpoints``."""
    q, s = trials["qos"].to_numpy(float), trials["speedup"].to_numpy(float)
    return np.array([tuner.hypervolume_2d(q[:n], s[:n], ref_qos) for n in checkpoints])


def front_section(args) -> pd.DataFrame:
    model, splits, _, kind = _model("kws", args.quick)
    print(f"\n== front quality: KWS CNN ({kind} weights), P1, tuner threshold "
          f"{TUNER_THRESHOLD} pp ==")
    t0 = time.perf_counter()
    single = tuner.single_op_profile(model, splits.tune, progress=not args.quiet)
    print(f"single-op profile: {single.n_pairs} (op, knob) pairs, {len(splits.tune)} tune "
          f"inputs, baseline {single.baseline_accuracy:.2f} % ({time.perf_counter() - t0:.1f} s,"
          f" cached after the first run)")
    cost = CostModel.of(model)
    ref = single.baseline_accuracy - TUNER_THRESHOLD
    rows = []
    for label, ops in (("convs", model.op_names("conv")), ("all", single.ops)):
        full = tuner.build_space(cost, ops, single, top_k=None)
        evaluate, speedup = _p1_objectives(full, single, cost)
        t0 = time.perf_counter()
        qs, ss = [], []
        for K in full.grid(chunk=2048):
            qs.append(evaluate(K))
            ss.append(speedup(K))
        secs = time.perf_counter() - t0
        q, s = np.concatenate(qs), np.concatenate(ss)
        hv_ex = tuner.hypervolume_2d(q, s, ref)
        front = tuner.pareto_mask(q[q > ref], s[q > ref]).sum() if (q > ref).any() else 0
        print(f"[{label}] exhaustive: {full.size} configurations in {secs:.1f} s "
              f"({full.size / secs:,.0f} P1 evaluations/s), front {front} points, "
              f"hypervolume {hv_ex:.3f}", flush=True)
        budget = max(2, math.ceil(args.budget * full.size))
        for top_k in (tuner.AUTO_TOP_K, None):
            space = tuner.build_space(cost, ops, single, top_k=top_k)
            evaluate, speedup = _p1_objectives(space, single, cost)
            for seed in range(args.seeds):
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    res = tuner.run_search(
                        space, evaluate, speedup, baseline_qos=single.baseline_accuracy,
                        tuner_threshold=TUNER_THRESHOLD, trials=budget, study_name="bench",
                        storage=Path(tmp) / "bench.journal", seed=seed,
                        population_size=min(50, max(10, budget // 10)),
                        seeds=tuner.default_seeds(space, single, max_seeds=budget // 4),
                        progress=False)
                    secs = time.perf_counter() - t0
                checkpoints = np.unique(np.linspace(1, len(res.trials), 60).astype(int))
                curve = _hv_curve(res.trials, ref, checkpoints) / hv_ex if hv_ex > 0 else \
                    np.ones(len(checkpoints))
                reach = checkpoints[np.flatnonzero(curve >= 0.99)]
                needed = int(reach[0]) if len(reach) else None
                row = {
                    "space": label, "size": full.size,
                    "pruning": f"top-{top_k}" if top_k else "none",
                    "searched": space.size, "seed": seed, "budget": budget,
                    "evaluations": res.n_evaluations, "hv_ratio": curve[-1],
                    "needed_for_0.99": needed,
                    "needed_%": None if needed is None else 100 * needed / full.size,
                    "seconds": secs,
                }
                rows.append(row)
                print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in row.items()), flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        agg = table.groupby(["space", "pruning"]).agg(
            hv_ratio_min=("hv_ratio", "min"), hv_ratio_mean=("hv_ratio", "mean"),
            needed_pct_max=("needed_%", "max"), budget=("budget", "first"))
        print(agg.to_string(float_format=lambda v: f"{v:.4g}"))
    return table


def prune_section(args) -> pd.DataFrame:
    model, splits, _, kind = _model("har", args.quick)
    print(f"\n== knob pruning on HAR ({kind} weights): P1 search, 3,000 trials ==")
    single = tuner.single_op_profile(model, splits.tune, progress=not args.quiet)
    cost = CostModel.of(model)
    ref = single.baseline_accuracy - TUNER_THRESHOLD
    rows = []
    for top_k in (2, tuner.AUTO_TOP_K, None):
        space = tuner.build_space(cost, single.ops, single, top_k=top_k)
        evaluate, speedup = _p1_objectives(space, single, cost)
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                res = tuner.run_search(
                    space, evaluate, speedup, baseline_qos=single.baseline_accuracy,
                    tuner_threshold=TUNER_THRESHOLD, trials=3000, study_name="bench",
                    storage=Path(tmp) / "bench.journal", seed=seed,
                    seeds=tuner.default_seeds(space, single), progress=False)
                secs = time.perf_counter() - t0
            t = res.trials
            row = {"pruning": f"top-{top_k}" if top_k else "none", "space": f"{space.size:.3g}",
                   "seed": seed, "hypervolume": tuner.hypervolume_2d(t["qos"], t["speedup"], ref),
                   "best_feasible_speedup": t.loc[t["feasible"], "speedup"].max(),
                   "trials_per_s": len(t) / secs}
            rows.append(row)
            print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in row.items()), flush=True)
    return pd.DataFrame(rows)


def _tune(task: str, args, **kw) -> tuner.TuneResult:
    model, splits, trained, kind = _model(task, args.quick)
    print(f"[{task}] {kind} weights")
    target = trained if trained is not None else model
    extra = {} if trained is not None else {"tune_data": splits.tune, "test_data": splits.test}
    return tuner.tune(target, quick=args.quick, progress=not args.quiet, **extra, **kw)


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
    ap.add_argument("--sections", nargs="+", default=["front", "prune", "error", "har"],
                    choices=["front", "prune", "error", "har"])
    ap.add_argument("--seeds", type=int, default=3, help="search seeds per front setting")
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
        {"front": front_section, "prune": prune_section, "error": error_section,
         "har": har_section}[section](args)


if __name__ == "__main__":
    main()
