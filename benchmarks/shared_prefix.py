"""Validation pass: every candidate run separately vs with shared prefixes, side by side.

    .venv/bin/python benchmarks/shared_prefix.py [--task kws] [--configs 40] [--rounds 2]

The tuner validates each candidate configuration on the whole tune and test sets
(``tuner.empirical_qos`` -> ``profiler.map_logits``); serially, ``map_logits`` walks the
prefix tree of the candidates (``profiler.shared_prefix_logits``) so that execution steps
run under the same knobs by several candidates are computed once. This script takes the
first ``--configs`` candidates of the task's tuned setup (trained, tuned and cached by
``make figures``) and times, on the tune set and the reference backend, (a) one
``batched_logits`` per candidate and (b) the shared walk, alternating the two over
``--rounds``; it checks the logits are identical and prints the ratio of the median
times next to the ratio of FLOPs the walk should save (distinct prefixes x step FLOPs).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mobiprox_lab.orchestration import tasks
from mobiprox_lab.profiler import batched_logits, shared_prefix_logits


def flop_ratio(model, configs) -> float:
    """FLOPs of the shared walk / FLOPs of separate runs (distinct prefixes per step)."""
    flops = model.ops.set_index("name")["flops"]
    steps = model.step_ops()
    per_step = np.array([sum(int(flops[op]) for op in ops) for ops in steps], float)
    full = [model.validate_config(c) for c in configs]
    paths = [tuple(tuple(f[op] for op in ops) for ops in steps) for f in full]
    distinct = [len({p[:k + 1] for p in paths}) for k in range(len(steps))]
    return float(per_step @ distinct / (per_step.sum() * len(configs)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=("har", "kws"), default="kws")
    ap.add_argument("--configs", type=int, default=40, help="first N tuner candidates")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)

    setup = tasks.task_setup(args.task, progress=False)
    model, x = setup.model, setup.splits.tune.x
    configs = [dict(c) for c in setup.tuned.candidates["config"]][:args.configs]
    batched_logits(model, x[:8], configs[0])  # warm-up
    times: dict[str, list[float]] = {"separate": [], "shared": []}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        separate = [batched_logits(model, x, c) for c in configs]
        times["separate"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        shared = dict(shared_prefix_logits(model, configs, x))
        times["shared"].append(time.perf_counter() - t0)
        same = all(np.array_equal(separate[i], shared[i]) for i in range(len(configs)))
        if not same:
            raise SystemExit("shared-prefix logits differ from separate runs")
    sep, sha = (float(np.median(times[k])) for k in ("separate", "shared"))
    print(f"{args.task}: {len(configs)} candidates x {len(x)} tune inputs, "
          f"{args.rounds} rounds, logits identical")
    print(f"  separate runs  {sep:8.2f} s   ({sep / len(configs):.3f} s per candidate)")
    print(f"  shared prefix  {sha:8.2f} s   ({sha / len(configs):.3f} s per candidate)")
    ratio = flop_ratio(model, configs)
    print(f"  speedup {sep / sha:.2f}x; FLOPs shared / separate {ratio:.3f} "
          f"(a FLOP count predicts {1 / ratio:.2f}x)")


if __name__ == "__main__":
    main()
