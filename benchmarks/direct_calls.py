"""Direct kernel calls (``kernels.set_direct_calls``) on and off, side by side, whole models.

    python benchmarks/direct_calls.py [--repeats 41] [--batches 1 4] [--tasks har kws]

On, an untimed call on one thread whose path has one kernel calls it directly, and the
runtime's layers (``kernels.PreparedConv2d``) resolve each input shape and knob once and
then make the kernel call alone; off, every call checks its arguments, chooses its path and
runs one task of the task machinery, as before either existed.
Each model as the pipeline runs it (trained weights if cached), exact and every regular conv
at row s2 / col s2 / samp s2, on one kernel thread (the profiler's setting; at batch 1
nearly every call is below the size that would go parallel anyway), each configuration run
with direct calls on and off, interleaved (``runtime.median_times``, CPU time of the calling
thread). Prints the median ms both ways, direct / tasks (< 1: direct calls are faster) and
each configuration's speedup over exact both ways: a fixed cost per call taken off every
layer raises the speedups an approximate layer can show.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from runtime import benchmark_model, configs, median_times  # noqa: E402

from mobiprox_lab import kernels, profiler  # noqa: E402
from mobiprox_lab.runtime import ApproxModel  # noqa: E402

SETTINGS = {"tasks": False, "direct": True}


def whole_model(task: str, batches: list[int], repeats: int) -> pd.DataFrame:
    module, shape, source = benchmark_model(task)
    am = ApproxModel(module, shape)
    prepared = {name: am.prepare_config(c) for name, c in configs(am).items()
                if name != "mixed"}
    rows = []
    for n in batches:
        x = np.random.default_rng(n).standard_normal((n, *shape)).astype(np.float32)

        def run(vec, direct, x=x):
            kernels.set_direct_calls(direct)
            return am.run(x, vec)

        fns = {(name, s): (lambda v=vec, d=d: run(v, d))
               for name, vec in prepared.items() for s, d in SETTINGS.items()}
        med = median_times(fns, budget=0.0, min_rounds=repeats, max_rounds=repeats,
                           clock=time.thread_time)
        for name in prepared:
            row = {"model": task, "batch": n, "weights": source, "config": name}
            for s in SETTINGS:
                row[f"{s} ms"] = 1e3 * med[name, s]
            row["direct / tasks"] = med[name, "direct"] / med[name, "tasks"]
            for s in SETTINGS:
                row[f"speedup {s}"] = med["exact", s] / med[name, s]
            rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=41)
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    ap.add_argument("--tasks", nargs="+", default=["har", "kws"], choices=["har", "kws"])
    args = ap.parse_args()
    kernels.retain_freed_memory()
    profiler.kernel_paths()  # this machine's calibrated paths, as the runtime runs
    default = kernels.get_direct_calls()
    pd.set_option("display.width", 200)
    try:
        with kernels.using_threads(1):
            table = pd.concat([whole_model(t, args.batches, args.repeats) for t in args.tasks])
        print(f"Whole models, one kernel thread, CPU time, median of {args.repeats}:")
        print(table.round(3).to_string(index=False))
    finally:
        kernels.set_direct_calls(default)


if __name__ == "__main__":
    main()
