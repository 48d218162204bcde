"""Cost-model benchmark: predicted vs measured speedup, measured-table model vs FLOP model.

Usage: ``.venv/bin/python benchmarks/costmodel.py [--tasks har kws] [--configs FILE.json]
[--n-random 8] [--repeats 5] [--table-repeats 5] [--batch 32] [--threads N] [--csv out.csv]``

For each task's network (trained weights: cached, else shipped, else random weights of the
architecture: latency does not depend on the weights) it

1. measures (or loads from the cache) the latency table (``profiler.measure_latency_table``)
   and builds the measured cost model (``CostModel.measured``) and the FLOP model
   (``CostModel.of``);
2. times the configurations round-robin with ``profiler.profile`` (exact included) at the
   batch size and at batch 1;
3. prints, per configuration and summarised (median, max), the relative speedup error
   (speedups on ``--clock``: CPU seconds by default, robust to other processes' load)
   ``|predicted - measured| / measured`` of both models, at the batch size and at batch 1.

Configurations: ``--configs FILE.json`` ({"har": [config, ...], "kws": [...]}, e.g. the final
lists), else a spread: every regular convolution at one knob (uniform, one per knob family,
fp16 included) and ``--n-random`` random configurations (each tunable op approximated with
probability 1/2, by a uniformly drawn applicable knob; half of them fp32 knobs only).
The authors' phone gap is printed for context: their tuner predicted 1.86-2.80x for
MobileNet / UCI-HAR configurations that measured 1.04-1.26x on the phone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mobiprox_lab import kernels, knobs, profiler  # noqa: E402
from mobiprox_lab.models import build_model, cached_model  # noqa: E402
from mobiprox_lab.profiler import CostModel  # noqa: E402
from mobiprox_lab.runtime import ApproxModel  # noqa: E402

SHAPES = {"har": ((3, 32, 32), 6), "kws": ((1, 101, 40), 12)}
UNIFORM_KNOBS = (12, 121, 123, 125, 128, 131, 151, 231, 233, 236, 261)
AUTHORS_GAP = "authors (phone, MobileNet / UCI-HAR): predicted 1.86-2.80x, measured 1.04-1.26x"


def _model(task: str) -> tuple[ApproxModel, str]:
    trained = cached_model(task)
    if trained is not None:
        return ApproxModel(trained.module, trained.input_shape), "trained"
    shape, n = SHAPES[task]
    torch.manual_seed(0)
    return ApproxModel(build_model(task, n, shape).eval(), shape), "random"


def spread_configs(am: ApproxModel, n_random: int, seed: int = 0) -> list[dict[str, int]]:
    """Uniform-knob configurations of the regular convolutions plus random ones."""
    table = am.ops.set_index("name")
    out: list[dict[str, int]] = []
    for k in UNIFORM_KNOBS:
        cfg = {n: k for n in am.op_names("conv") if k in table.loc[n, "knobs"]}
        if cfg:
            out.append(cfg)
    rng = np.random.default_rng(seed)
    for i in range(n_random):
        fp32_only = i % 2 == 0
        cfg = {}
        for n in am.tunable_ops:
            ks = [k for k in table.loc[n, "knobs"] if k != knobs.EXACT
                  and not (fp32_only and knobs.get(k).is_fp16)]
            if ks and rng.random() < 0.5:
                cfg[n] = int(rng.choice(ks))
        if cfg:
            out.append(cfg)
    return out


def _errors(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    return np.abs(pred - meas) / meas


def bench_task(task: str, configs: list[dict] | None, args) -> pd.DataFrame:
    am, source = _model(task)
    cfgs = ([dict(c) for c in configs if c] if configs is not None
            else spread_configs(am, args.n_random))  # the exact row is added below
    t0 = time.perf_counter()
    table = profiler.measure_latency_table(am, batch_sizes=(args.batch, 1),
                                           repeats=args.table_repeats, clock=args.clock)
    print(f"[{task}] latency table: {len(table.table)} rows, measured in "
          f"{table.meta['seconds']:.0f} s (this call {time.perf_counter() - t0:.1f} s), "
          f"exact run {1e3 * table.exact_latency_s[args.batch]:.3f} {args.clock} ms/inference "
          f"at batch "
          f"{args.batch}, {1e3 * table.exact_latency_s[1]:.3f} ms at batch 1; sum of exact "
          f"ops / run: {table.exact_steps_s[args.batch] / table.exact_latency_s[args.batch]:.2f}"
          f" (batch {args.batch}), {table.exact_steps_s[1] / table.exact_latency_s[1]:.2f} "
          f"(batch 1)")
    measured = {b: CostModel.measured(am, batch_size=b, latency=table) for b in (args.batch, 1)}
    flops = CostModel.of(am)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((args.batch, *am.input_shape)).astype(np.float32)
    y = np.zeros(args.batch, np.int64)
    t0 = time.perf_counter()
    prof = profiler.profile(am, [{}] + cfgs, (x, y), batch_size=args.batch,
                            repeats=args.repeats, warmup=1, clock=args.clock)
    print(f"[{task}] profiled {len(cfgs) + 1} configurations in "
          f"{time.perf_counter() - t0:.0f} s ({source} weights)")
    rows = []
    for cfg, (_, r) in zip([{}] + cfgs, prof.iterrows(), strict=True):
        rows.append({
            "task": task, "config": json.dumps(cfg, sort_keys=True), "n_ops": len(cfg),
            "fp16": any(knobs.get(k).is_fp16 for k in cfg.values()),
            "measured": r["speedup"], "pred_table": measured[args.batch].speedup(cfg),
            "pred_flops": flops.speedup(cfg), "measured_b1": r["speedup_b1"],
            "pred_table_b1": measured[1].speedup(cfg),
            "cpu_ms": 1e3 * r["cpu_s"], "cpu_iqr_ms": 1e3 * (r["cpu_q75_s"] - r["cpu_q25_s"]),
            "wall_ms": 1e3 * r["latency_s"], "speedup_wall": r["speedup_wall"],
        })
    df = pd.DataFrame(rows).iloc[1:].reset_index(drop=True)  # the exact row is 1 by definition
    df["err_table"] = _errors(df["pred_table"], df["measured"])
    df["err_flops"] = _errors(df["pred_flops"], df["measured"])
    df["err_table_b1"] = _errors(df["pred_table_b1"], df["measured_b1"])
    df["err_flops_b1"] = _errors(df["pred_flops"], df["measured_b1"])
    return df


def summarise(df: pd.DataFrame, batch: int) -> pd.DataFrame:
    out = []
    for task, g in df.groupby("task", sort=False):
        for col, label in (("err_table", f"measured table, batch {batch}"),
                           ("err_flops", f"FLOP model, batch {batch}"),
                           ("err_table_b1", "measured table, batch 1"),
                           ("err_flops_b1", "FLOP model, batch 1")):
            out.append({"task": task, "model": label, "n": len(g),
                        "median_err_%": 100 * g[col].median(), "max_err_%": 100 * g[col].max()})
    return pd.DataFrame(out)


def _show(df: pd.DataFrame, batch: int) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 20,
                           "display.max_colwidth", 40, "display.float_format", "{:.3f}".format):
        print(df.drop(columns=["config"]).to_string())
        print()
        print(summarise(df, batch).to_string(index=False), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["har", "kws"], choices=sorted(SHAPES))
    ap.add_argument("--configs", type=Path, help="JSON {task: [config, ...]}")
    ap.add_argument("--n-random", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5, help="profile rounds")
    ap.add_argument("--table-repeats", type=int, default=5, help="latency table rounds")
    ap.add_argument("--batch", type=int, default=profiler.PROFILE_BATCH_SIZE)
    ap.add_argument("--threads", type=int, help="kernel threads (default: Numba's)")
    ap.add_argument("--clock", default="cpu", choices=profiler.CLOCKS,
                    help="the clock of the table and of the measured speedups")
    ap.add_argument("--csv", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.threads:
        kernels.set_num_threads(args.threads)
    given = json.loads(args.configs.read_text()) if args.configs else {}
    profiler.kernel_paths()  # what every timing below puts in force first
    print(f"machine: {profiler.machine_key()}")
    frames = []
    for t in args.tasks:
        frames.append(bench_task(t, given.get(t), args))
        _show(frames[-1], args.batch)  # as soon as each task is done
    df = pd.concat(frames, ignore_index=True)
    if len(frames) > 1:
        _show(df, args.batch)
    print(f"\nquality bar (measured table, batch {args.batch}): median <= 10%, max <= 25%")
    print(AUTHORS_GAP)
    if args.csv:
        df.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
