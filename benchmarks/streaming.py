"""Non-temporal (streaming) stores of the register tiles' outputs, on and off, side by side.

    python benchmarks/streaming.py [--threads 2] [--repeats 15] [--batches 32 64]
        [--layer-width 1.0] [--thresholds-mib 2 8]

Part 1, per layer: every 1x1 layer of the HAR MobileNet with maps of >= 8x8 (width
``--layer-width``) at batch 64, exact and stride-2 row / column perforation and sampling,
each with every output streamed (``kernels.set_streaming_stores(0)``) and none (None), the
calls interleaved, each after untimed ones (``runtime.median_times``): median ms both ways
and the ratio streamed / cached (< 1: streaming is faster).

Part 2, whole model: the HAR model as the pipeline runs it (trained weights if cached, the
shipped width) at each batch size, exact and every regular conv at row s2 / col s2 / samp
s2, with streaming off and from each threshold: the next layer then reads a streamed
output from memory rather than the caches, which a layer's own time does not show.
Wall time, the runtime's thread count unless ``--threads``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from runtime import benchmark_model, configs, median_times  # noqa: E402

from mobiprox_lab import kernelbench, kernels, profiler  # noqa: E402
from mobiprox_lab.runtime import ApproxModel  # noqa: E402

KNOBS = {"exact": 11, "row s2": 123, "col s2": 121, "samp s2": 231}


def _interleaved(fns: dict, settings: dict, repeats: int) -> dict:
    """Median seconds of each (function, setting): ``runtime.median_times``, ``repeats``
    rounds of one call of each, every call with its streaming setting in force."""
    def with_setting(fn, value):
        def call():
            kernels.set_streaming_stores(value)
            return fn()
        return call

    calls = {(f, s): with_setting(fn, value) for f, fn in fns.items()
             for s, value in settings.items()}
    return median_times(calls, budget=0.0, min_rounds=repeats, max_rounds=repeats)


def per_layer(width: float, repeats: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for layer in kernelbench.layer_shapes(width):
        if layer.net != "har" or layer.kh != 1 or layer.h < 8:
            continue
        x = rng.standard_normal((64, layer.c, layer.h, layer.w), dtype=np.float32)
        w = rng.standard_normal((layer.k, layer.c, 1, 1), dtype=np.float32)
        w /= np.float32(np.sqrt(layer.c))
        w.flags.writeable = False  # as the runtime passes them
        b = rng.standard_normal(layer.k, dtype=np.float32)
        fns = {name: (lambda kid=kid, x=x, w=w, b=b: kernels.conv2d(x, w, b, knob=kid, relu=True))
               for name, kid in KNOBS.items()}
        med = _interleaved(fns, {"cached": None, "streamed": 0}, repeats)
        for name in KNOBS:
            rows.append({"layer": layer.name, "C->K": f"{layer.c}->{layer.k}",
                         "map": f"{layer.h}x{layer.w}",
                         "out_MiB": 64 * layer.k * layer.h * layer.w * 4 / 2**20,
                         "knob": name, "cached_ms": 1e3 * med[name, "cached"],
                         "streamed_ms": 1e3 * med[name, "streamed"],
                         "streamed/cached": med[name, "streamed"] / med[name, "cached"]})
    return pd.DataFrame(rows)


def whole_model(batches: list[int], thresholds_mib: list[float], repeats: int) -> pd.DataFrame:
    module, shape, source = benchmark_model("har")
    am = ApproxModel(module, shape)
    prepared = {name: am.prepare_config(c) for name, c in configs(am).items()
                if name != "mixed"}
    settings = {"off": None, **{f"from {t:g} MiB": int(t * 2**20) for t in thresholds_mib}}
    rows = []
    for n in batches:
        x = np.random.default_rng(n).standard_normal((n, *shape)).astype(np.float32)
        fns = {name: (lambda v=vec, x=x: am.run(x, v)) for name, vec in prepared.items()}
        med = _interleaved(fns, settings, repeats)
        for name in prepared:
            row = {"batch": n, "weights": source, "config": name}
            for s in settings:
                row[f"{s} ms"] = 1e3 * med[name, s]
            for s in list(settings)[1:]:
                row[f"{s} / off"] = med[name, s] / med[name, "off"]
            rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batches", nargs="+", type=int, default=[32, 64])
    ap.add_argument("--layer-width", type=float, default=1.0)
    ap.add_argument("--thresholds-mib", nargs="+", type=float, default=[2, 8])
    args = ap.parse_args()
    kernels.retain_freed_memory()
    profiler.kernel_paths()  # this machine's calibrated paths, as the runtime runs
    if args.threads:
        kernels.set_num_threads(args.threads)
    default = kernels.get_streaming_stores()
    print(f"{kernels.get_num_threads()} kernel thread(s); streaming from "
          f"{default} bytes by default; register tiles: {kernels.get_register_tiles()}")
    pd.set_option("display.width", 200)
    try:
        layers = per_layer(args.layer_width, args.repeats)
        print(f"\nPer layer, batch 64, HAR width {args.layer_width}, median of {args.repeats}:")
        print(layers.round(3).to_string(index=False))
        model = whole_model(args.batches, args.thresholds_mib, args.repeats)
        print(f"\nWhole HAR model, median of {args.repeats}:")
        print(model.round(3).to_string(index=False))
    finally:
        kernels.set_streaming_stores(default)


if __name__ == "__main__":
    main()
