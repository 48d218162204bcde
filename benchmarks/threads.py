"""How our kernels share a call between threads: idle workers that spin for the next call
against workers that sleep at once, and task loops in Numba against task loops in Python.

    python benchmarks/threads.py [--threads 2] [--rounds 9] [--spin 2e-4]

Side by side in one process, on the HAR MobileNet's layers of ``kernelbench.layer_shapes``
at batch 64 (the KWS layers are left out: they take ~30-60 ms, where a wake-up is noise) and
on both whole models (exact, batch 1 and 64): torch, our kernels with the workers spinning
``--spin`` seconds between calls (``kernels.set_spin_seconds``) ("spin", the default
runtime), with them sleeping at once ("sleep", spin 0), and spinning but with each call's
task loop in Python ("python", ``kernels.set_numba_task_loops(False)``: every task a
Python call, so a helper takes the GIL for each). The four run in turn, the order
rotating each round, each timed call after one untimed call of its own; the median of
``--rounds`` rounds of 7 calls each is printed with the ratios, and the depthwise layers'
geomean against torch (the issue's target).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mobiprox_lab import kernelbench, kernels, profiler  # noqa: E402
from mobiprox_lab.models import build_model, cached_model  # noqa: E402
from mobiprox_lab.runtime import ApproxModel  # noqa: E402

SHAPES = {"har": ((3, 32, 32), 7), "kws": ((1, 101, 40), 12)}
VARIANTS = ("torch", "spin", "sleep", "python")


def _median_ms(fn, calls: int = 7) -> float:
    kernelbench.warm_up(fn)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def compare(torch_fn, ours_fn, rounds: int, spin: float) -> dict[str, float]:
    """Median ms of each of ``VARIANTS``, the order rotated round by round."""
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    n = len(VARIANTS)
    for r in range(rounds):
        for v in VARIANTS[r % n:] + VARIANTS[:r % n]:
            if v == "torch":
                samples[v].append(_median_ms(torch_fn))
                kernelbench.settle()  # torch's OpenMP threads stop spinning first
                continue
            kernels.set_spin_seconds(0.0 if v == "sleep" else spin)
            kernels.set_numba_task_loops(v != "python")
            samples[v].append(_median_ms(ours_fn))
    kernels.set_spin_seconds(spin)
    kernels.set_numba_task_loops(True)
    return {v: float(np.median(s)) for v, s in samples.items()}


def _row(name: str, t: dict[str, float]) -> str:
    return (f"{name:<12} torch {t['torch']:7.3f}  spin {t['spin']:7.3f}  sleep {t['sleep']:7.3f}"
            f"  python {t['python']:7.3f}  | spin/torch {t['spin'] / t['torch']:5.2f}  "
            f"python/torch {t['python'] / t['torch']:5.2f}  spin/sleep "
            f"{t['spin'] / t['sleep']:5.2f}  spin/python {t['spin'] / t['python']:5.2f}")


def bench_layers(rounds: int, spin: float) -> None:
    rng = np.random.default_rng(0)
    ratios: dict[str, list[float]] = {"spin": [], "sleep": [], "python": []}
    print("\nLayers at batch 64, exact, median ms per call:")
    for layer in kernelbench.layer_shapes():
        if layer.net != "har":
            continue
        x = rng.standard_normal((kernelbench.BATCH, layer.c, layer.h, layer.w), np.float32)
        w = rng.standard_normal((layer.k, layer.c // layer.groups, layer.kh, layer.kw),
                                np.float32)
        geometry = {"stride": layer.stride, "padding": layer.padding, "groups": layer.groups}
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        t = compare(partial(torch.nn.functional.conv2d, xt, wt, None, **geometry),
                    partial(kernels.conv2d, x, w, None, **geometry), rounds, spin)
        print(_row(layer.name, t), flush=True)
        if layer.kind == "depthwise":
            for v in ratios:
                ratios[v].append(t[v] / t["torch"])
    for v, r in ratios.items():
        print(f"depthwise exact / torch, geomean, {v}: {np.exp(np.mean(np.log(r))):.3f}")


def bench_models(rounds: int, spin: float) -> None:
    print("\nWhole models, exact, median ms per inference:")
    for task, (shape, n_classes) in SHAPES.items():
        trained = cached_model(task)
        module = trained.module if trained is not None else build_model(
            task, n_classes, shape).eval()
        am = ApproxModel(module, shape)
        exact = am.prepare_config({})
        for batch in (1, 64):
            x = np.random.default_rng(batch).standard_normal((batch, *shape), np.float32)
            t = compare(partial(module, torch.from_numpy(x)), partial(am.run, x, exact), rounds,
                        spin)
            print(_row(f"{task} b{batch}", t), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--spin", type=float, default=kernels.get_spin_seconds())
    args = ap.parse_args()
    print(f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs; torch and our "
          f"kernels on {args.threads} threads; spin {args.spin * 1e3:.2f} ms")
    kernels.retain_freed_memory()
    torch.set_num_threads(args.threads)
    kernels.set_num_threads(args.threads)
    profiler.kernel_paths(progress=False)  # this machine's calibrated paths, as timed
    torch.set_grad_enabled(False)
    bench_layers(args.rounds, args.spin)
    bench_models(args.rounds, args.spin)


if __name__ == "__main__":
    main()
