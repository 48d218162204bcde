"""Constants and argument checks shared by the profiler's modules."""

from __future__ import annotations

import numpy as np

from .. import checks, knobs

__all__ = ["CLOCKS", "EXACT", "MAX_KNOB", "PROFILE_BATCH_SIZE", "SMALL_BATCH_REPEATS",
           "TIMING_THREADS", "check_batch_sizes", "check_clock", "check_threads", "data_arrays",
           "timing_rounds"]

EXACT = knobs.EXACT
MAX_KNOB = max(knobs.KNOBS) + 1
"""One more than the largest knob id: the width of per-knob lookup tables."""
PROFILE_BATCH_SIZE = 32
"""Inputs per timed batch of the profile and of the latency table's first batch size."""
SMALL_BATCH_REPEATS = 3
"""Batch sizes below the largest timed one get this many times the rounds (they are cheap,
and short runs are noisier)."""
CLOCKS = ("cpu", "wall")
"""``"cpu"``: the process's CPU seconds (``time.process_time``: all its threads), immune to
other processes' load; on an idle machine with one kernel thread it equals the latency.
``"wall"``: elapsed seconds (``time.perf_counter``), the latency as a user sees it, which on
a shared machine also measures everyone else's work."""


TIMING_THREADS = 1
"""Kernel threads of every timing (profiles and latency tables), unless a call says
otherwise. One thread times a configuration's work: its CPU time equals its wall time, and
the speedup is the ratio of work that the energy law takes. With two threads on the 2-vCPU
VM this was built on, the CPU clock also counted the threads' hand-offs, and a session's
spread was far wider (HAR, batch 32: exact's interquartile range 8-27 % of its median
against 0.6-4 %; one configuration timed 0.99x, 1.10x and 1.22x in three sessions)."""


def check_batch_sizes(name: str, sizes) -> list[int]:
    """``sizes`` as a list of distinct ints >= 1 (at least one), else a ValueError naming
    ``name``."""
    out = [checks.integer(f"{name}[]", b, 1) for b in sizes]
    if not out or len(set(out)) != len(out):
        raise ValueError(f"{name}: expected distinct ints >= 1, got {sizes!r}")
    return out


def timing_rounds(sizes: list[int], warmup: int, repeats: int) -> list[tuple[int, int]]:
    """The rounds of a timing session, in order: ``(batch size, round)`` pairs, round
    ``< warmup`` untimed. Each batch size of ``sizes`` is a phase of its own: ``warmup``
    rounds, then ``repeats`` rounds (x :data:`SMALL_BATCH_REPEATS` below the largest size).

    Phases, not interleaved sizes: a batch-1 run that follows a batch-32 run starts from
    the caches that the larger batch swept. Measured on HAR (exact, one thread, CPU time):
    0.94 ms a run right after a batch-32 run against 0.52 ms after another batch-1 run, and
    rounds interleaved with batch 32 had a median of 0.71 ms against 0.47 ms; that mix,
    different for every configuration, was the profiles' batch-1 noise.
    """
    sizes = check_batch_sizes("sizes", sizes)
    warmup = checks.integer("warmup", warmup, 0)
    repeats = checks.integer("repeats", repeats, 1)
    top = max(sizes)
    return [(b, r) for b in sizes
            for r in range(warmup + repeats * (SMALL_BATCH_REPEATS if b < top else 1))]


def check_threads(threads) -> int | None:
    """``threads`` as an int >= 1, or None (the kernels' current count); else a ValueError
    naming it (``checks.integer``)."""
    return None if threads is None else checks.integer("threads", threads, 1)


def check_clock(clock) -> str:
    """``clock`` if it is one of :data:`CLOCKS`, else a ValueError naming it."""
    if clock not in CLOCKS:
        raise ValueError(f"clock: expected one of {CLOCKS}, got {clock!r}")
    return clock


def data_arrays(data, name: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a :class:`~mobiprox_lab.datasets.Split` (or an ``(x, y)`` pair), validated:
    x float32 (N, ...) with N >= 1, y int (N,)."""
    if hasattr(data, "x") and hasattr(data, "y"):
        x, y = data.x, data.y
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    else:
        raise ValueError(f"{name}: expected a Split (x, y, group) or an (x, y) pair, "
                         f"got {type(data).__name__}")
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.float32 or x.ndim < 2 or len(x) < 1:
        raise ValueError(f"{name}.x: expected float32 (N, C, H, W) with N >= 1, "
                         f"got {x.dtype} {x.shape}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}.y: expected int class indices of shape ({len(x)},), "
                         f"got {y.dtype} {y.shape}")
    return x, y.astype(np.int64, copy=False)
