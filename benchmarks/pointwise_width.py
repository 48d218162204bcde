"""Stride-2 perforation on the HAR MobileNet's 1x1 layers: shipped width vs full width.

    .venv/bin/python benchmarks/pointwise_width.py [--widths 0.25 1.0] [--batch 64]
        [--rounds 5] [--threads 2]

The kernel benchmark (``benchmarks/kernels.py``) times the full-width (1.0) MobileNet's
layers; the shipped HAR network is width 0.25 (``models.DEFAULT_HAR_WIDTH``), whose 1x1
convolutions have a quarter of the channels and a sixteenth of the multiply-adds per
output value written. This script times every distinct 1x1 layer shape of each width
(exact, row / column perforation at stride 2, filter sampling at stride 2; ReLU fused as in
the runtime), alternating the variants over ``--rounds`` rounds, and prints the median
times and each approximation's speedup over exact side by side: how much of the nominal
2x a layer of that size can give on this machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from mobiprox_lab import kernels
from mobiprox_lab.models import build_model

VARIANTS = {"exact": 11, "perf row s2": 123, "perf col s2": 121, "samp s2": 231}


def pointwise_shapes(width: float) -> list[tuple[int, int, int]]:
    """Distinct (in channels, out channels, map side) of the 1x1 convs at ``width``."""
    from torch import nn

    net = build_model("har", 6, (3, 32, 32), width=width)
    side, shapes = 32, []
    for module in net.modules():
        if isinstance(module, nn.Conv2d) and module.groups > 1:
            side = (side + 2 - 3) // module.stride[0] + 1  # depthwise 3x3, padding 1
        elif isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1):
            shape = (module.in_channels, module.out_channels, side)
            if shape not in shapes:
                shapes.append(shape)
    return shapes


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=float, nargs="+", default=[0.25, 1.0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20, help="timed calls per variant and round")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    kernels.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for width in args.widths:
        for c, k, side in pointwise_shapes(width):
            x = rng.standard_normal((args.batch, c, side, side)).astype(np.float32)
            w = rng.standard_normal((k, c, 1, 1)).astype(np.float32)
            b = rng.standard_normal(k).astype(np.float32)
            times: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for _ in range(args.rounds):
                for name, knob in VARIANTS.items():
                    def call(knob=knob, x=x, w=w, b=b):
                        return kernels.conv2d(x, w, b, knob=knob, relu=True)
                    call()  # warm: this variant's weights and buffers in cache
                    times[name].append(median_ms(call, args.repeats))
            ms = {v: float(np.median(t)) for v, t in times.items()}
            rows.append({"width": width, "layer": f"{c}->{k} @ {side}x{side}",
                         **{f"{v} ms": round(t, 3) for v, t in ms.items()},
                         **{f"{v} speedup": round(ms["exact"] / ms[v], 2)
                            for v in VARIANTS if v != "exact"}})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"batch {args.batch}, {args.threads} kernel threads, median of {args.rounds} "
              f"rounds x {args.repeats} calls, ReLU fused")
        print(table.to_string(index=False))
        speed = [c for c in table.columns if c.endswith("speedup")]
        print("geo mean speedup by width:")
        print(table.groupby("width")[speed].agg(lambda s: float(np.exp(np.log(s).mean())))
              .round(2).to_string())


if __name__ == "__main__":
    main()
