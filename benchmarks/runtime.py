"""Runtime benchmark: PyTorch eager vs our exact runtime vs approximate configurations.

Usage: ``.venv/bin/python benchmarks/runtime.py [--tasks har kws] [--batches 1 64]
[--budget 2.0] [--threads N] [--clock wall|cpu] [--csv out.csv] [--default-paths]``

For each model (trained weights: cached, else shipped, else random weights of the
architecture) and batch size it prints the median latency of: PyTorch eager (exact,
``torch.no_grad``), our exact runtime (numba backend), and approximate configurations
(every regular convolution row-perforated / column-perforated / filter-sampled at stride 2,
and a mixed one), with the ratio vs torch, the measured speedup vs our exact runtime and
the speedup the linear cost model predicts (sum of FLOPs / sum of FLOPs / nominal speedup).
It also prints the configuration-switch cost and the Amdahl ceiling set by the steps
that cannot be approximated (depthwise convolutions, pooling, the classifier...), computed
from the measured per-step times of the exact run, and for each stride-2 configuration
the measured speedup as a fraction of its Amdahl ceiling (the steps it approximates at
their knobs' nominal speedup, the rest unchanged), and of the ceiling at the speedup each
layer's kept work allows (``knobs.work_speedup``: KWS's 13-column conv2 computes 7 of 13
columns under stride-2 column perforation, 1.86x, not 2x). Everything, torch included, runs with the
allocator keeping freed memory (``kernels.retain_freed_memory``), and our kernels with
this machine's calibrated path thresholds (``profiler.kernel_paths``), as the profiler
times (``--default-paths``: the built-in thresholds instead).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mobiprox_lab import knobs  # noqa: E402
from mobiprox_lab.kernelbench import settle, warm_up  # noqa: E402
from mobiprox_lab.kernels import retain_freed_memory  # noqa: E402
from mobiprox_lab.models import build_model, cached_model  # noqa: E402
from mobiprox_lab.runtime import ApproxModel  # noqa: E402

SHAPES = {"har": ((3, 32, 32), 7), "kws": ((1, 101, 40), 12)}
TORCH_RUNS = ("torch eager", "exact, reference backend")  # candidates that run torch ops


def benchmark_model(task: str):
    """(module, input shape, "trained" | "random"): ``task``'s trained model
    (``models.cached_model``), else random weights of its architecture."""
    trained = cached_model(task)
    if trained is not None:
        return trained.module, trained.input_shape, "trained"
    shape, n = SHAPES[task]
    torch.manual_seed(0)
    return build_model(task, n, shape).eval(), shape, "random"


def _all_convs(am: ApproxModel, choices: list[int]) -> dict[str, int]:
    """Each regular conv gets the first applicable knob of ``choices`` (cycled per conv)."""
    table = am.ops.set_index("name")
    cfg = {}
    for i, name in enumerate(am.op_names("conv")):
        ok = table.loc[name, "knobs"]
        for k in choices[i % len(choices):] + choices[:i % len(choices)]:
            if k in ok:
                cfg[name] = k
                break
    return cfg


def configs(am: ApproxModel) -> dict[str, dict[str, int]]:
    """The benchmark's configurations (name -> config)."""
    return {
        "exact": {},
        "perf-row s2": _all_convs(am, [123, 124]),
        "perf-col s2": _all_convs(am, [121, 122]),
        "samp s2": _all_convs(am, [231]),
        "mixed": _all_convs(am, [123, 231, 121, 128]),
    }


def predicted_speedup(am: ApproxModel, config: dict[str, int]) -> float:
    """Linear cost model: sum(flops) / sum(flops / nominal speedup of the op's knob)."""
    full = am.validate_config(config)
    flops = am.ops.set_index("name").flops
    cost = sum(flops[n] / knobs.nominal_speedup(k) for n, k in full.items())
    return float(flops.sum() / cost)


def median_times(fns: dict, budget: float, min_rounds: int = 3,
                 max_rounds: int = 200, clock=time.perf_counter,
                 warm: int = 3, spinning=TORCH_RUNS) -> dict[str, float]:
    """Median seconds per call of each function, timed round-robin (one call of each per
    round) so that load drifts on a shared machine hit every candidate alike; each timed
    call follows ``warm`` untimed calls of the same function lasting at least
    ``kernelbench.WARM_SECONDS`` (``kernelbench.warm_up``: a call right after the idle wait
    below runs slow), so that it starts from its own weights and buffers in cache, not from
    what the previous candidate left, on a busy machine. Our exact
    run comes right after the torch ones: HAR at batch 1 (1 thread, CPU time, median of
    300) measured 0.533 ms after one warm call, 0.496 ms after three, 0.494 ms after a
    perforated run (which shares its weights); with no warm call the exact run was the
    slowest of all and every speedup over it inflated. After the functions in
    ``spinning`` (torch's) the next one starts when torch's OpenMP threads have stopped
    spinning (``kernelbench.settle``), else on several threads they hold a core during the
    next candidate's calls. ``clock``: ``time.perf_counter``
    (wall) or ``time.thread_time`` (CPU time of the calling thread, robust to other
    processes' load when everything runs on that one thread)."""
    for fn in fns.values():
        fn()  # warm
    times: dict[str, list[float]] = {k: [] for k in fns}
    t_end = time.perf_counter() + budget * len(fns)
    rounds = 0
    while rounds < min_rounds or (time.perf_counter() < t_end and rounds < max_rounds):
        for k, fn in fns.items():
            warm_up(fn, calls=warm)
            t0 = clock()
            fn()
            times[k].append(clock() - t0)
            if k in spinning:
                settle()
        rounds += 1
    return {k: statistics.median(v) for k, v in times.items()}


def work_speedups(am: ApproxModel, config: dict[str, int]) -> dict[str, float]:
    """Per op of ``config``: the speedup its knob's kept work allows on that layer's shape
    (``knobs.work_speedup``; the runtime's conv flops are weight elements x Ho x Wo)."""
    ops = am.ops.set_index("name")
    out = {}
    for name, k in config.items():
        c_out, ho, wo = ops.loc[name, "out_shape"]
        out[name] = knobs.work_speedup(k, (ho, wo), ops.loc[name, "flops"] // (c_out * ho * wo))
    return out


def amdahl(steps: pd.DataFrame, config: dict[str, int],
           speedups: dict[str, float] | None = None) -> tuple[float, float]:
    """(share of the exact run's time in steps whose head op gets an approximate knob in
    ``config``, the speedup ceiling if those steps ran at ``speedups[op]``, by default
    their knobs' nominal speedup)."""
    total = steps.seconds.sum()
    cost = share = 0.0
    for label, sec in zip(steps.step, steps.seconds, strict=True):
        k = config.get(label, knobs.EXACT)
        if k != knobs.EXACT:
            share += sec / total
            sp = knobs.nominal_speedup(k) if speedups is None else speedups[label]
            cost += sec / total / sp
        else:
            cost += sec / total
    return share, 1.0 / cost


def bench_task(task: str, batches: list[int], budget: float,
               clock=time.perf_counter) -> tuple[pd.DataFrame, dict]:
    module, shape, source = benchmark_model(task)
    t0 = time.perf_counter()
    am = ApproxModel(module, shape)
    build_s = time.perf_counter() - t0
    cfgs = configs(am)
    prepared = {name: am.prepare_config(c) for name, c in cfgs.items()}  # validates + warms
    rows = []
    extra = {"task": task, "weights": source, "build_s": build_s}
    for n in batches:
        x = np.random.default_rng(n).standard_normal((n, *shape)).astype(np.float32)
        xt = torch.from_numpy(x)

        def torch_eager(_xt=xt):
            with torch.no_grad():
                return module(_xt)

        fns = {"torch eager": torch_eager,
               "exact, reference backend": lambda _x=x: am.run(_x, backend="reference")}
        for name, vec in prepared.items():
            fns[name] = lambda _x=x, _v=vec: am.run(_x, _v)
        t = median_times(fns, budget, clock=clock)
        t_torch, t_exact = t["torch eager"], t["exact"]
        for name in [*prepared, "torch eager", "exact, reference backend"]:
            rows.append({"task": task, "batch": n, "config": name, "ms": 1e3 * t[name],
                         "vs_torch": t[name] / t_torch, "speedup": t_exact / t[name],
                         "predicted": predicted_speedup(am, cfgs[name]) if name in cfgs
                         else np.nan})
        steps = am.time_steps(x, prepared["exact"], repeats=5, clock=clock)
        for name in ("perf-row s2", "perf-col s2", "samp s2"):
            share, ceiling = amdahl(steps, cfgs[name])
            _, work = amdahl(steps, cfgs[name], work_speedups(am, cfgs[name]))
            row = next(r for r in rows if r["config"] == name and r["batch"] == n)
            row.update(approx_share=share, ceiling=ceiling, of_ceiling=row["speedup"] / ceiling,
                       work_ceiling=work, of_work_ceiling=row["speedup"] / work)
        heads = am.ops.set_index("name").kind
        conv = steps.step.map(heads).eq("conv")
        f_other = steps.seconds[~conv].sum() / steps.seconds.sum()
        extra[f"b{n}_nonconv_fraction"] = f_other
        extra[f"b{n}_ceiling_s2"] = 1.0 / (f_other + (1 - f_other) / 2)
        extra[f"b{n}_ceiling_inf"] = 1.0 / f_other if f_other > 0 else np.inf
        by_kind = steps.groupby(steps.step.map(heads)).seconds.sum()
        extra[f"b{n}_ms_by_kind"] = {k: round(1e3 * v, 2) for k, v in by_kind.items()}
    a, b = prepared["perf-row s2"], prepared["samp s2"]
    reps = 20000
    extra["switch_us_prepared"] = 1e6 * timeit.timeit(
        lambda: (am.set_config(a), am.set_config(b)), number=reps) / (2 * reps)
    da, db = cfgs["perf-row s2"], cfgs["samp s2"]
    reps = 2000
    extra["switch_us_mapping"] = 1e6 * timeit.timeit(
        lambda: (am.set_config(da), am.set_config(db)), number=reps) / (2 * reps)
    full = am.validate_config(da)
    extra["switch_us_full_mapping"] = 1e6 * timeit.timeit(
        lambda: am.set_config(full), number=reps) / reps
    am.set_config(None)
    return pd.DataFrame(rows), extra


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["har", "kws"], choices=["har", "kws"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of repeats per cell")
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both torch and numba (default: leave both as they are)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default=None,
                    help="wall time, or CPU time of the calling thread (default: cpu with "
                         "--threads 1, else wall)")
    ap.add_argument("--default-paths", action="store_true",
                    help="the kernels' built-in path thresholds, not this machine's calibrated "
                         "ones (profiler.kernel_paths)")
    args = ap.parse_args(argv)
    use_cpu = args.clock == "cpu" or (args.clock is None and args.threads == 1)
    clock = time.thread_time if use_cpu else time.perf_counter
    import numba

    from mobiprox_lab import kernels

    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
        if hasattr(kernels, "set_num_threads"):
            kernels.set_num_threads(args.threads)
    allocator = retain_freed_memory()
    if not args.default_paths:
        from mobiprox_lab import profiler

        profiler.kernel_paths(progress=True)
    print(f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"numba {numba.__version__} with {numba.get_num_threads()} threads, kernels with "
          f"{kernels.get_num_threads()} threads; clock: "
          f"{'CPU time of the calling thread' if use_cpu else 'wall'}; allocator: {allocator}; "
          f"kernel paths ({'built-in' if args.default_paths else 'calibrated'}): "
          f"{kernels.path_thresholds()}, row GEMMs on [C, K, H, W, one sample] "
          f"{[c[:5] for c in kernels.path_choices() if c[5]] or 'none'}")
    frames = []
    for task in args.tasks:
        df, extra = bench_task(task, args.batches, args.budget, clock)
        frames.append(df)
        print(f"\n== {task} ({extra['weights']} weights, ApproxModel built in "
              f"{extra['build_s']:.2f} s) ==")
        print(df.drop(columns="task").to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        for n in args.batches:
            print(f"batch {n}: time by step kind (ms) {extra[f'b{n}_ms_by_kind']}; "
                  f"non-regular-conv share {extra[f'b{n}_nonconv_fraction']:.1%} -> Amdahl "
                  f"ceiling {extra[f'b{n}_ceiling_s2']:.2f}x if every conv ran 2x faster, "
                  f"{extra[f'b{n}_ceiling_inf']:.2f}x if convs were free")
        amd = df.dropna(subset=["ceiling"]) if "ceiling" in df else df.iloc[:0]
        for r in amd.itertuples():
            print(f"batch {r.batch} {r.config}: measured {r.speedup:.2f}x vs Amdahl ceiling "
                  f"{r.ceiling:.2f}x ({r.approx_share:.1%} of the exact time in approximated "
                  f"steps, at their nominal speedup) = {r.of_ceiling:.0%} of the ceiling "
                  f"(target >= 90%: {'yes' if r.of_ceiling >= 0.9 else 'NO'}); at the "
                  f"speedup each layer's kept work allows, ceiling {r.work_ceiling:.2f}x = "
                  f"{r.of_work_ceiling:.0%} ({'yes' if r.of_work_ceiling >= 0.9 else 'NO'})")
        print(f"switch cost: {extra['switch_us_prepared']:.2f} us (prepared tuple), "
              f"{extra['switch_us_mapping']:.1f} us (sparse mapping), "
              f"{extra['switch_us_full_mapping']:.1f} us (full mapping)")
    out = pd.concat(frames, ignore_index=True)
    if args.csv:
        out.to_csv(args.csv, index=False)
    return out


if __name__ == "__main__":
    main()
