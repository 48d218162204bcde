"""The kernels' machine-dependent path thresholds, calibrated once per machine and cached.

Which of two exact-equivalent kernel paths is faster depends on the machine (the BLAS's
small-GEMM kernels, memory bandwidth: see ``kernels.calibrate_path_thresholds``). Every
timing of the profiler first calls :func:`kernel_paths`, which puts this machine's
calibrated thresholds and per-shape choices in force (measuring them the first time, a few
seconds), so the latency tables and profiles time the paths the machine runs best, and the
same paths in every process. Both are part of :func:`~.fingerprint.machine_key`.
"""

from __future__ import annotations

import json

from .. import kernels
from ..cache import cache_dir, cache_key, save_json
from .fingerprint import machine_key

__all__ = ["kernel_paths"]

_VERSION = 4  # 2: the row GEMMs' channel threshold too; 3: per-shape choices, warmed calls;
# 4: stride-3 rows timed (stride 2 runs as register tiles)
#: machine_key fields the calibration is not keyed by: the thresholds and choices it sets,
#: and torch's threads (only our kernels are timed)
_NOT_KEYED = ("paths", "path_choices", "torch_threads")


def kernel_paths(*, cache: bool = True, progress: bool = False) -> dict:
    """Put this machine's calibrated kernel path thresholds and per-shape choices in force
    and return the calibration: {"thresholds": {name: value}, "choices": [...],
    "cases": [...], ..., "machine": {...}} (``kernels.calibrate_path_thresholds``).

    Cached as ``cache_dir("kernel_paths")/paths-<key>.json``, keyed by
    :func:`~.fingerprint.machine_key` without the thresholds and torch's threads (code
    fingerprint, CPU model and count, kernel threads, allocator policy);
    ``cache=False`` measures afresh (and stores nothing).
    """
    kernels.retain_freed_memory()  # as every timing does: no allocator page faults
    machine = {k: v for k, v in machine_key().items() if k not in _NOT_KEYED}
    path = cache_dir("kernel_paths") / f"paths-{cache_key(machine=machine, v=_VERSION)}.json"
    if cache and path.exists():
        result = json.loads(path.read_text())
    else:
        result = {**kernels.calibrate_path_thresholds(progress=progress), "machine": machine}
        if cache:
            save_json(path, result)
    kernels.set_path_thresholds(result["thresholds"])
    kernels.set_path_choices(result.get("choices", []))
    return result
