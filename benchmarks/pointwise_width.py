"""Stride-2 perforation on the HAR MobileNet's 1x1 layers: shipped width vs full width.

    .venv/bin/python benchmarks/pointwise_width.py [--widths 0.5 1.0] [--threads 2]
        [--quick] [--refresh]

The kernel benchmark (``benchmarks/kernels.py``) times the full-width (1.0) MobileNet's
layers; the shipped HAR network is narrower (``models.DEFAULT_HAR_WIDTH``, the default
first width here), and its 1x1 convolutions do fewer multiply-adds per output value
written (width squared). This script runs ``kernelbench.bench_layers`` (batch 64, variants
interleaved, cached) on the 1x1 layers of each width and prints each stride-2
approximation's speedup over our exact conv side by side, with the geometric mean per
width: how much of the nominal 2x a layer of that size can give on this machine.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from mobiprox_lab import kernelbench
from mobiprox_lab.models import DEFAULT_HAR_WIDTH

STRIDE2 = ["perf row s2", "perf col s2", "samp s2"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=float, nargs="+", default=[DEFAULT_HAR_WIDTH, 1.0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--refresh", action="store_true", help="ignore cached results")
    args = ap.parse_args(argv)
    tables = []
    for width in args.widths:
        pointwise = [lay for lay in kernelbench.layer_shapes(width) if lay.kh == 1 == lay.kw]
        df = kernelbench.bench_layers(quick=args.quick, threads=args.threads,
                                      layers=[lay.name for lay in pointwise], har_width=width,
                                      refresh=args.refresh)
        sp = kernelbench.speedups(df)
        sp = sp[sp["variant"].isin(STRIDE2)]
        table = sp.pivot_table(index="layer", columns="variant", values="speedup", sort=False)
        shape = {lay.name: f"{lay.c}->{lay.k} @ {lay.h}x{lay.w}" for lay in pointwise}
        table.insert(0, "shape", table.index.map(shape))
        table.insert(0, "width", width)
        table["exact ms"] = sp.groupby("layer", sort=False)["exact_s"].first() * 1e3
        tables.append(table[["width", "shape", "exact ms", *STRIDE2]])
    table = pd.concat(tables)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"batch {kernelbench.BATCH}, {args.threads} threads; speedup over our exact "
              f"conv (median wall time)")
        print(table.round(3).to_string())
        print("geo mean speedup by width:")
        print(table.groupby("width")[STRIDE2]
              .agg(lambda s: float(np.exp(np.log(s).mean()))).round(2).to_string())


if __name__ == "__main__":
    main()
