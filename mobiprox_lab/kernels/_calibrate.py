"""Path thresholds that depend on the machine, and their calibration by timing both paths.

A row-perforated 1x1 layer runs either as one GEMM per kept row straight into the output
("row GEMMs") or as a gather of the kept pixels of a few samples, one wide GEMM and a
scatter ("gathered"); ``POINTWISE_ROW_GEMM_MIN_MACS`` picks row GEMMs when the task's
channels x C x Wo reach it. Which path wins depends on the BLAS's small-GEMM kernels and the
memory bandwidth: on one Skylake-class VM the HAR 64 -> 128 layer on 16x16 maps ran 1.96x
over exact with row GEMMs and 1.50x gathered, on a Zen 3 VM (OpenBLAS Haswell kernels)
0.91x and 1.42x. The GEMM's depth (C) matters beyond its size: on a Zen 4 VM (one thread,
batch 64) the 32 -> 64 layer on 32x32 maps, K*C*Wo = 2^16, ran 1.5x slower with row GEMMs
than gathered (its row-perforated layer was slower than exact), while 64 -> 64 on 16x16,
also 2^16, ran as fast or faster; 32 -> 64 was 1.4-1.7x slower on every map from 24x24 to
40x40. So row GEMMs also need ``C >= POINTWISE_ROW_GEMM_MIN_CHANNELS``, and both thresholds
are measured per machine: :func:`calibrate_path_thresholds` times both paths on
:data:`ROW_GEMM_CASES` and returns the pair that minimises the summed time relative to each
case's faster path (:func:`choose_thresholds`); :func:`set_path_thresholds` puts them in
force for the process. No such pair need fit every case: on an Emerald Rapids VM (2
threads, batch 64) row GEMMs won on 4x4 maps and lost on most 8x8 and 16x16 ones, at sizes
on both sides of the wins. So the calibration also returns a choice per timed shape
(:func:`choices_from_cases`: the faster path), which :func:`set_path_choices` puts in
force ahead of the thresholds; shapes not timed follow the thresholds. The two paths agree
to float32 rounding (not bit for bit), so a caller that wants reproducible outputs keeps
one calibration per machine (``profiler.kernel_paths`` caches it by machine).

Each timed call follows an untimed call of the same path, as the benchmarks time theirs
(``kernelbench.warm_up``), and on one thread it is timed by the calling thread's CPU time,
which other processes' load inflates less than the wall clock; on several threads, by the
wall clock. On that VM a calibration on 2 threads taken while a package install ran beside
it chose row GEMMs for every shape with C >= 32; two later ones, and the shapes timed side
by side, found the gathered path faster on most. ``load_average`` in the result says what
the machine was doing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from . import _conv, _threads

#: The thresholds :func:`set_path_thresholds` accepts (name -> ``_conv`` attribute).
PATH_THRESHOLDS = {"pointwise_row_gemm_min_macs": "POINTWISE_ROW_GEMM_MIN_MACS",
                   "pointwise_row_gemm_min_channels": "POINTWISE_ROW_GEMM_MIN_CHANNELS"}
#: A threshold no call reaches: the path it guards is never taken.
NEVER = 1 << 62
#: (C, K, H = W) of the 1x1 layers of the HAR MobileNet that row perforation applies to
#: with the strided kernels, at widths 0.5 (shipped) and 1.0 (the authors'); planes of
#: 4x4 only where the weights stay small enough for that path.
ROW_GEMM_CASES: tuple[tuple[int, int, int], ...] = (
    (16, 32, 32), (32, 64, 16), (64, 64, 16), (64, 128, 8), (128, 128, 8), (128, 256, 4),
    (256, 256, 4),
    (32, 64, 32), (64, 128, 16), (128, 128, 16), (128, 256, 8), (256, 256, 8))
#: The row knob timed: stride-3 row perforation. Stride 2 runs as ``_microkernel`` tiles on
#: these maps, so the choice between the two paths serves strides 3 and 4 (and stride-2
#: rows of widths the tiles do not cover).
ROW_KNOB = 128


def path_thresholds() -> dict[str, int]:
    """The machine-dependent path thresholds in force: {name: value} (see ``PATH_THRESHOLDS``)."""
    return {name: int(getattr(_conv, attr)) for name, attr in PATH_THRESHOLDS.items()}


#: The thresholds built into the kernels (measured on one VM), in force until changed.
BUILT_IN = path_thresholds()


def set_path_thresholds(values: Mapping[str, int] | None = None, **kwargs: int
                        ) -> dict[str, int]:
    """Put path thresholds in force for this process (``values`` and / or keywords; names of
    ``PATH_THRESHOLDS``, ints >= 0); returns the ones in force before. Shapes with a
    per-shape choice in force (:func:`set_path_choices`) keep to it."""
    new = {**(values or {}), **kwargs}
    for name, value in new.items():
        if name not in PATH_THRESHOLDS:
            raise ValueError(f"{name}: expected one of {sorted(PATH_THRESHOLDS)}")
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
    before = path_thresholds()
    for name, value in new.items():
        setattr(_conv, PATH_THRESHOLDS[name], int(value))
    return before


def path_choices() -> list[list]:
    """The per-shape choices in force: sorted ``[C, K, H, W, one_sample, row_gemms]`` lists
    (see :func:`set_path_choices`); [] if none."""
    return sorted([*key, row] for key, row in _conv.POINTWISE_ROW_GEMM_CHOICES.items())


def set_path_choices(choices: Iterable[Sequence]) -> list[list]:
    """Put per-shape path choices in force for this process, replacing those in force, and
    return the ones before. ``choices``: ``[C, K, H, W, one_sample, row_gemms]`` entries
    (ints >= 1, then two bools): a row-perforated 1x1 call on an (N, C, H, W) input with K
    outputs, N == 1 or not as ``one_sample``, runs one GEMM per kept row iff
    ``row_gemms``, whatever the thresholds say."""
    table = {}
    for entry in choices:
        entry = list(entry) if isinstance(entry, (list, tuple)) else entry
        if not (isinstance(entry, list) and len(entry) == 6
                and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                        for v in entry[:4])
                and all(isinstance(v, (bool, np.bool_)) for v in entry[4:])):
            raise ValueError("choices: expected [C, K, H, W, one_sample, row_gemms] entries "
                             f"(4 ints >= 1, 2 bools), got {entry!r}")
        table[_conv.row_gemm_shape(1 if entry[4] else 2, *entry[:4])] = bool(entry[5])
    before = path_choices()
    _conv.POINTWISE_ROW_GEMM_CHOICES = table
    return before


def choices_from_cases(cases: Iterable[Mapping]) -> list[list]:
    """Per-shape choices (:func:`set_path_choices`) from calibration cases ({"n", "c", "k",
    "h", "row_s", "gathered_s"}, square maps): row GEMMs where they were faster; a tie
    goes to the gathered path, the general one."""
    return sorted([*_conv.row_gemm_shape(r["n"], r["c"], r["k"], r["h"], r["h"]),
                   bool(r["row_s"] < r["gathered_s"])] for r in cases)


def _relative_time(takes_rows: np.ndarray, row_s: np.ndarray, gathered_s: np.ndarray
                   ) -> float:
    """sum_i t_i / min(row_i, gathered_i), where case i runs row GEMMs where ``takes_rows``."""
    return float(np.sum(np.where(takes_rows, row_s, gathered_s)
                        / np.minimum(row_s, gathered_s)))


def choose_threshold(macs: Iterable[int], row_s: Iterable[float],
                     gathered_s: Iterable[float]) -> int:
    """The threshold T minimising sum_i t_i(T) / min(row_i, gathered_i), where case i takes
    row GEMMs (time ``row_s[i]``) when ``macs[i] >= T``, else the gathered path. Candidates
    are the cases' own ``macs`` and :data:`NEVER`; ties go to the larger T (fewer row GEMMs)."""
    m = np.asarray(list(macs), np.int64)
    r = np.asarray(list(row_s), float)
    g = np.asarray(list(gathered_s), float)
    if not (m.shape == r.shape == g.shape) or m.ndim != 1:
        raise ValueError(f"macs, row_s, gathered_s: expected equal-length lists, got "
                         f"{m.shape}, {r.shape}, {g.shape}")
    if not (np.all(r > 0) and np.all(g > 0)):
        raise ValueError("row_s, gathered_s: expected positive times")
    candidates = sorted({int(v) for v in m} | {NEVER}, reverse=True)
    scores = [_relative_time(m >= t, r, g) for t in candidates]
    return candidates[int(np.argmin(scores))]  # first minimum = the largest T among ties


def choose_thresholds(macs: Iterable[int], channels: Iterable[int], row_s: Iterable[float],
                      gathered_s: Iterable[float]) -> dict[str, int]:
    """The pair (``pointwise_row_gemm_min_macs`` T, ``pointwise_row_gemm_min_channels`` M)
    minimising sum_i t_i / min(row_i, gathered_i), where case i takes row GEMMs when
    ``macs[i] >= T`` and ``channels[i] >= M``, else the gathered path. M's candidates are 0
    and the cases' ``channels``; for each, T is :func:`choose_threshold`'s on the cases
    that M lets through. Ties go to the smaller M (a channel limit only where it helps),
    then to the larger T."""
    m = np.asarray(list(macs), np.int64)
    c = np.asarray(list(channels), np.int64)
    r = np.asarray(list(row_s), float)
    g = np.asarray(list(gathered_s), float)
    if not (m.shape == c.shape == r.shape == g.shape) or m.ndim != 1:
        raise ValueError(f"macs, channels, row_s, gathered_s: expected equal-length lists, "
                         f"got {m.shape}, {c.shape}, {r.shape}, {g.shape}")
    best_score, best = np.inf, None
    for min_channels in sorted({0} | {int(v) for v in c}):
        through = c >= min_channels
        t = choose_threshold(m[through], r[through], g[through])
        score = _relative_time(through & (m >= t), r, g)
        if score < best_score:  # strictly better: ties keep the smaller limit
            best_score, best = score, {"pointwise_row_gemm_min_macs": t,
                                       "pointwise_row_gemm_min_channels": min_channels}
    return best


def calibrate_path_thresholds(cases: Iterable[tuple[int, int, int]] = ROW_GEMM_CASES, *,
                              batch_sizes: Iterable[int] = (1, 64), repeats: int = 7,
                              seed: int = 0, progress: bool = False) -> dict:
    """Time both paths of row-perforated 1x1 layers here, at the current thread count.

    cases : (C, K, H) of square H x H maps; batch_sizes : N of each timed call; repeats :
    timed rounds, the two paths alternating within each (after one untimed round), each
    timed call right after an untimed one of the same path (module doc). Returns
    {"thresholds": {name: value} minimising the relative time (:func:`choose_thresholds`),
    "choices": the faster path of each timed shape (:func:`choices_from_cases`),
    "cases": [{"n", "c", "k", "h", "macs", "row_s", "gathered_s"}] (median seconds per call:
    the calling thread's CPU time on one thread, else wall), "clock": "thread cpu" |
    "wall", "load_average": the 1-minute load average before and after}. The thresholds
    and choices in force are restored; put the result in force with
    :func:`set_path_thresholds` and :func:`set_path_choices`. Cases the row-perforated path
    does not take are skipped.
    """
    from tqdm.auto import tqdm

    repeats = int(repeats)
    if repeats < 1:
        raise ValueError(f"repeats: expected an int >= 1, got {repeats!r}")
    sizes = [int(b) for b in batch_sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"batch_sizes: expected ints >= 1, got {batch_sizes!r}")
    rng = np.random.default_rng(seed)
    calls = []
    choices_before = set_path_choices([])  # timed shapes must follow the forced thresholds
    try:
        for c, k, h in cases:
            for n in sizes:
                macs = _conv.pointwise_row_gemm_macs((n, c, h, h), k, ROW_KNOB)
                if macs is not None:
                    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
                    w = rng.standard_normal((k, c, 1, 1), dtype=np.float32)
                    calls.append((n, c, k, h, macs, x, w))
        if not calls:
            raise ValueError("cases: none of them takes the row-perforated 1x1 path")
        one_thread = _threads.get_num_threads() == 1
        clock = time.thread_time if one_thread else time.perf_counter
        load_before = _load_average()
        rows = [_time_case(call, repeats, clock)
                for call in tqdm(calls, desc="calibrate kernel paths", disable=not progress)]
    finally:
        set_path_choices(choices_before)
    thresholds = choose_thresholds([r["macs"] for r in rows], [r["c"] for r in rows],
                                   [r["row_s"] for r in rows], [r["gathered_s"] for r in rows])
    return {"thresholds": thresholds, "choices": choices_from_cases(rows), "cases": rows,
            "clock": "thread cpu" if one_thread else "wall",
            "load_average": [load_before, _load_average()]}


def _time_case(call: tuple, repeats: int, clock) -> dict:
    """Median ``clock`` seconds of each path on one case (``calls`` entry of
    :func:`calibrate_path_thresholds`), the thresholds in force restored after."""
    n, c, k, h, macs, x, w = call
    before = path_thresholds()
    times = {0: [], NEVER: []}
    try:
        for i in range(repeats + 1):
            for t in (0, NEVER) if i % 2 else (NEVER, 0):
                set_path_thresholds(pointwise_row_gemm_min_macs=t,
                                    pointwise_row_gemm_min_channels=0)
                _conv.conv2d(x, w, knob=ROW_KNOB, relu=True)  # untimed: caches refilled
                t0 = clock()
                _conv.conv2d(x, w, knob=ROW_KNOB, relu=True)
                if i:
                    times[t].append(clock() - t0)
    finally:
        set_path_thresholds(before)
    return {"n": n, "c": c, "k": k, "h": h, "macs": int(macs),
            "row_s": float(np.median(times[0])), "gathered_s": float(np.median(times[NEVER]))}


def _load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
