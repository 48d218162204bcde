"""Which BLAS the kernels' GEMMs should call: NumPy's bundled OpenBLAS against SciPy's.

Usage: ``.venv/bin/python benchmarks/blas.py [--repeats 41] [--har-width 1.0]``

``kernels._blas.sgemm`` calls NumPy's OpenBLAS (``kernels.blas_library()``) where NumPy's
wheel bundles one, else SciPy's through Numba's ``np.dot`` helper (``sgemm_numba``). Here
both bindings multiply the same operands, one BLAS thread, interleaved call by call
(median of ``--repeats``), on the GEMM of one sample of every regular convolution of the
kernel benchmark's layer set (``kernelbench.layer_shapes``): ``(K, C*KH*KW) @ (C*KH*KW,
Ho*Wo)``, as the exact path computes it (the paths split it into row blocks; the shapes
show the library, not a path). Prints GFLOP/s of each and the ratio SciPy / NumPy time
(> 1: NumPy's faster), with the geometric mean, so the choice rests on a measurement.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mobiprox_lab import kernelbench, kernels  # noqa: E402
from mobiprox_lab.kernels import _blas  # noqa: E402


def _median_interleaved(calls: dict, repeats: int) -> dict[str, float]:
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            call()  # each timed call follows one of its own: its operands in cache
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=41)
    ap.add_argument("--har-width", type=float, default=1.0)
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats: expected a positive int, got {args.repeats}")
    if _blas.numpy_openblas_path() is None:
        print("NumPy bundles no OpenBLAS here: the kernels use SciPy's; nothing to compare.")
        return
    print(f"kernels' BLAS: {kernels.blas_library()}; against Numba's np.dot BLAS (SciPy's)")
    rng = np.random.default_rng(0)
    rows = []
    with kernels.single_threaded_blas():
        for layer in kernelbench.layer_shapes(args.har_width):
            if layer.kind != "conv":
                continue
            m, k = layer.k, layer.c * layer.kh * layer.kw
            n = layer.out_hw[0] * layer.out_hw[1]
            a = rng.standard_normal(m * k, dtype=np.float32)
            b = rng.standard_normal(k * n, dtype=np.float32)
            c = np.empty(m * n, np.float32)
            operands = (a, k, b, n, c, n, m, n, k, np.float32(0.0))
            t = _median_interleaved({"numpy": partial(_blas.sgemm, *operands),
                                     "scipy": partial(_blas.sgemm_numba, *operands)},
                                    args.repeats)
            flops = 2.0 * m * k * n
            rows.append((layer.name, f"{m}x{k}x{n}", flops / t["numpy"] / 1e9,
                         flops / t["scipy"] / 1e9, t["scipy"] / t["numpy"]))
    print(f"\n{'layer':10} {'M x K x N':>14} {'numpy GF/s':>11} {'scipy GF/s':>11} "
          f"{'scipy/numpy time':>17}")
    for name, shape, gn, gs, ratio in rows:
        print(f"{name:10} {shape:>14} {gn:11.1f} {gs:11.1f} {ratio:17.2f}")
    geo = float(np.exp(np.mean(np.log([r[-1] for r in rows]))))
    print(f"geo mean scipy / numpy time: {geo:.3f} (> 1: NumPy's OpenBLAS is faster)")


if __name__ == "__main__":
    main()
