"""Keep freed memory in the process while timing, as a runtime with a memory plan would.

glibc's ``malloc`` hands large freed blocks back to the kernel: blocks above
``M_MMAP_THRESHOLD`` are unmapped on ``free``, and the top of the heap is trimmed once more
than ``M_TRIM_THRESHOLD`` of it is free. Every inference then page-faults its buffers back
in. Measured on this 2-core VM (HAR MobileNet, batch 32, process CPU time, median of 20
runs): 1,510 minor page faults per run with glibc's defaults, adding the same ~6 ms to every
configuration (exact 25.9 ms, samp s2 21.3 ms: 1.22x) against none with the setting below
(exact 22.1 ms, samp s2 16.4 ms: 1.35x). The faults are the host allocator's, not the
network's: an on-device runtime allocates its buffers once. The step timings suffered most:
``time_steps`` put 16.6 ms on HAR's first pointwise layer (1.1 ms with the setting), which
inflated its share of the run.

:func:`retain_freed_memory` raises both thresholds (``mallopt``) for the rest of the process;
the profiler, the latency table and the benchmarks call it before they time, and
:func:`allocator_policy` names the policy in their cache keys. Buffers larger than
:data:`MMAP_THRESHOLD_BYTES` (glibc's maximum) are still unmapped on free. Elsewhere than
glibc it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import math
import threading

import numpy as np
from numba import njit

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "aligned_buffer", "aligned_empty",
           "allocator_policy", "retain_freed_memory"]

MMAP_THRESHOLD_BYTES = 32 << 20
"""Blocks up to this size come from the heap, not from ``mmap`` (glibc's largest value on
64-bit systems: ``mallopt`` refuses more)."""
TRIM_THRESHOLD_BYTES = 1 << 30
"""Free memory at the top of the heap kept before glibc gives it back to the kernel."""

_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
_M_MMAP_THRESHOLD = -3
_lock = threading.Lock()
_policy: str | None = None


def retain_freed_memory() -> str:
    """Make glibc keep freed memory for reuse (see the module doc); idempotent. Returns the
    policy now in force (:func:`allocator_policy`)."""
    global _policy
    with _lock:
        if _policy is None:
            _policy = _apply()
        return _policy


def allocator_policy() -> str:
    """``"glibc-retain"`` once :func:`retain_freed_memory` has set the thresholds, else
    ``"default"`` (glibc's own, or another allocator's, behaviour)."""
    return _policy if _policy is not None else "default"


def _apply() -> str:
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it; musl's mallopt is a stub
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "default"
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1
            or mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) != 1):
        raise RuntimeError("mallopt refused the allocator thresholds "
                           f"(mmap {MMAP_THRESHOLD_BYTES}, trim {TRIM_THRESHOLD_BYTES} bytes)")
    return "glibc-retain"


def aligned_empty(shape: tuple[int, ...], align: int = 64) -> np.ndarray:
    """An uninitialised C-contiguous float32 array of ``shape`` whose data starts on an
    ``align``-byte boundary (a power of two >= 4): non-temporal vector stores need it. A view
    into a buffer ``align`` bytes longer."""
    if align < 4 or align & (align - 1):
        raise ValueError(f"align: expected a power of two >= 4, got {align!r}")
    # every conv2d call allocates its output so: math.prod and the jitted allocation, where
    # np.prod and ``.ctypes.data`` took 2.1 us of a batch-1 1x1 layer's ~24
    return aligned_buffer(math.prod(shape), align).reshape(shape)


@njit(cache=True, nogil=True)
def aligned_buffer(n, align=64):
    """:func:`aligned_empty` of ``(n,)``, callable from Numba code too, whose own ``np.empty``
    is only 32-byte aligned (a 64-byte vector load from it spans two cache lines)."""
    buffer = np.empty(n + align // 4, np.float32)
    skip = (align - buffer.ctypes.data % align) % align // 4
    return buffer[skip:skip + n]
