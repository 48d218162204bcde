"""Register tiles against the GEMM paths they replace, side by side in one run.

    python benchmarks/tiles.py [--threads 1] [--batch 64] [--har-width 1.0] [--repeats 9]

For every 1x1 layer of the HAR MobileNet (``kernelbench.layer_shapes``): the median time
of exact and of stride-2 row perforation (123), column perforation (121) and filter
sampling (231), each with the register tiles on and off (``kernels.set_register_tiles``),
the calls interleaved and each after ``kernelbench.warm_up``. It prints each knob's speedup
over exact with the tiles on (``tiles_x``) and off (``gemm_x``), and how much faster the
tiles make exact itself (``exact_tiles_x``, GEMM time / tile time). Layers the tiles do
not cover (2x2 maps) run the same path both ways: those columns measure the noise.

Then the larger kernels of stride 1 with 32- or 33-wide outputs (the HAR and KWS first
layers), against the im2col + GEMM paths the tiles replace there: on 32-wide maps exact,
row perforation and sampling by tap tiles (``_tap_tiles``), and column perforation under
both offsets by phase tiles (``_phase_tiles``); on 33-wide maps column perforation alone
(exact and the others take the same path either way; KWS's first layer at offset 1 keeps
17 a row, which the phase tiles do not cover: noise again).

"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mobiprox_lab import kernelbench, kernels  # noqa: E402

KNOBS = {"row s2": 123, "col s2": 121, "samp s2": 231}
PHASE_KNOBS = {"col s2": 121, "col s2 off 1": 122}  # larger kernels: column perforation


def _knobs(layer) -> dict[str, int]:
    """The knobs timed on ``layer``: the 1x1 tiles', or the tap and phase tiles' on 32-wide
    maps, the phase tiles' on 33-wide ones (empty: none of them)."""
    if layer.net == "har" and layer.kh == 1:
        return KNOBS
    if layer.kind != "conv" or layer.kh * layer.kw == 1 or layer.stride != 1:
        return {}
    width = layer.out_hw[1]
    return {**KNOBS, **PHASE_KNOBS} if width == 32 else PHASE_KNOBS if width == 33 else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--har-width", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    kernels.retain_freed_memory()
    kernels.set_num_threads(args.threads)
    tiles_default = kernels.get_register_tiles()
    print(f"{args.threads} thread(s), batch {args.batch}, HAR width {args.har_width}; "
          f"register tiles by default on this CPU: {tiles_default}")
    rows = []
    rng = np.random.default_rng(0)
    try:
        for layer in kernelbench.layer_shapes(args.har_width):
            knobs = _knobs(layer)
            if not knobs:
                continue
            x = rng.standard_normal((args.batch, layer.c, layer.h, layer.w), dtype=np.float32)
            w = rng.standard_normal((layer.k, layer.c, layer.kh, layer.kw), dtype=np.float32)
            w /= np.float32(np.sqrt(layer.c * layer.kh * layer.kw))
            w.flags.writeable = False  # as the runtime passes them: packed once, not per call
            b = rng.standard_normal(layer.k, dtype=np.float32)
            variants = {(tiles, kid): None for kid in (11, *knobs.values())
                        for tiles in (True, False)}
            times = {v: [] for v in variants}
            for _ in range(args.repeats):
                for tiles, knob in variants:
                    kernels.set_register_tiles(tiles)

                    def call(knob=knob, x=x, w=w, b=b, pad=layer.padding):
                        kernels.conv2d(x, w, b, padding=pad, knob=knob, relu=True)

                    kernelbench.warm_up(call)
                    t0 = time.perf_counter()
                    call()
                    times[tiles, knob].append(time.perf_counter() - t0)
            med = {v: statistics.median(t) for v, t in times.items()}
            for name, kid in knobs.items():
                rows.append({"layer": layer.name, "C->K": f"{layer.c}->{layer.k}",
                             "map": f"{layer.h}x{layer.w}", "knob": name,
                             "tiles_x": med[True, 11] / med[True, kid],
                             "gemm_x": med[False, 11] / med[False, kid],
                             "exact_ms": med[False, 11] * 1e3,
                             "exact_tiles_x": med[False, 11] / med[True, 11]})
    finally:
        kernels.set_register_tiles(tiles_default)
    table = pd.DataFrame(rows)
    print("\nSpeedup over our exact conv (exact / approximate), tiles on and off, and exact's"
          f" own gain from the tiles; median of {args.repeats} interleaved calls:")
    print(table.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
