"""Batch parallelism: worker threads that each run whole chunks (im2col -> GEMM -> scatter).

Why not ``prange`` + multi-threaded BLAS: on a shared 2-core machine, alternating
Numba's OpenMP regions with OpenBLAS's own thread pool measured 10-40x slower than
one thread (each region waits for a descheduled partner thread). Here every
worker runs serial ``nogil`` Numba kernels and a single-threaded GEMM on its own
chunks, taken from a shared counter, and the threads meet once per call.

The number of threads defaults to Numba's (``NUMBA_NUM_THREADS``, else the CPU
count) and can be changed with :func:`set_num_threads` (or for a block, :func:`using_threads`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import numba

from . import _pool

_blas = None  # threadpoolctl controllers of the BLAS libraries, once looked up
_n_threads = max(1, int(numba.config.NUMBA_NUM_THREADS))


def get_num_threads() -> int:
    """How many threads a kernel call uses."""
    return _n_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads per kernel call (1 = the calling thread only)."""
    global _n_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    _n_threads = n


@contextlib.contextmanager
def using_threads(n: int | None) -> Iterator[int]:
    """Use ``n`` threads per kernel call inside the block (None: keep the current count),
    restoring the previous count after it; yields the count in force."""
    before = _n_threads
    if n is not None:
        set_num_threads(n)
    try:
        yield _n_threads
    finally:
        set_num_threads(before)


def _blas_libraries() -> list:
    """threadpoolctl controllers of NumPy's and SciPy's BLAS ([] without threadpoolctl)."""
    global _blas
    if _blas is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (Numba's np.dot: load it first)
            from threadpoolctl import ThreadpoolController

            _blas = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:  # threadpoolctl missing or unable to find the libraries
            _blas = []
    return _blas


_blas_depth = threading.local()  # how many single_threaded_blas blocks this thread is in


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit the BLAS libraries (NumPy's, and SciPy's, which Numba's ``np.dot`` uses) to one
    thread inside the block, restoring their thread counts after it.

    Re-entrant: a nested block (a kernel call inside ``ApproxModel.run``, which holds one
    for the whole inference) costs nothing. Small products need it too: a multi-threaded
    BLAS wakes its threads for a 512x512x4 GEMM, and when the other core is busy the wake-up
    took ~10 ms (against ~0.1 ms for the product on one thread).
    """
    depth = getattr(_blas_depth, "n", 0)
    if depth:
        _blas_depth.n = depth + 1
        try:
            yield
        finally:
            _blas_depth.n = depth
        return
    libs = _blas_libraries()
    before = [lib.get_num_threads() for lib in libs]
    for lib in libs:
        lib.set_num_threads(1)
    _blas_depth.n = 1
    try:
        yield
    finally:
        _blas_depth.n = 0
        for lib, n in zip(libs, before, strict=True):
            lib.set_num_threads(n)


def run(task: Callable[[int, dict], None], n_tasks: int, workers: int,
        limit_blas: bool = True) -> list[dict]:
    """Call ``task(i, scratch)`` for every ``i < n_tasks`` on up to ``workers`` threads.

    Tasks are handed out dynamically. ``scratch`` is a dict private to the
    calling thread for this ``run`` (work buffers, phase timings); all of them
    are returned. The caller's thread works too, with the process's kernel workers
    (:mod:`._pool`). ``limit_blas``: run BLAS on one thread per worker (a small
    single-threaded call can skip it: BLAS does not thread tiny products).
    """
    workers = max(1, min(workers, n_tasks))
    if workers == 1 and (not limit_blas or getattr(_blas_depth, "n", 0)):
        return _pool.Pool.alone(task, n_tasks)  # no BLAS limit to set, or already set
    with single_threaded_blas():
        if workers == 1:
            return _pool.Pool.alone(task, n_tasks)
        return _pool.shared_pool().run(task, n_tasks, workers)
