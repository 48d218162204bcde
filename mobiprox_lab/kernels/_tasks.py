"""Task plumbing of the convolution paths: how a call is cut into tasks (blocks of samples,
channels), running them on the worker threads with per-phase CPU timings, and a ReLU pass
after a task for the paths that cannot fuse it."""

from __future__ import annotations

from math import ceil
from time import thread_time  # per-thread CPU seconds: see conv2d(timings=...)

import numpy as np

from . import _threads
from ._scatter import relu_block
from ._validate import ConvSpec

PHASES = ("prep", "im2col", "gemm", "interp", "direct")
TASKS_PER_WORKER = 4  # chunks per thread at least, for balance when a core is busy


def block_region(s: ConvSpec, nb: int, kb: int, kblocks: int):
    """Task index -> the (n0, n1, k0, k1, j0, j1) output block of a samples x channels task."""
    def region(i: int) -> tuple:
        b, j = divmod(i, kblocks)
        return b * nb, min(s.n, (b + 1) * nb), j * kb, min(s.k, (j + 1) * kb), 0, s.ho * s.wo
    return region


def relu_after(task, relu: bool, out: np.ndarray, region, timing: bool = True):
    """``task``, followed by ReLU on its output block ``region(i)`` when ``relu``; its time
    added to the "interp" phase when ``timing``."""
    if not relu:
        return task

    def with_relu(i: int, scratch: dict) -> None:
        task(i, scratch)
        if not timing:
            relu_block(out, *region(i))
            return
        t0 = thread_time()
        relu_block(out, *region(i))
        add_time(scratch, "interp", thread_time() - t0)
    return with_relu


def blocks(n: int, k: int, workers: int, small: bool) -> tuple[int, int, int, int]:
    """``(samples per task, sample blocks, channels per task, channel blocks)``: whole
    samples when there are enough for the threads, else the channels split too."""
    nb = batch_chunk(n, n, workers)
    n_blocks = ceil(n / nb)
    kblocks = 1 if small or workers == 1 else max(1, min(k // 16, ceil(
        TASKS_PER_WORKER * workers / n_blocks)))
    kb = ceil(k / kblocks)
    return nb, n_blocks, kb, ceil(k / kb)


def batch_chunk(n: int, cache_fit: int, workers: int) -> int:
    """Samples per chunk: at most ``cache_fit``, and enough chunks for every worker."""
    if workers > 1:
        cache_fit = min(cache_fit, ceil(n / (TASKS_PER_WORKER * workers)))
    return max(1, min(n, cache_fit))


def add_time(scratch: dict, phase: str, seconds: float) -> None:
    """Add ``seconds`` to a worker's time for ``phase`` (one of ``PHASES``)."""
    scratch[phase] = scratch.get(phase, 0.0) + seconds


def run_tasks(task, n_tasks: int, workers: int, timings: dict | None, t_start: float,
              small: bool) -> None:
    """Run ``task(i, scratch)`` for every ``i < n_tasks`` on ``workers`` threads; with
    ``timings``, add the prep time since ``t_start`` and each worker's phase times."""
    if timings is None:
        _threads.run(task, n_tasks, workers, limit_blas=not small)
        return
    timings["prep"] = timings.get("prep", 0.0) + thread_time() - t_start
    for scratch in _threads.run(task, n_tasks, workers, limit_blas=not small):
        for phase in PHASES:
            if phase in scratch:
                timings[phase] = timings.get(phase, 0.0) + scratch[phase]
