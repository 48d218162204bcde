"""Benchmark mobiprox_lab.kernels against torch on the HAR MobileNet and KWS CNN layers.

    python benchmarks/kernels.py [--quick] [--threads 2] [--also-single] [--refresh]
        [--default-paths]

Prints median times per layer, our exact / torch, the speedup of every
approximation over our exact conv (and the fraction of its nominal speedup it
reaches), approximate / torch, the per-phase breakdown, and whether the
project's targets are met. Results are cached (see mobiprox_lab.kernelbench).
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
import pandas as pd

from mobiprox_lab import kernelbench, kernels, profiler

pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 40)
pd.set_option("display.max_rows", 400)


def _load() -> str:
    try:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "load average n/a"


def print_times(df: pd.DataFrame, stat: str, what: str) -> None:
    times = df.pivot_table(index="layer", columns="variant", values=stat, sort=False) * 1e3
    order = ["torch exact", "exact", *kernelbench.APPROX_VARIANTS]
    times = times[[c for c in order if c in times.columns]]
    shape = df.groupby("layer", sort=False).agg(kind=("kind", "first"), ho=("ho", "first"),
                                                wo=("wo", "first"))
    table = shape.join(times.round(2))
    table.insert(3, "exact/torch", (times["exact"] / times["torch exact"]).round(2))
    print(f"\n{what} per call, ms (batch {df['batch'].iloc[0]}):")
    print(table.to_string())


def print_speedups(df: pd.DataFrame, stat: str) -> None:
    sp = kernelbench.speedups(df, stat)
    for column, title in (("speedup", "Speedup over our exact (exact / approximate)"),
                          ("fraction_of_nominal", "Fraction of the nominal speedup reached"),
                          ("vs_torch", "torch exact / approximate (> 1: faster than torch)")):
        wide = sp.pivot_table(index="layer", columns="variant", values=column, sort=False)
        wide = wide[[c for c in kernelbench.APPROX_VARIANTS if c in wide.columns]]
        print(f"\n{title}:")
        print(wide.round(2).to_string())


def print_breakdown(bd: pd.DataFrame) -> None:
    wide = bd.pivot_table(index=["layer", "out_elems", "variant"], columns="phase",
                          values="seconds", sort=False) * 1e3
    wide = wide[[p for p in ("prep", "im2col", "gemm", "interp", "direct") if p in wide]]
    wide["total"] = wide.sum(axis=1)
    wide = wide.sort_index(level="out_elems", sort_remaining=False)
    print("\nPer-phase time, ms (summed over worker threads), by output tensor size:")
    print(wide.round(2).to_string())


def print_summary(df: pd.DataFrame, stat: str, what: str) -> None:
    summary = kernelbench.summary(df, stat)
    summary["value"] = summary["value"].round(3)
    summary["met"] = summary["met"].map({True: "yes", False: "NO", None: ""})
    print(f"\nSummary and targets ({what}):")
    print(summary.fillna("").to_string(index=False))


def print_roofs_and_targets(df: pd.DataFrame, stat: str, machine: dict) -> None:
    print(f"\nMachine roofs now: numpy sgemm {machine['sgemm_gflops']:.1f} GFLOP/s, fresh "
          f"output write {machine['write_gbs']:.1f} GB/s, read {machine['read_gbs']:.1f} GB/s")
    gf = kernelbench.gflops(df, stat)
    gf["exact / sgemm roof"] = gf["exact"] / machine["sgemm_gflops"]
    print("\nGFLOP/s of the exact convolutions (torch, ours) next to numpy sgemm:")
    print(gf.round(2).to_string(index=False))
    pt = kernelbench.pointwise_targets(df, machine, stat)
    if len(pt):
        pt["met"] = pt["met"].map({True: "yes", False: "NO"})
        print("\n1x1 layers >= 8x8, stride 2: >= 1.6x over our exact, or within 10% of the "
              "bound of writing the output (+ reading the kept input) where that bound is "
              "slower than exact / 1.6:")
        print(pt.round(3).to_string(index=False))


def print_depthwise_batch1(threads: int, args) -> None:
    names = [lay.name for lay in kernelbench.layer_shapes() if lay.kind == "depthwise"]
    df = kernelbench.bench_layers(quick=args.quick, batch=1, threads=threads, layers=names,
                                  refresh=args.refresh, progress=False)
    stat = "cpu_median_s" if threads == 1 else "median_s"
    t = df.pivot_table(index="layer", columns="variant", values=stat, sort=False)
    ratio = t["exact"] / t["torch exact"]
    print(f"\nDepthwise at batch 1 ({stat}), ms:")
    print(pd.DataFrame({"torch": 1e3 * t["torch exact"], "exact": 1e3 * t["exact"],
                        "exact/torch": ratio}).round(3).to_string())
    geo = float(np.exp(np.log(ratio).mean()))
    print(f"exact / torch, geo mean, depthwise, batch 1: {geo:.3f} (target <= 1.0: "
          f"{'yes' if geo <= 1.0 else 'NO'})")


def run(threads: int, args) -> None:
    print(f"\n=== torch and mobiprox kernels on {threads} thread(s) each "
          f"(each kernel worker thread runs a single-threaded BLAS) ===")
    if not args.default_paths:  # this machine's calibrated paths, as the profiler times
        kernels.set_num_threads(threads)
        cal = profiler.kernel_paths(progress=True)
        print(f"calibrated on {cal.get('clock', 'wall')} time, 1-minute load average before / "
              f"after: {cal.get('load_average')}")
    rows = [c[:5] for c in kernels.path_choices() if c[5]]
    print(f"kernel path thresholds ({'built-in' if args.default_paths else 'calibrated'}): "
          f"{kernels.path_thresholds()}; shapes calibrated to row GEMMs "
          f"[C, K, H, W, one sample]: {rows or 'none'}")
    print(f"before: {_load()}")
    df = kernelbench.bench_layers(quick=args.quick, threads=threads, refresh=args.refresh)
    bd = kernelbench.bench_breakdown(quick=args.quick, threads=threads, refresh=args.refresh)
    print(f"after:  {_load()}")
    counts = df[["torch_threads", "kernel_threads"]].iloc[0].to_dict()
    print(f"threads: {counts}; repeats per variant: {df['repeats'].iloc[0]}")
    stats = [("median_s", "median wall time")]
    if threads == 1:  # one thread each: process CPU time is comparable and load-robust
        stats.append(("cpu_median_s", "median process CPU time"))
    for stat, what in stats:
        print_times(df, stat, what.capitalize())
    print_speedups(df, stats[-1][0])  # process CPU time on one thread (load-robust)
    print_breakdown(bd)
    for stat, what in stats:
        print_summary(df, stat, what)
    machine = kernelbench.roofs(threads)
    print_roofs_and_targets(df, stats[-1][0], machine)
    print_depthwise_batch1(threads, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, default=2, help="threads for torch and ours")
    parser.add_argument("--also-single", action="store_true",
                        help="repeat the comparison on one thread each (less sensitive to load)")
    parser.add_argument("--refresh", action="store_true", help="ignore cached results")
    parser.add_argument("--default-paths", action="store_true",
                        help="the kernels' built-in path thresholds, not this machine's "
                             "calibrated ones (profiler.kernel_paths)")
    args = parser.parse_args()
    print(f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}")
    run(args.threads, args)
    if args.also_single and args.threads != 1:
        run(1, args)


if __name__ == "__main__":
    main()
