"""Time every built-in controller (x factor) on a synthetic 24-hour HAR trace.

    .venv/bin/python benchmarks/control.py [--steps 67500] [--configs 10] [--classes 7]

Prints, per controller, warm timings (after JIT): ms per ``simulate`` on a
:class:`~mobiprox_lab.control.PreparedProbs` (the re-simulation case), ms on the
raw array (validation + argmax included) and steps per second; then the generic
Python ``update`` loop for comparison.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mobiprox_lab import control


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=67_500, help="24 h at one inference per 1.28 s")
    ap.add_argument("--configs", type=int, default=10)
    ap.add_argument("--classes", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--python-loop", action="store_true",
                    help="also time the generic Python loop (slow)")
    args = ap.parse_args(argv)

    probs, labels = control.make_synthetic_probs(args.steps, args.configs, args.classes, seed=0)
    n = args.configs
    energy = np.linspace(1.0, 0.78, n)
    prep = control.prepare_probs(probs)
    cc, cw = control.confidence_tables(prep, labels)
    ctrls: list[control.Controller] = [control.NoController(n), control.StaticController(n, n // 2)]
    for f in (1, 2):
        ctrls += [control.NaiveController(n, f), control.StateController(n, f),
                  control.KalmanController(n, f), control.ConfidenceController(n, cc, cw, f)]
    ctrls += [control.OracleController(n, energy),
              control.BudgetController(control.KalmanController(n), energy, 0.85)]

    print(f"trace: {args.steps} steps x {n} configs x {args.classes} classes "
          f"({probs.nbytes / 1e6:.1f} MB {probs.dtype}); best of {args.repeats}, warm")
    head = f"{'controller':28s} {'prepared ms':>11s} {'raw ms':>8s} {'steps/s':>12s}"
    if args.python_loop:
        head += f" {'python ms':>10s}"
    print(head)
    for c in ctrls:
        control.simulate(prep, c, energy, labels)  # JIT / warm-up
        t_prep = best_of(lambda c=c: control.simulate(prep, c, energy, labels), args.repeats)
        t_raw = best_of(lambda c=c: control.simulate(probs, c, energy, labels), args.repeats)
        line = (f"{c.name:28s} {t_prep * 1e3:11.2f} {t_raw * 1e3:8.1f} "
                f"{args.steps / t_prep:12,.0f}")
        if args.python_loop:
            t_py = best_of(lambda c=c: control.simulate(prep, c, energy, labels, fast=False), 1)
            line += f" {t_py * 1e3:10.0f}"
        print(line)


if __name__ == "__main__":
    main()
