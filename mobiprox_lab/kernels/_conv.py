"""Convolution driver: validate, pick a path, split the batch into chunks, run them.

Paths (``groups == 1`` unless said):

* 1x1, stride 1, no padding, fp32, maps of >= ``POINTWISE_MIN_PLANE`` pixels (or of >=
  ``POINTWISE_SMALL_MIN_PLANE`` with at most ``POINTWISE_SMALL_MAX_WEIGHT_BYTES`` of weights)
  (``_pointwise``): exact and filter-sampled, GEMMs straight on (strided views of) the
  input into the output, or, exact and stride-2 sampled on maps of whole 32-output tiles,
  ``_microkernel`` dense tiles; stride-2 row or column perforation of the maps
  ``_microkernel.tile_plan`` covers (HAR's 8x8 to 32x32 maps), register tiles that read
  the kept inputs in place and write kept and filled outputs in one store each;
  on maps of at most 16 computed pixels (2x2, 4x4), at most
  ``CHANNEL_TILES_MAX_SAMPLES`` samples (any number on 2x2 maps), read-only weights
  (exact, stride-2 sampled or perforated, whatever the weights' size),
  ``_microkernel`` channel tiles: the output channels in the vector lanes, the few
  (kept) pixels broadcast, each weight read once;
  on 4x4 maps, batches of at least one tile's samples, whatever the weights' size, register
  tiles of whole planes (``_microkernel.plane_tile``: four samples' a tile perforated, two
  exact or stride-2 sampled);
  other row perforation where :func:`takes_row_gemms` says (a calibrated
  choice for the layer's shape, else ``K*C*Wo >= POINTWISE_ROW_GEMM_MIN_MACS`` and
  ``C >= POINTWISE_ROW_GEMM_MIN_CHANNELS``), one GEMM per kept row straight into the
  output and the skipped rows filled in place;
  other perforation, the kept pixels of a few samples (``POINTWISE_GEMM_WIDTH``) copied,
  one GEMM and the fill, all in cache. Tasks are blocks of samples x blocks of output
  channels.
* the same in fp16, exact, maps of >= ``ONE_BY_ONE_MIN_PLANE`` pixels: one GEMM per
  sample straight into the output, then the half rounding.
* other fp32 1x1, stride 1, no padding, batches of >= ``POINTWISE_BATCHED_MIN_SAMPLES``
  (the HAR MobileNet's 2x2 layers, and 4x4 ones with large weights): the batch's kept
  channels / pixels packed side by side, then one GEMM per block of output channels x
  block of samples, unpacked (filled from the kept pixels) with bias and ReLU
  (``_pointwise``).
* fp32 exact (or sampled with a column-only pattern), stride 1, no padding,
  ``C*KW >= WIDE_MIN_REDUCTION`` (the KWS CNN's second layer): KH GEMMs on column-shifted
  copies of the input rows, accumulated in cache (``_wide``). Tasks are blocks of samples
  (x blocks of output channels); below ``WIDE_ROW_SPLIT_SAMPLES`` samples per thread,
  blocks of output rows with every channel instead (batch 1: two channel blocks of 16 each
  rebuilt the shifted input and ran thin GEMMs).
* the same convs under stride-2 row or column perforation: the shifted rows cut to the
  kept columns (rows split by parity, when rows are perforated), KH GEMMs give the kept
  outputs, which then fill the output. Tasks are samples; below ``WIDE_ROW_SPLIT_SAMPLES``
  samples per thread, blocks of kept rows into a shared result, then the fill by blocks
  of channels.
* other fp32 stride-1 convs larger than 1x1 with 32-wide output rows (the HAR MobileNet's
  first layer), exact, filter-sampled or under stride-2 row perforation, on AVX-512 CPUs:
  ``_tap_tiles``, register tiles reading each sample's zero-padded input through a table of
  tap offsets and writing whole rows (with the skipped rows beside them). Tasks are blocks
  of samples x blocks of output channels.
* other fp32 stride-2 column perforation of stride-1 convs larger than 1x1 whose output
  rows keep 16 values (32 or 33 wide: the HAR MobileNet's first layer, the KWS CNN's first
  at offset 0), on AVX-512 CPUs (``REGISTER_TILES``): ``_phase_tiles``, register tiles
  reading each sample's padded input split into column phases and writing whole rows, kept
  and filled. Tasks are blocks of samples; below ``TASKS_PER_WORKER`` samples per thread,
  blocks of each sample's output rows.
* unperforated fp32 (exact or sampled) with ``groups == 1`` and maps of >=
  ``ROWBLOCK_MIN_PLANE`` outputs: tasks are blocks of output rows of one sample; the
  im2col of a block stays in cache and one GEMM writes it straight into the output.
  Column perforation likewise (blocks of ``COLUMN_BLOCK_COLUMNS`` kept pixels: a whole
  sample of the HAR / KWS first layers, whose output then streams out in order), its
  GEMM into a buffer that fills the block's rows.
* fp32 row perforation of fewer samples than threads (batch 1): blocks of kept rows
  (im2col + one GEMM into a shared result), then the fill by blocks of channels, so that
  one sample still spreads over the threads.
* everything else with ``groups == 1`` (and wide groups, one group at a time):
  per chunk of samples, a reduced im2col -> one GEMM -> scatter into NCHW with
  interpolation and bias. Chunks keep the im2col buffer and the GEMM result
  cache-resident (``CHUNK_BYTES``; perforated, at most ``PERFORATED_CHUNK_COLUMNS``
  kept pixels, as the chunk's output is written too); an unperforated chunk of one sample is
  written by the GEMM straight into the output.
* depthwise, fp32, more than ``DEPTHWISE_NHWC_MAX_PLANE`` outputs per map: each
  input plane split into its stride phases, every tap one contiguous vectorised
  multiply-add (``_direct.depthwise_phases``); tasks over samples x channels.
* other depthwise / narrow grouped (<= ``DIRECT_MAX_GROUP_WIDTH`` input channels per
  group): a direct Numba loop (channel-vectorised NHWC for small depthwise maps).

Untimed calls on several threads run as loop jobs (``_loops``: the task loop in Numba, no
GIL taken during the call, see ``_pool``), but for the fp16 1x1 and the narrow grouped
direct loops; :func:`set_numba_task_loops` turns that off. Untimed calls on one thread of
the depthwise and 1x1 paths (but the gathered one) call their kernel once,
directly, with no tasks (``_direct_call``; :func:`set_direct_calls` turns that off).

Chunks run on ``_threads`` worker threads (serial nogil kernels, single-threaded
BLAS per worker). Without timings a chunk is one nogil call (``_fused``, whose
GEMM is ``_blas``'s, outside any parallel loop); with timings its phases run as
separate calls so that each can be clocked, the GEMM through the same
``_blas.matmul_into``, so timed results equal untimed ones bit for bit.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from math import ceil, prod
from time import thread_time  # per-thread CPU seconds: see conv2d(timings=...)

import numpy as np

from . import _plan, _pool, _threads
from ._blas import matmul_into
from ._direct import depthwise_buffer_size, depthwise_nhwc, depthwise_phases, direct_conv
from ._fused import (
    gemm_chunk,
    kept_rows_gemm,
    pointwise_chunk,
    rowblock_chunk,
    rowblock_columns_chunk,
    rowblock_gemm,
)
from ._half import to_half
from ._im2col import im2col, im2col_column_phases, split_padded_column_phases
from ._loops import (
    batched_gemm_loop,
    chunks_loop,
    depthwise_nhwc_loop,
    depthwise_phases_loop,
    fill_loop,
    kept_rows_loop,
    pack_loop,
    phase_tiles_loop,
    pointwise_channel_tiles_loop,
    pointwise_dense_tiles_loop,
    pointwise_exact_loop,
    pointwise_gathered_loop,
    pointwise_plane_tiles_loop,
    pointwise_s2_tiles_loop,
    pointwise_sampled_loop,
    rowblock_loop,
    shifted_loop,
    tap_tiles_loop,
    wide_loop,
)
from ._memory import aligned_empty
from ._microkernel import (
    CHANNEL_PIXELS,
    LANES,
    PLANE_SHAPES,
    TILE_OUTPUTS,
    channel_tile_width,
    host_has_wide_vectors,
    phase_tile_applies,
    plane_code,
    plane_group,
    plane_lanes,
    tile_plan,
)
from ._phase_tiles import (
    phase_buffer_size,
    phase_half,
    phase_offsets,
    phase_tiles,
    phase_tiles_whole,
)
from ._pointwise import (
    batched_gemm,
    channel_panels,
    pack_channels,
    pointwise_channel_tiles,
    pointwise_dense_tiles,
    pointwise_exact,
    pointwise_gathered,
    pointwise_plane_tiles,
    pointwise_s2_tiles,
    pointwise_s2_tiles_whole,
    pointwise_sampled,
)
from ._scatter import fill_column_rows, finish, scatter
from ._tap_tiles import TAP_WIDTH, pad_buffer_size, tap_offsets, tap_tiles, tap_tiles_whole
from ._tasks import (
    PHASES,
    TASKS_PER_WORKER,
    add_time,
    batch_chunk,
    block_region,
    blocks,
    relu_after,
    run_tasks,
)
from ._validate import ConvSpec, check_flag, conv_spec
from ._weights import gather_columns, immutable, packed
from ._wide import shifted_perforated_conv, wide_conv

CHUNK_BYTES = 1 << 20  # im2col + GEMM result of one chunk: one core's L2
PERFORATED_CHUNK_COLUMNS = 1024  # perforated chunks: at most this many kept pixels
COLUMN_BLOCK_COLUMNS = 4096  # column-perforated row blocks: at most this many kept pixels
ONE_BY_ONE_MIN_PLANE = 256
# exact stride-1 unpadded convs with C*KW >= this: KH GEMMs on column-shifted rows, at any
# batch size: KWS conv2 (2 threads, wall, side by side, ReLU fused) against row blocks /
# chunks, exact: batch 1 1.04 vs 1.36 ms, 2 1.85 vs 2.57, 4 3.42 vs 5.04, 32 26.6 vs 38.1;
# samp s2: batch 1 0.50 vs 0.78, 32 13.5 vs 18.3
WIDE_MIN_REDUCTION = 128
# shifted rows (exact, and stride-2 perforated), fewer samples than this per thread: split
# each sample's (kept) rows into about WIDE_ROW_TASKS tasks per thread. Perforated KWS conv2
# at batch 1 (2 threads, wall): row s2 0.66 -> 0.55 ms, col s2 0.61 -> 0.51 against tasks
# over channel halves (exact 0.98)
WIDE_ROW_SPLIT_SAMPLES = 4
WIDE_ROW_TASKS = 2
ROWBLOCK_MIN_PLANE = 256  # unperforated maps of at least this many outputs: row blocks
POINTWISE_MIN_PLANE = 64  # 1x1 maps of at least this many pixels: GEMMs on strided views
# ... and maps of at least POINTWISE_SMALL_MIN_PLANE pixels whose weights stay in L2: HAR
# width 0.5, batch 64, 2 threads, 4x4 maps: pw6 (128 KiB of weights) exact 0.72 -> 0.40 ms,
# pw7 (256 KiB) 1.14 -> 0.93 ms, every stride-2 knob faster too (batch 1 likewise); with
# 1 MiB of weights (pw7 at width 1.0) row s2 went 2.16 -> 4.60 ms, so larger ones stay on
# im2col + GEMM
POINTWISE_SMALL_MIN_PLANE = 16
POINTWISE_SMALL_MAX_WEIGHT_BYTES = 1 << 18
# other 1x1 (any fp32 knob) in batches of at least this many samples: one packed GEMM.
# 2 threads, wall, batch 64, against the reduced-im2col chunks: 512 -> 512 on 2x2 1.33 ->
# 1.01 ms, 256 -> 512 on 2x2 0.83 -> 0.60, 512 -> 512 on 4x4 3.48 -> 3.15 (torch 0.76,
# 0.43, 2.53); batch 8, 512 -> 512 on 2x2 0.39 -> 0.29; batch 1 0.058 -> 0.074
POINTWISE_BATCHED_MIN_SAMPLES = 2
POINTWISE_BATCHED_COLUMNS = 512  # ... at most about this many columns (pixels) per GEMM
POINTWISE_GEMM_WIDTH = 128  # perforated 1x1: samples per GEMM to reach this many columns
POINTWISE_BUFFER_BYTES = 1 << 19  # ... while its kept pixels and results fit in this
# row-perforated 1x1 with K*C*Wo >= this: row GEMMs (HAR pw2, 64 -> 128 on 16x16, is 2^17:
# 1.96x over exact with them, 1.50x gathered; pw1, 32 -> 64 on 32x32, 2^16: 0.99x vs 1.41x)
POINTWISE_ROW_GEMM_MIN_MACS = 1 << 17
# ... and C >= this (no limit built in; see _calibrate: on a Zen 4 VM 32 -> 64 layers took
# 1.4-1.7x the gathered path's time with row GEMMs, 64 -> 64 and 64 -> 128 0.97-1.01x)
POINTWISE_ROW_GEMM_MIN_CHANNELS = 0
# ... unless the layer's shape has a calibrated choice: {(C, K, H, W, one sample): row
# GEMMs?} (``_calibrate.set_path_choices``; empty built in)
POINTWISE_ROW_GEMM_CHOICES: dict[tuple[int, int, int, int, bool], bool] = {}
# exact, stride-2 sampled and stride-2 perforated 1x1 convs as ``_microkernel`` register
# tiles where they fit, larger stride-1 convs on 32-wide maps as tap tiles (``_tap_tiles``)
# and their stride-2 column perforation (33 wide too) as phase tiles (``_phase_tiles``): on
# AVX-512 CPUs, the only ones they were timed on (elsewhere the
# GEMM paths, as before them)
REGISTER_TILES = host_has_wide_vectors()
# ... and, as ``_microkernel`` channel tiles (output channels in the vector lanes), exact,
# stride-2 sampled and perforated (any stride) 1x1 convs of at most this many samples computing
# at most 16 pixels a map, whose BLAS GEMMs are a few columns wide and as slow as wider ones.
# Zen 4, 2 threads, side by side, old path's time / the tiles' (exact, row s2, samp s2):
# 1024 -> 1024 on 2x2, 1 sample 2.72 / 2.94 / 2.54, 2 samples 1.71 / 1.61 / 1.68, 3 samples
# 1.28 / 0.76 / 1.34; 512 -> 512 on 4x4 (row s2: 8 pixels), 1 sample 1.75, 2 samples 1.40,
# 3 samples 1.28, 4 samples (plane tiles) 0.77
CHANNEL_TILES_MAX_SAMPLES = 2
# ... and any number of samples on maps of at most this many pixels (2x2), where the other
# path is one packed GEMM of the batch (``_run_batched_pointwise``). Since the tiles read
# their weights from panels, batch 64 on two threads, packed GEMM's time / the tiles' (exact,
# row s2, samp s2; weights in cache): 256 -> 512 1.22 / 1.24 / 1.09, 512 -> 512 1.06 / 0.90 /
# 1.07 (0.90 -> 1.09 with its weights out of L2), 1024 -> 1024 1.12 / 0.98 / 1.15; 512 ->
# 512 at batch 16 1.37 / 1.26 / 1.47, at batch 4 1.87 / 1.81 / 1.82
CHANNEL_TILES_ANY_BATCH_MAX_PLANE = 4
# register tiles (dense, rows, columns) whose call writes at least this many output bytes
# store them non-temporally (``_microkernel.STREAM``): no read of each output line before its
# write, past the caches. None: never. See :func:`set_streaming_stores`. Zen 4, 2 threads,
# wall, batch 64, HAR width 1, streamed / cached time (benchmarks/streaming.py, median of 15
# interleaved): 16 MiB outputs (pw1) 0.76-0.84 (exact 0.77), 8 MiB (pw2, pw3) 0.66-0.90,
# 4 MiB (pw4, pw5) 0.87-1.05. The next layer then reads the output from memory, not the
# caches: the whole HAR model (width 0.5) with 2 MiB or 8 MiB thresholds ran within the
# run's noise of no streaming (0.87-1.10x at batch 32 and 64; at batch 32 nothing reaches
# 8 MiB, and those ratios, 0.95-1.10, are the noise itself)
STREAM_MIN_BYTES: int | None = 8 << 20
DIRECT_MAX_GROUP_WIDTH = 8
LOOP_JOBS = True  # calls on several threads: task loops in Numba (``_loops``), see below
DEPTHWISE_NHWC_MAX_PLANE = 16  # depthwise maps up to this many outputs: channel-vectorised
# row perforation of fewer samples than threads: about this many tasks per thread in each of
# its two phases (KWS at batch 1, row s2, 2 threads, wall: conv2 0.92 / 0.74 / 0.78 ms with
# 4 / 2 / 1, chunks of whole samples 1.04; conv1 0.42 / 0.35 / 0.36, chunks 0.41)
KEPT_ROW_TASKS = 2
# fills from a shared result of kept outputs (the second phase of the two paths above) with
# fewer outputs than this run on the calling thread: KWS conv2 at batch 1 (26,624 outputs,
# 2 threads, a Zen 3 VM) filled in ~50 us on the caller, which then waited ~100 us for a
# worker that woke too late to take a task; side by side, wall: row s2 1.006 -> 0.928 ms,
# col s2 0.902 -> 0.798 ms; conv1 (173,184 outputs) stays parallel
FILL_PARALLEL_MIN_OUTPUTS = 65536
MIN_PARALLEL_FLOPS = 4_000_000  # smaller calls run on the calling thread only
# untimed calls on one thread: one kernel call where the path has one (``_direct_call``)
# rather than the task machinery
DIRECT_CALLS = True


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride=1, padding=0,
           groups: int = 1, knob: int = 11, timings: dict | None = None,
           relu: bool = False) -> np.ndarray:
    """Approximate 2-D convolution (cross-correlation, like torch) under ``knob``.

    x: float32 (N, C, H, W); w: float32 (K, C // groups, KH, KW); b: float32 (K,) or
    None; stride / padding: int or (h, w). Returns float32 (N, K, Ho, Wo).
    Grouped / depthwise layers accept only knobs 11 and 12.

    ``relu``: apply ReLU to the result (after the bias; NaN kept), on each chunk while it
    is in cache instead of in a separate pass over the output.

    ``timings``: if a dict, the CPU seconds this call spent per phase are added
    to it under the keys of ``PHASES``: "prep" (checks, fp16 rounding, weight
    packing), "im2col", "gemm", "interp" (scatter into NCHW + interpolation +
    bias), "direct" (the depthwise loop). Each is the CPU time of the threads
    doing it (``time.thread_time``), summed over worker threads: it measures
    work, unaffected by other processes' load; with T busy threads the phases
    add up to about T x the wall time.
    """
    t_start = thread_time() if timings is not None else 0.0
    relu = check_flag(relu, "relu")
    s = conv_spec(x, w, b, stride, padding, groups, knob)
    out = aligned_empty((s.n, s.k, s.ho, s.wo))  # for non-temporal stores (``_streams``)
    if out.size == 0:
        return out
    fp16 = s.knob.is_fp16
    x = to_half(x) if fp16 else np.ascontiguousarray(x)
    has_bias = b is not None
    bias = np.zeros(s.k, np.float32) if b is None else (to_half(b) if fp16 else
                                                        np.ascontiguousarray(b))
    small, workers = _parallelism(s)
    path, kind = _route(s, w)
    if DIRECT_CALLS and timings is None and workers == 1:
        direct = _direct_call(w, s, bias, has_bias, relu, path, kind, small)
        if direct is not None:
            direct(x, out)
            return out
    args = (x, w, out, s, bias, has_bias, workers, timings, t_start, small, relu)
    if path == "pointwise":
        _run_pointwise(*args, kind)
    elif path == "depthwise":
        _run_depthwise(*args)
    elif path == "direct":
        _run_direct(*args)
    elif path == "wide":
        _run_wide(*args)
    elif path == "shifted":
        _run_shifted_perforated(*args)
    elif path == "phases":
        _run_phase_tiles(*args)
    elif path == "taps":
        _run_tap_tiles(*args)
    else:
        _run_reduced(*args)
    return out


def direct_call(x, w, b, stride, padding, groups, knob, relu: bool):
    """``(output shape, call(x, out))``: the one kernel call that :func:`conv2d` makes for an
    untimed call with these arguments on the current thread count (``call`` takes the
    C-contiguous input and an uninitialised 64-byte aligned output), or None where it would
    not make one (several threads, fp16, other paths, an empty output). Checks the arguments
    as ``conv2d`` does. What it returns holds for as long as the thread count and
    :func:`routing_settings` stay the same and ``w`` and ``b`` are not written to."""
    relu = check_flag(relu, "relu")
    s = conv_spec(x, w, b, stride, padding, groups, knob)
    small, workers = _parallelism(s)
    if not DIRECT_CALLS or workers != 1 or s.n * s.k * s.ho * s.wo == 0:
        return None
    path, kind = _route(s, w)
    bias = np.zeros(s.k, np.float32) if b is None else np.ascontiguousarray(b)
    call = _direct_call(w, s, bias, b is not None, relu, path, kind, small)
    return None if call is None else ((s.n, s.k, s.ho, s.wo), call)


def routing_settings() -> tuple:
    """The module settings that :func:`_route`, :func:`_parallelism` and
    :func:`_direct_call` read: a call resolved under one value of it (:func:`direct_call`)
    is resolved again under another."""
    return (DIRECT_CALLS, REGISTER_TILES, STREAM_MIN_BYTES, MIN_PARALLEL_FLOPS,
            DEPTHWISE_NHWC_MAX_PLANE, DIRECT_MAX_GROUP_WIDTH, WIDE_MIN_REDUCTION,
            ROWBLOCK_MIN_PLANE, POINTWISE_MIN_PLANE, POINTWISE_SMALL_MIN_PLANE,
            POINTWISE_SMALL_MAX_WEIGHT_BYTES, CHANNEL_TILES_MAX_SAMPLES,
            CHANNEL_TILES_ANY_BATCH_MAX_PLANE)


def _route(s: ConvSpec, w: np.ndarray) -> tuple[str, str | None]:
    """``(path, pointwise kind)`` of a call: "depthwise", "direct", "wide", "shifted",
    "phases", "taps", "reduced" (``_run_<path>``, "shifted": ``_run_shifted_perforated``,
    "phases" / "taps": ``_run_phase_tiles`` / ``_run_tap_tiles``) or "pointwise" and its
    :func:`_strided_pointwise` kind (else None)."""
    if (s.groups > 1 and s.k == s.c == s.groups and not s.knob.is_fp16
            and s.ho * s.wo > DEPTHWISE_NHWC_MAX_PLANE):
        return "depthwise", None
    if s.groups > 1 and s.c // s.groups <= DIRECT_MAX_GROUP_WIDTH:
        return "direct", None
    if _wide_applies(s):
        return "wide", None
    if _shifted_perforation(s) is not None:
        return "shifted", None
    if _phase_tiles_apply(s):
        return "phases", None
    if _tap_tile_rows(s) is not None:
        return "taps", None
    kind = _strided_pointwise(s, immutable(w))
    return ("reduced", None) if kind is None else ("pointwise", kind)


def _direct_call(w, s: ConvSpec, bias, has_bias, relu: bool, path: str, kind: str | None,
                 small: bool):
    """``call(x, out)`` computing an untimed single-threaded call of ``path`` / ``kind``
    (:func:`_route`) with one kernel call, fp32 and with the ReLU fused, or None where the
    path has no such kernel. ``x``: the C-contiguous input; ``out``: the uninitialised
    output. It skips the task machinery (``run_tasks``): about 4 us of a batch-1 call of
    HAR's 16 -> 32 layer on 32x32 maps (one thread, exact: 22.5-22.9 -> 18.7-19.0 us, the
    kernel alone 15 us)."""
    if s.knob.is_fp16:
        return None
    n, k = s.n, s.k
    if path == "depthwise":
        wc, size = np.ascontiguousarray(w), depthwise_buffer_size(
            s.h, s.w, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw)

        def call(x, out):
            depthwise_phases(x, wc, out, 0, n, 0, k, s.sh, s.sw, s.ph, s.pw, bias, has_bias,
                             np.zeros(size, np.float32), relu)
        return call
    if path == "direct":
        if s.k != s.c or s.k != s.groups or s.ho * s.wo > DEPTHWISE_NHWC_MAX_PLANE:
            return None  # direct_conv leaves the ReLU to a pass of its own
        wc = np.ascontiguousarray(w)

        def call(x, out):
            depthwise_nhwc(x, wc, out, 0, n, s.sh, s.sw, s.ph, s.pw, bias, has_bias, False,
                           relu)
        return call
    if path == "phases":
        wt, toff = _phase_operands(w, s)

        def call(x, out):
            phase_tiles_whole(x, wt, out, toff, s.kh, s.ph, s.pw, s.knob.offset, bias, relu)
        return call
    if path == "taps":
        wt, toff, rows, d0, flags = _tap_operands(w, s)

        def call(x, out):
            tap_tiles_whole(x, wt, out, toff, s.ph, s.pw, rows, d0, flags, bias, relu)
        return call
    if path != "pointwise" or kind == "gathered":
        return None
    if kind == "plane_tiles":
        wt, code, group, first, step = _plane_operands(w, s)
        if n % group:  # the samples left over take another path: tasks
            return None

        def call(x, out):
            pointwise_plane_tiles(x, wt, out, 0, n, 0, k, code, group, first, step, bias, relu)
        return call
    kind, w2, extra = _pointwise_operands(w, s, kind)
    stream = _streamable((n, k, s.ho, s.wo), kind, s.knob)  # out: aligned_empty's
    if kind == "dense":
        def call(x, out):
            pointwise_dense_tiles(x, w2, out, 0, n, 0, k, *extra, bias, relu, stream)
    elif kind == "channel_tiles":
        def call(x, out):
            pointwise_channel_tiles(x, w2, out, 0, n, 0, k, *extra, bias, relu)
    elif kind == "tiles":
        def call(x, out):
            pointwise_s2_tiles_whole(x, w2, out, *extra, bias, relu, stream)
    else:  # "exact" / "sampling": BLAS GEMMs, on one thread unless too small to thread
        kernel = pointwise_exact if kind == "exact" else pointwise_sampled

        def gemms(x, out):
            kernel(x, w2, out, 0, n, 0, k, *extra, bias, has_bias, relu)

        if small:
            return gemms

        def call(x, out):
            with _threads.single_threaded_blas():
                gemms(x, out)
    return call


def get_numba_task_loops() -> bool:
    """Whether multi-threaded calls run their task loop in Numba (loop jobs, the default)
    rather than in Python (see the module doc)."""
    return LOOP_JOBS


def set_numba_task_loops(enabled: bool) -> None:
    """Run multi-threaded calls' task loops in Numba (True, the default: no thread takes the
    GIL during a call) or in Python (False: each task a Python call, as timed calls always
    run). Results are the same bit for bit; ``benchmarks/threads.py`` times both."""
    global LOOP_JOBS
    LOOP_JOBS = check_flag(enabled, "enabled")


def get_direct_calls() -> bool:
    """Whether untimed single-threaded calls run as one kernel call where their path has one
    (the default) rather than through the task machinery (see :func:`set_direct_calls`)."""
    return DIRECT_CALLS


def set_direct_calls(enabled: bool) -> None:
    """Run untimed single-threaded calls of the depthwise and 1x1 paths (but the gathered
    one, and plane tiles with samples left over) as one kernel call (True) or as one task
    of the task machinery (False), as every other call runs. Values are the same bit for
    bit; ``benchmarks/direct_calls.py`` times both."""
    global DIRECT_CALLS
    DIRECT_CALLS = check_flag(enabled, "enabled")


def get_register_tiles() -> bool:
    """Whether exact, stride-2 sampled and stride-2 perforated 1x1 convs, and larger
    stride-1 convs on 32-wide maps (``_tap_tiles``, ``_phase_tiles``; column perforation 33
    wide too), run as ``_microkernel`` register tiles where they fit (the default on AVX-512
    CPUs) rather than through a BLAS GEMM (and, perforated, a fill pass)."""
    return REGISTER_TILES


def set_register_tiles(enabled: bool) -> None:
    """Run exact, stride-2 sampled and stride-2 perforated 1x1 convs, and larger stride-1
    convs on 32-wide maps (column perforation 33 wide too), as register tiles (True) or
    through a BLAS GEMM (False). Values agree to float32 rounding (sums in another order),
    not bit for bit; ``benchmarks/tiles.py`` times both."""
    global REGISTER_TILES
    REGISTER_TILES = check_flag(enabled, "enabled")


def get_streaming_stores() -> int | None:
    """The output size (bytes) from which register tiles store non-temporally, or None."""
    return STREAM_MIN_BYTES


def set_streaming_stores(min_bytes: int | None) -> None:
    """Let exact, stride-2 sampled and stride-2 perforated 1x1 convs run as register tiles
    store their outputs non-temporally (past the caches, without first reading each line)
    when a call writes at least ``min_bytes``; None: never. Values are the same bit for
    bit; the next layer then reads the output from memory rather than the caches."""
    global STREAM_MIN_BYTES
    if min_bytes is not None and (isinstance(min_bytes, (bool, np.bool_))
                                  or not isinstance(min_bytes, (int, np.integer))
                                  or min_bytes < 0):
        raise ValueError(f"min_bytes: expected an int >= 0 or None, got {min_bytes!r}")
    STREAM_MIN_BYTES = None if min_bytes is None else int(min_bytes)


def _streams(out: np.ndarray, kind: str, knob) -> bool:
    """Whether the register tiles of ``kind`` ("dense" | "tiles") writing ``out`` (N, K, Ho,
    Wo) under ``knob`` store non-temporally: :func:`_streamable`, and ``out`` 64-byte
    aligned (a non-temporal vector store elsewhere faults)."""
    return _streamable(out.shape, kind, knob) and out.ctypes.data % 64 == 0


def _streamable(shape: tuple[int, ...], kind: str, knob) -> bool:
    """Whether the register tiles of ``kind`` writing an aligned output of ``shape`` store
    non-temporally: a large enough output, planes of whole cache lines (16 floats), and
    each line written by one tile. 8-wide rows at offset 1 are not: a tile's leading row
    (``_microkernel.rows_tile``) completes the line the previous tile half wrote, and a
    non-temporal line written in two parts goes out to memory twice, half empty."""
    if kind not in ("dense", "tiles") or STREAM_MIN_BYTES is None:
        return False
    if kind == "tiles" and knob.axis == "row" and shape[3] == 8 and knob.offset == 1:
        return False
    return 4 * prod(shape) >= STREAM_MIN_BYTES and (shape[2] * shape[3]) % LANES == 0


def _parallelism(s: ConvSpec) -> tuple[bool, int]:
    """(small, workers) of a call: below ``MIN_PARALLEL_FLOPS`` it runs on the calling
    thread alone."""
    small = 2 * s.n * s.k * s.ho * s.wo * (s.c // s.groups) * s.kh * s.kw < MIN_PARALLEL_FLOPS
    return small, 1 if small else _threads.get_num_threads()


def pointwise_row_gemm_macs(x_shape, k: int, knob: int) -> int | None:
    """What ``POINTWISE_ROW_GEMM_MIN_MACS`` is compared with for a 1x1 stride-1 unpadded
    fp32 call on input (N, C, H, W) with ``k`` outputs under ``knob`` at the current thread
    count: channels per task x C x Wo when the call takes the row-perforated path of
    ``_pointwise``, else None."""
    n, c, h, w = (int(v) for v in x_shape)
    s = conv_spec(np.empty((n, c, h, w), np.float32), np.empty((k, c, 1, 1), np.float32),
                  None, 1, 0, 1, knob)
    if _strided_pointwise(s) != "gathered" or s.knob.axis != "row":
        return None
    small, workers = _parallelism(s)
    return _row_gemm_macs(s, blocks(s.n, s.k, workers, small)[2])


def _row_gemm_macs(s: ConvSpec, kb: int) -> int:
    """Multiply-adds of one kept row's GEMM in a task of ``kb`` output channels."""
    return kb * s.c * s.wo


def row_gemm_shape(n: int, c: int, k: int, h: int, w: int) -> tuple[int, int, int, int, bool]:
    """The key of ``POINTWISE_ROW_GEMM_CHOICES`` for a 1x1 call on input (N, C, H, W) with
    ``k`` outputs: one sample and several are told apart (their tasks split differently),
    not batch sizes beyond."""
    return int(c), int(k), int(h), int(w), int(n) == 1


def takes_row_gemms(s: ConvSpec, kb: int) -> bool:
    """Whether a row-perforated 1x1 call (tasks of ``kb`` output channels) runs one GEMM
    per kept row: the calibrated choice for its shape if there is one, else the
    thresholds."""
    choice = POINTWISE_ROW_GEMM_CHOICES.get(row_gemm_shape(s.n, s.c, s.k, s.h, s.w))
    if choice is not None:
        return choice
    return (s.c >= POINTWISE_ROW_GEMM_MIN_CHANNELS
            and _row_gemm_macs(s, kb) >= POINTWISE_ROW_GEMM_MIN_MACS)


def _run_direct(x, w, out, s: ConvSpec, bias, has_bias, workers, timings, t_start,
                small, relu=False) -> None:
    """Narrow grouped / small depthwise conv by a direct Numba loop (channel-vectorised
    NHWC for depthwise maps of <= ``DEPTHWISE_NHWC_MAX_PLANE`` outputs), tasks over
    blocks of samples."""
    fp16 = s.knob.is_fp16
    timing = timings is not None
    w = packed(w, "half", lambda: to_half(w)) if fp16 else np.ascontiguousarray(w)
    nb = batch_chunk(s.n, s.n, workers)
    nhwc = s.k == s.c == s.groups and s.ho * s.wo <= DEPTHWISE_NHWC_MAX_PLANE

    def direct_task(i: int, scratch: dict) -> None:
        t0 = thread_time() if timing else 0.0
        n0, n1 = i * nb, min(s.n, (i + 1) * nb)
        if nhwc:
            depthwise_nhwc(x, w, out, n0, n1, s.sh, s.sw, s.ph, s.pw, bias, has_bias, fp16,
                           relu and not timing)
        else:
            direct_conv(x, w, out, n0, n1, s.sh, s.sw, s.ph, s.pw, s.groups, bias,
                        has_bias, fp16)
        if timing:
            add_time(scratch, "direct", thread_time() - t0)

    if nhwc and _as_loop_job(timing, workers):
        _loop_job(depthwise_nhwc_loop, (
            ceil(s.n / nb), nb, x, w, out, s.sh, s.sw, s.ph, s.pw, bias, has_bias, fp16,
            relu), workers, blas=False)
        return
    fused = nhwc and not timing  # else ReLU is a pass of its own ("interp" when timed)
    run_tasks(relu_after(direct_task, relu and not fused, out, lambda i: (
        i * nb, min(s.n, (i + 1) * nb), 0, s.k, 0, s.ho * s.wo), timing),
              ceil(s.n / nb), workers, timings, t_start, small)


def _run_reduced(x, w, out, s: ConvSpec, bias, has_bias, workers, timings, t_start,
                 small, relu=False) -> None:
    """Every other ``groups == 1`` (or wide-group) call: the weights reduced to the kept
    taps of a filter-sampling knob (and rescaled), then one 1x1 GEMM per sample, row
    blocks, or reduced-im2col chunks (see the module docstring)."""
    kn = s.knob
    fp16 = kn.is_fp16
    cg = s.c // s.groups
    samp = (kn.stride, kn.offset) if kn.technique == "sampling" else (1, 0)
    kept, chan, krow, kcol = _plan.reduction_plan(cg, s.kh, s.kw, *samp)

    def reduce_weights() -> np.ndarray:
        w2 = np.ascontiguousarray(w).reshape(s.k, cg * s.kh * s.kw)
        if kn.technique == "sampling":
            w2 = gather_columns(w2, kept, np.float32(kn.stride / (kn.stride - 1)))
        return to_half(w2) if fp16 else np.ascontiguousarray(w2)

    w2 = packed(w, ("reduced", samp, fp16), reduce_weights)
    one_by_one = (s.groups == 1 and s.kh == s.kw == 1 and s.sh == s.sw == 1
                  and s.ph == s.pw == 0)
    if one_by_one and kn.technique == "exact" and s.h * s.w >= ONE_BY_ONE_MIN_PLANE:
        _run_one_by_one(x, w2, out, s, bias, has_bias, workers, timings, t_start, small, relu)
    elif one_by_one and not fp16 and s.n >= POINTWISE_BATCHED_MIN_SAMPLES:
        _run_batched_pointwise(x, w2, out, s, chan, bias, has_bias, workers, timings,
                               t_start, small, relu)
    elif (s.groups == 1 and not fp16 and s.ho * s.wo >= ROWBLOCK_MIN_PLANE
            and (kn.technique != "perforation" or kn.axis == "col")):
        _run_rowblocks(x, w2, out, s, chan, krow, kcol, bias, has_bias, workers, timings,
                       t_start, small, relu)
    elif (s.groups == 1 and not fp16 and kn.technique == "perforation" and kn.axis == "row"
            and not small and s.n < workers):
        _run_kept_rows(x, w2, out, s, chan, krow, kcol, bias, has_bias, workers, timings,
                       t_start, relu)
    else:
        _run_chunks(x, w2, out, s, chan, krow, kcol, bias, has_bias, workers, timings,
                    t_start, small, relu)


def _run_one_by_one(x, w2, out, s: ConvSpec, bias, has_bias, workers, timings, t_start,
                    small, relu=False) -> None:
    """Exact 1x1 stride-1 unpadded conv (fp16 included): one GEMM per sample straight into
    the output, then bias / half rounding; tasks over blocks of samples."""
    fp16 = s.knob.is_fp16
    timing = timings is not None
    nb = batch_chunk(s.n, s.n, workers)
    plane = s.h * s.w

    def pointwise_task(i: int, scratch: dict) -> None:
        n0, n1 = i * nb, min(s.n, (i + 1) * nb)
        if not timing:
            pointwise_chunk(x, w2, out, n0, n1, bias, has_bias, fp16)
            return
        t0 = thread_time()
        np.matmul(w2, x[n0:n1].reshape(n1 - n0, s.c, plane),
                  out=out[n0:n1].reshape(n1 - n0, s.k, plane))
        t1 = thread_time()
        add_time(scratch, "gemm", t1 - t0)
        if has_bias or fp16:
            finish(out, n0, n1, 0, s.k, bias, has_bias, fp16)
            add_time(scratch, "interp", thread_time() - t1)

    run_tasks(relu_after(pointwise_task, relu, out, lambda i: (
        i * nb, min(s.n, (i + 1) * nb), 0, s.k, 0, s.ho * s.wo), timing),
              ceil(s.n / nb), workers, timings, t_start, small)


def _run_batched_pointwise(x, w2, out, s: ConvSpec, chan, bias, has_bias, workers, timings,
                           t_start, small, relu) -> None:
    """1x1 stride-1 unpadded conv of a whole batch as one GEMM: the kept channels (kept
    pixels, under perforation) of every sample packed side by side (tasks over samples),
    then blocks of output channels x blocks of samples multiplied and unpacked (filled from
    the kept pixels) with bias, and ReLU."""
    timing = timings is not None
    hsrc, row_a, row_b, wsrc, col_a, col_b, col_s2 = _plan.output_plan(s.knob, s.ho, s.wo)
    hk, wk = hsrc.shape[0], wsrc.shape[0]
    kept = hk * wk
    fused_relu = relu and not timing  # timed, a pass of its own
    # on a cache line: a pack task's share of a row (8 samples x 2 kept pixels at batch 64
    # on 2x2 maps) is then whole lines, none shared with the task another thread packs
    xb = aligned_empty((chan.shape[0] * s.n * kept,))
    nb = batch_chunk(s.n, s.n, workers)
    loop = _as_loop_job(timing, workers)
    if loop:
        _loop_job(pack_loop, (ceil(s.n / nb), nb, x, chan, hsrc, wsrc, xb), workers, blas=False)

    def pack_task(i: int, scratch: dict) -> None:
        t0 = thread_time() if timing else 0.0
        pack_channels(x, chan, hsrc, wsrc, i * nb, min(s.n, (i + 1) * nb), xb)
        if timing:
            add_time(scratch, "im2col", thread_time() - t0)

    if not loop:
        run_tasks(pack_task, ceil(s.n / nb), workers, timings, t_start, small)
    cb = max(1, min(s.n, POINTWISE_BATCHED_COLUMNS // kept))
    cblocks = ceil(s.n / cb)
    kblocks = 1 if small or workers == 1 else max(1, min(s.k // 16, ceil(workers / cblocks)))
    kb = ceil(s.k / kblocks)
    kblocks = ceil(s.k / kb)
    if loop:
        _loop_job(batched_gemm_loop, (cblocks * kblocks, cb, kb, kblocks, w2, xb, out, bias,
                                      has_bias, relu, hk, wk, row_a, row_b, col_a, col_b, col_s2,
                                      kb * cb * kept), workers)
        return

    def gemm_task(i: int, scratch: dict) -> None:
        t0 = thread_time() if timing else 0.0
        b, j = divmod(i, kblocks)
        if "res" not in scratch:
            scratch["res"] = np.empty(kb * cb * kept, np.float32)
        batched_gemm(w2, xb, scratch["res"], out, b * cb, min(s.n, (b + 1) * cb), j * kb,
                     min(s.k, (j + 1) * kb), bias, has_bias, fused_relu, hk, wk, row_a, row_b,
                     col_a, col_b, col_s2)
        if timing:
            add_time(scratch, "gemm", thread_time() - t0)

    def region(i: int) -> tuple:
        b, j = divmod(i, kblocks)
        return b * cb, min(s.n, (b + 1) * cb), j * kb, min(s.k, (j + 1) * kb), 0, s.ho * s.wo

    run_tasks(relu_after(gemm_task, relu and not fused_relu, out, region, timing),
              cblocks * kblocks, workers, timings, thread_time() if timing else 0.0, small)


def _run_kept_rows(x, w2, out, s: ConvSpec, chan, krow, kcol, bias, has_bias, workers,
                   timings, t_start, relu) -> None:
    """Row perforation of fewer samples than threads (batch 1): blocks of each sample's
    kept rows (im2col + one GEMM into a shared result, tasks over samples x row blocks),
    then the output filled from it (tasks over samples x channel blocks). Chunks of
    whole samples left the other threads idle (KWS conv2 at batch 1: one thread)."""
    timing = timings is not None
    kept, row_a, row_b, cols, col_a, col_b, _ = _plan.output_plan(s.knob, s.ho, s.wo)
    hsrc = kept * s.sh - s.ph
    wsrc = cols * s.sw - s.pw
    hk, r_ = kept.shape[0], chan.shape[0]
    rows = ceil(hk / min(hk, KEPT_ROW_TASKS * workers // s.n))
    hblocks = ceil(hk / rows)
    res = np.empty((s.n, s.k, hk * s.wo), np.float32)
    if _as_loop_job(timing, workers):
        _loop_job(kept_rows_loop, (s.n * hblocks, hblocks, rows, x, chan, krow, kcol, hsrc, wsrc,
                                   w2, res, r_ * rows * s.wo), workers)
        _fill_from_kept(res, out, s, hk, s.wo, (row_a, row_b, col_a, col_b, -1), bias,
                        has_bias, KEPT_ROW_TASKS * workers // s.n, workers, timings, relu)
        return

    def rows_task(i: int, scratch: dict) -> None:
        t0 = thread_time() if timing else 0.0
        n, j = divmod(i, hblocks)
        if "cols" not in scratch:
            scratch["cols"] = np.empty(r_ * rows * s.wo, np.float32)
        kept_rows_gemm(x, n, chan, krow, kcol, hsrc[j * rows:(j + 1) * rows], wsrc, w2,
                       scratch["cols"], res[n], j * rows * s.wo)
        if timing:
            add_time(scratch, "gemm", thread_time() - t0)

    run_tasks(rows_task, s.n * hblocks, workers, timings, t_start, False)
    _fill_from_kept(res, out, s, hk, s.wo, (row_a, row_b, col_a, col_b, -1), bias, has_bias,
                    KEPT_ROW_TASKS * workers // s.n, workers, timings, relu)


def _fill_from_kept(res, out, s: ConvSpec, hk, wk, sources, bias, has_bias, tasks, workers,
                    timings, relu) -> None:
    """The second phase of the paths that compute a few samples' kept outputs into a
    shared ``res`` (N, K, hk*wk): the output filled from it (``_scatter.scatter``, fill
    ``sources`` = row_a, row_b, col_a, col_b, col_s2) with the bias, in about ``tasks``
    blocks of channels per sample, then ReLU; on the calling thread alone below
    ``FILL_PARALLEL_MIN_OUTPUTS``."""
    timing = timings is not None
    if s.n * s.k * s.ho * s.wo < FILL_PARALLEL_MIN_OUTPUTS:
        workers = tasks = 1
    kb = ceil(s.k / min(s.k, max(1, tasks)))
    kblocks = ceil(s.k / kb)
    if _as_loop_job(timing, workers):
        _loop_job(fill_loop, (s.n * kblocks, kb, kblocks, res, out, hk, wk, *sources, bias,
                              has_bias, relu), workers, blas=False)
        return

    def fill_task(i: int, scratch: dict) -> None:
        t0 = thread_time() if timing else 0.0
        n, j = divmod(i, kblocks)
        k0, k1 = j * kb, min(s.k, (j + 1) * kb)
        scatter(res[n, k0:k1], out, n, k0, hk, wk, *sources, bias, has_bias, False, False)
        if timing:
            add_time(scratch, "interp", thread_time() - t0)

    def region(i: int) -> tuple:
        n, j = divmod(i, kblocks)
        return n, n + 1, j * kb, min(s.k, (j + 1) * kb), 0, s.ho * s.wo

    # small=True: the fill calls no BLAS, so a lone thread sets no BLAS limit around it
    run_tasks(relu_after(fill_task, relu, out, region, timing), s.n * kblocks, workers, timings,
              thread_time() if timing else 0.0, True)


def _run_chunks(x, w2, out, s: ConvSpec, chan, krow, kcol, bias, has_bias, workers,
                timings, t_start, small, relu=False) -> None:
    """Per group, chunks of samples: reduced im2col -> one GEMM -> scatter into NCHW with
    the perforation's interpolation and the bias (``_gemm_task``)."""
    timing = timings is not None
    cg = s.c // s.groups
    rows, row_a, row_b, cols, col_a, col_b, col_s2 = _plan.output_plan(s.knob, s.ho, s.wo)
    geometry = (rows * s.sh - s.ph, row_a, row_b, cols * s.sw - s.pw, col_a, col_b, col_s2)
    kg = s.k // s.groups
    for g in range(s.groups):
        w2_g = w2[g * kg:(g + 1) * kg] if s.groups > 1 else w2
        chan_g = chan + g * cg if g else chan
        task, n_tasks, nb, sizes = _gemm_task(x, w2_g, out, s, g * kg, chan_g, krow, kcol,
                                              geometry, bias, has_bias, s.knob.is_fp16, timing,
                                              workers)
        if _as_loop_job(timing, workers):
            _loop_job(chunks_loop, (n_tasks, nb, x, chan_g, krow, kcol, geometry[0], geometry[3],
                                    w2_g, out, g * kg, *geometry[1:3], *geometry[4:], bias,
                                    has_bias, s.knob.is_fp16, *sizes, relu), workers)
            continue
        def region(i: int, _k0=g * kg, _nb=nb) -> tuple:
            return i * _nb, min(s.n, (i + 1) * _nb), _k0, _k0 + kg, 0, s.ho * s.wo

        run_tasks(relu_after(task, relu, out, region, timing), n_tasks, workers, timings, t_start,
                  small)
        t_start = thread_time() if timing else 0.0


def _strided_pointwise(s: ConvSpec, frozen: bool = True) -> str | None:
    """The ``_pointwise`` kernel for this call ("exact" | "sampling" | "gathered" | "tiles" |
    "plane_tiles" | "channel_tiles"; "dense" is chosen later), or None. ``frozen``: the
    weights are read-only (``_weights.immutable``), as the runtime passes them."""
    kn = s.knob
    plane = s.h * s.w
    pays = plane >= POINTWISE_MIN_PLANE or (
        plane >= POINTWISE_SMALL_MIN_PLANE and 4 * s.k * s.c <= POINTWISE_SMALL_MAX_WEIGHT_BYTES)
    if (s.groups != 1 or s.kh != 1 or s.kw != 1 or s.sh != 1 or s.sw != 1 or s.ph or s.pw
            or kn.is_fp16):
        return None
    if frozen and _channel_tile_plan(s) is not None:
        return "channel_tiles"
    if _plane_tile_code(s) >= 0:
        return "plane_tiles"
    if not pays:
        return None
    if kn.technique == "perforation":
        return "tiles" if _s2_tile_plan(s) is not None else "gathered"
    return kn.technique


def _channel_tile_plan(s: ConvSpec) -> tuple | None:
    """``(first, step, kept, src_a, src_b)`` of a 1x1 call (already known to be fp32,
    stride 1, unpadded) that ``_pointwise.pointwise_channel_tiles`` runs: exact, stride-2
    sampled or perforated (any stride), at most ``CHANNEL_TILES_MAX_SAMPLES`` samples (any
    number on maps of at most ``CHANNEL_TILES_ANY_BATCH_MAX_PLANE`` pixels) of maps whose
    computed pixels fill a channel tile, a multiple of 16 output channels; else None.
    Only read-only weights take them (see ``_strided_pointwise``): transposing writable
    ones on every call took longer than the GEMM it replaces (HAR pw13 at batch 1)."""
    kn = s.knob
    if not REGISTER_TILES or s.k % LANES or (s.n > CHANNEL_TILES_MAX_SAMPLES and s.ho * s.wo
                                              > CHANNEL_TILES_ANY_BATCH_MAX_PLANE):
        return None
    if kn.technique not in ("exact", "sampling", "perforation") or (
            kn.technique == "sampling" and kn.stride != 2):
        return None
    first, step = _tile_channels_of(kn)
    if first >= s.c:  # no input channel left to reduce over
        return None
    axis = kn.axis if kn.technique == "perforation" else None
    kept, src_a, src_b = _channel_plan(s.ho, s.wo, axis, kn.offset, kn.stride)
    return (first, step, kept, src_a, src_b) if kept.size in CHANNEL_PIXELS else None


@lru_cache(maxsize=64)
def _channel_plan(ho: int, wo: int, axis: str | None, offset: int, stride: int) -> tuple:
    """(kept plane positions, and the two kept values every output position is the mean
    of) of an ``ho x wo`` map perforated at ``stride`` along ``axis`` (None: every position
    kept), as int64 arrays (read-only: shared by every call)."""
    if axis is None:
        kept = first = second = list(range(ho * wo))
    else:
        kept, first, second = plane_lanes(ho, wo, axis, offset, stride)
    arrays = tuple(np.array(v, np.int64) for v in (kept, first, second))
    for a in arrays:
        a.flags.writeable = False
    return arrays


def _plane_tile_code(s: ConvSpec) -> int:
    """``_microkernel.plane_code`` of a stride-2 perforated, exact or stride-2 sampled fp32
    1x1 call of at least one tile's samples, else -1."""
    kn = s.knob
    if not REGISTER_TILES or kn.is_fp16 or (s.ho, s.wo) not in PLANE_SHAPES or (
            kn.technique != "exact" and kn.stride != 2):
        return -1
    if _tile_channels_of(kn)[0] >= s.c:  # no input channel kept
        return -1
    axis = kn.axis if kn.technique == "perforation" else None
    if s.n < plane_group(s.ho, s.wo, axis is None):
        return -1
    return plane_code(axis, kn.offset, s.ho, s.wo)


def _dense_tiles(s: ConvSpec, kept: int) -> tuple[int, int] | None:
    """``(first, step)`` of the input channels a ``_microkernel.dense_tile`` reduces over for
    an exact or stride-2 sampled 1x1 call (``kept`` of them) on planes of whole tiles, else
    None."""
    kn = s.knob
    if not REGISTER_TILES or (s.ho * s.wo) % TILE_OUTPUTS or kept < 1:
        return None
    if kn.technique == "exact" and not kn.is_fp16:
        return 0, 1
    if kn.technique == "sampling" and kn.stride == 2:
        return _tile_channels_of(kn)
    return None


def _tile_channels_of(kn) -> tuple[int, int]:
    """``(first, step)`` of the input channels a 1x1 tile reduces over under knob ``kn``
    (exact, perforated, or sampled at stride 2): all of them, or stride-2 sampling's one
    kept residue class (offset 0 skips the even ones)."""
    return (1 - kn.offset, 2) if kn.technique == "sampling" else (0, 1)


def _pointwise_weights(w, s: ConvSpec) -> np.ndarray:
    """The weights (K, reduced channels) of a 1x1 call: every input channel's, or under
    filter sampling its kept residue classes' (``_plan.channel_classes``), rescaled and
    packed once per ``w`` (see ``_weights``)."""
    w2 = np.ascontiguousarray(w).reshape(s.k, s.c)
    if s.knob.technique != "sampling":
        return w2
    st, off = s.knob.stride, s.knob.offset
    return packed(w, ("classes", st, off), lambda: gather_columns(
        w2, _plan.channel_classes(s.c, st, off), np.float32(st / (st - 1))))


def _s2_tile_plan(s: ConvSpec) -> tuple | None:
    """``_microkernel.tile_plan`` of a stride-2 perforated call, else None."""
    kn = s.knob
    if not REGISTER_TILES or kn.technique != "perforation" or kn.stride != 2:
        return None
    return tile_plan(kn.axis, kn.offset, s.ho, s.wo)


def _run_pointwise(x, w, out, s: ConvSpec, bias, has_bias, workers, timings, t_start,
                   small, relu: bool, kind: str) -> None:
    """1x1 stride-1 conv by GEMMs on strided views (``_pointwise``), tasks over blocks of
    samples and of output channels; ``kind``: :func:`_strided_pointwise` of the call."""
    kn = s.knob
    if kind == "plane_tiles":
        _run_plane_tiles(x, w, out, s, bias, has_bias, workers, timings, t_start, small, relu)
        return
    kind, w2, extra = _pointwise_operands(w, s, kind)
    if kind == "gathered":
        hsrc, row_a, row_b, wsrc, col_a, col_b, col_s2 = _plan.output_plan(s.knob, s.ho, s.wo)
        kept_px = hsrc.shape[0] * wsrc.shape[0]
    nb, n_blocks, kb, kblocks = blocks(s.n, s.k, workers, small)
    if kind == "channel_tiles":  # whole main tiles per task: each starts on a panel
        main = channel_tile_width(extra[2].size)
        kb = ceil(kb / main) * main
        kblocks = ceil(s.k / kb)
    if kind == "gathered":  # samples per GEMM: wide enough, buffers in cache
        row_gemms = kn.axis == "row" and takes_row_gemms(s, kb)
        m = 0 if row_gemms else max(1, min(nb, ceil(POINTWISE_GEMM_WIDTH / kept_px),
                                           POINTWISE_BUFFER_BYTES // (4 * (s.c + kb) * kept_px)))
    timing = timings is not None
    fused = relu and not timing  # timed, the ReLU is a pass of its own, clocked as "interp"
    # timed, a ReLU pass re-reads the output: streamed, from memory, unlike the fused call
    stream = not (timing and relu) and _streams(out, kind, kn)
    if _as_loop_job(timing, workers):
        n_tasks, common = n_blocks * kblocks, (nb, kb, kblocks, x, w2, out)
        if kind == "dense":
            _loop_job(pointwise_dense_tiles_loop, (n_tasks, *common, *extra, bias, relu,
                                                   stream), workers, blas=False)
        elif kind == "channel_tiles":
            _loop_job(pointwise_channel_tiles_loop, (n_tasks, *common, *extra, bias, relu),
                      workers, blas=False)
        elif kind == "exact":
            _loop_job(pointwise_exact_loop, (n_tasks, *common, bias, has_bias, relu), workers)
        elif kind == "sampling":
            _loop_job(pointwise_sampled_loop, (n_tasks, *common, *extra, bias, has_bias,
                                               relu), workers)
        elif kind == "tiles":
            _loop_job(pointwise_s2_tiles_loop, (n_tasks, *common, *extra, bias, relu, stream),
                      workers, blas=False)
        else:
            _loop_job(pointwise_gathered_loop, (
                n_tasks, *common, hsrc, wsrc, row_a, row_b, col_a, col_b, col_s2, bias,
                has_bias, s.c * m * kept_px, kb * m * kept_px, relu, row_gemms), workers)
        return

    def task(i: int, scratch: dict) -> None:
        t0 = thread_time() if timing else 0.0
        b, j = divmod(i, kblocks)
        n0, n1 = b * nb, min(s.n, (b + 1) * nb)
        k0, k1 = j * kb, min(s.k, (j + 1) * kb)
        if kind == "dense":
            pointwise_dense_tiles(x, w2, out, n0, n1, k0, k1, *extra, bias, fused, stream)
        elif kind == "channel_tiles":
            pointwise_channel_tiles(x, w2, out, n0, n1, k0, k1, *extra, bias, fused)
        elif kind == "exact":
            pointwise_exact(x, w2, out, n0, n1, k0, k1, bias, has_bias, fused)
        elif kind == "sampling":
            pointwise_sampled(x, w2, out, n0, n1, k0, k1, *extra, bias, has_bias, fused)
        elif kind == "tiles":
            if "carry" not in scratch:
                scratch["carry"] = aligned_empty((kb * TILE_OUTPUTS,))
            pointwise_s2_tiles(x, w2, out, n0, n1, k0, k1, *extra, bias, fused, stream,
                               scratch["carry"])
        else:
            if "xbuf" not in scratch:
                scratch["xbuf"] = np.empty(s.c * m * kept_px, np.float32)
                scratch["rbuf"] = np.empty(kb * m * kept_px, np.float32)
            pointwise_gathered(x, w2, out, n0, n1, k0, k1, hsrc, wsrc, row_a, row_b, col_a,
                               col_b, col_s2, bias, has_bias, scratch["xbuf"], scratch["rbuf"],
                               fused, row_gemms)
        if timing:
            add_time(scratch, "gemm", thread_time() - t0)

    run_tasks(relu_after(task, relu and timing, out, block_region(s, nb, kb, kblocks)),
              n_blocks * kblocks, workers, timings, t_start, small)


def _pointwise_operands(w, s: ConvSpec, kind: str) -> tuple[str, np.ndarray, tuple]:
    """``(kind, weights, kernel arguments)`` of a 1x1 call of :func:`_strided_pointwise`
    ``kind`` (not "plane_tiles"): "dense" where dense tiles take it; the weights (K, C) as
    the kernel reads them (sampled: the kept channels; tiles: transposed); the arguments
    the kernel takes after its output block: dense / channel tiles their channels and
    plan, row / column tiles theirs, sampling its stride and offset, others none."""
    kn = s.knob
    w2 = _pointwise_weights(w, s)
    dense = None if kind == "channel_tiles" else _dense_tiles(s, w2.shape[1])
    if dense is not None:
        return "dense", _tile_weights(w, w2, s), dense
    if kind == "channel_tiles":
        plan = _channel_tile_plan(s)
        return kind, _channel_panels(w, w2, s, plan[2].size), plan
    if kind == "tiles":
        return kind, _tile_weights(w, w2, s), (kn.axis == "row", kn.offset, *_s2_tile_plan(s))
    if kind == "sampling":
        return kind, w2, (kn.stride, kn.offset)
    return kind, w2, ()


def _channel_panels(w, w2, s: ConvSpec, pixels: int) -> np.ndarray:
    """The weights ``w2`` (K, reduced channels) of a call as the channel tiles of ``pixels``
    pixels read them (``_pointwise.channel_panels``); packed once per ``w``, channel class
    and tile width (see ``_weights``)."""
    kn = s.knob
    key = ("channel panels", pixels) + ((kn.stride, kn.offset) if kn.technique == "sampling"
                                        else ())
    return packed(w, key, lambda: channel_panels(w2, pixels))


def _tile_weights(w, w2, s: ConvSpec) -> np.ndarray:
    """The weights ``w2`` (K, reduced channels) of a call as the ``_microkernel`` tiles read
    them, transposed; packed once per ``w`` and channel class (see ``_weights``)."""
    kn = s.knob
    key = ("tiles", kn.stride, kn.offset) if kn.technique == "sampling" else ("tiles",)
    return packed(w, key, lambda: np.ascontiguousarray(w2.T))


def _plane_operands(w, s: ConvSpec) -> tuple[np.ndarray, int, int, int, int]:
    """``(transposed weights, plane code, samples a tile, first input channel, channel
    step)`` of a plane-tile call: under stride-2 sampling, the kept residue class of input
    channels, its weights rescaled."""
    kn = s.knob
    w2 = _pointwise_weights(w, s)
    return (_tile_weights(w, w2, s), _plane_tile_code(s),
            plane_group(s.ho, s.wo, kn.technique != "perforation"), *_tile_channels_of(kn))


def _run_plane_tiles(x, w, out, s: ConvSpec, bias, has_bias, workers, timings, t_start,
                     small, relu) -> None:
    """Stride-2 perforated 1x1 conv on small maps by ``_microkernel`` plane tiles, tasks over
    blocks of whole tiles' samples x blocks of output channels; the samples left over (fewer
    than a tile's) by the path the call would take without the tiles."""
    wt, code, group, first, step = _plane_operands(w, s)
    n_main = s.n // group * group
    nb, n_blocks, kb, kblocks = blocks(n_main // group, s.k, workers, small)
    nb *= group
    timing = timings is not None
    fused = relu and not timing  # timed, the ReLU is a pass of its own, clocked as "interp"
    if _as_loop_job(timing, workers):
        _loop_job(pointwise_plane_tiles_loop, (n_blocks * kblocks, nb, kb, kblocks, n_main, x,
                                               wt, out, code, group, first, step, bias, relu),
                  workers, blas=False)
    else:
        def task(i: int, scratch: dict) -> None:
            t0 = thread_time() if timing else 0.0
            b, j = divmod(i, kblocks)
            pointwise_plane_tiles(x, wt, out, b * nb, min(n_main, (b + 1) * nb), j * kb,
                                  min(s.k, (j + 1) * kb), code, group, first, step, bias,
                                  fused)
            if timing:
                add_time(scratch, "gemm", thread_time() - t0)

        def region(i: int) -> tuple:
            b, j = divmod(i, kblocks)
            return (b * nb, min(n_main, (b + 1) * nb), j * kb, min(s.k, (j + 1) * kb), 0,
                    s.ho * s.wo)

        run_tasks(relu_after(task, relu and timing, out, region), n_blocks * kblocks, workers,
                  timings, t_start, small)
    if n_main < s.n:
        out[n_main:] = conv2d(x[n_main:], w, bias if has_bias else None, knob=s.knob.id,
                              timings=timings, relu=relu)


def _as_loop_job(timing: bool, workers: int) -> bool:
    """Whether a call runs as a loop job: untimed, on several threads, loop jobs on."""
    return LOOP_JOBS and not timing and workers > 1


def _loop_job(loop, args: tuple, workers: int, blas: bool = True) -> None:
    """``loop`` (a ``_loops`` function; ``args`` from its ``n_tasks`` on) as a loop job of
    the kernel workers; with ``blas`` (its tasks call it), their BLAS on one thread each."""
    n_tasks, *rest = args
    with _threads.single_threaded_blas() if blas else contextlib.nullcontext():
        _pool.shared_pool().run_loop(loop, n_tasks, tuple(rest), workers)


def _run_rowblocks(x, w2, out, s: ConvSpec, chan, krow, kcol, bias, has_bias, workers,
                   timings, t_start, small, relu=False) -> None:
    """Unperforated (or column-perforated) conv by blocks of output rows of one sample:
    im2col of the block (of its kept columns), sized to stay in cache, then one GEMM
    straight into the output (or into a buffer that fills the block's rows while in
    cache). Blocks are also what spreads a single sample over several threads."""
    r_ = chan.shape[0]
    hsrc = np.arange(s.ho, dtype=np.int64) * s.sh - s.ph
    _, _, _, cols, col_a, col_b, col_s2 = _plan.output_plan(s.knob, s.ho, s.wo)
    wsrc = cols * s.sw - s.pw
    wk = wsrc.shape[0]
    perforated = wk < s.wo
    if perforated:
        rows = max(1, min(s.ho, COLUMN_BLOCK_COLUMNS // wk))
    else:
        rows = max(1, min(s.ho, CHUNK_BYTES // (4 * max(1, r_) * s.wo)))
    phases = perforated and col_s2 >= 0 and s.sw == 1  # kept input columns 2 apart
    if not small and workers > 1:
        rows = min(rows, max(1, ceil(s.ho / ceil(TASKS_PER_WORKER * workers / s.n))))
    per_sample = ceil(s.ho / rows)
    timing = timings is not None
    sizes = (r_ * rows * wk, s.k * rows * wk if perforated else 0,
             s.c * s.h * 2 * ((s.w + 1) // 2) if phases else 0)  # cols, res, xph
    if _as_loop_job(timing, workers):
        _loop_job(rowblock_loop, (s.n * per_sample, rows, per_sample, x, chan, krow, kcol, hsrc,
                                  wsrc, w2, out, col_a, col_b, col_s2, bias, has_bias, *sizes,
                                  perforated, relu), workers)
        return

    def task(i: int, scratch: dict) -> None:
        n, j = divmod(i, per_sample)
        r0, r1 = j * rows, min(s.ho, (j + 1) * rows)
        if "cols" not in scratch:
            scratch["cols"], scratch["res"], scratch["xph"] = (
                np.empty(size, np.float32) for size in sizes)
        if not timing:
            if perforated:
                rowblock_columns_chunk(x, n, r0, r1, chan, krow, kcol, hsrc, wsrc, w2,
                                       scratch["cols"], scratch["res"], out, col_a, col_b,
                                       col_s2, bias, has_bias, scratch["xph"])
            else:
                rowblock_chunk(x, n, r0, r1, chan, krow, kcol, hsrc, wsrc, w2,
                               scratch["cols"], out, bias, has_bias)
            return
        t0 = thread_time()
        width = (r1 - r0) * wk
        cols = scratch["cols"][:r_ * width].reshape(r_, width)
        if phases:
            split_padded_column_phases(x, n, 0, 0, 0, s.h, (s.w + 1) // 2, scratch["xph"])
            im2col_column_phases(scratch["xph"], s.h, s.w, chan, krow, kcol, hsrc[r0:r1],
                                 int(wsrc[0]), wk, cols)
        else:
            im2col(x, n, 1, chan, krow, kcol, hsrc[r0:r1], wsrc, cols)
        t1 = thread_time()
        if perforated:
            res = scratch["res"][:s.k * width].reshape(s.k, width)
            matmul_into(w2, cols, res)
            t2 = thread_time()
            fill_column_rows(res, out, n, r0, r1, col_a, col_b, col_s2, bias, has_bias)
            add_time(scratch, "interp", thread_time() - t2)
        else:
            rowblock_gemm(scratch["cols"], w2, out, n, r0, r1, bias, has_bias)
            t2 = thread_time()
        add_time(scratch, "im2col", t1 - t0)
        add_time(scratch, "gemm", t2 - t1)

    def region(i: int) -> tuple:
        n, j = divmod(i, per_sample)
        return n, n + 1, 0, s.k, j * rows * s.wo, min(s.ho, (j + 1) * rows) * s.wo

    run_tasks(relu_after(task, relu, out, region, timing), s.n * per_sample, workers, timings,
              t_start, small)


def _larger_conv_tiles(s: ConvSpec) -> bool:
    """What the tap and phase tiles both need: register tiles on, fp32, a stride-1 conv
    with ``groups == 1`` and a kernel larger than 1x1 (1x1 convs have their own tiles)."""
    return (REGISTER_TILES and not s.knob.is_fp16 and s.groups == 1 and s.sh == s.sw == 1
            and s.kh * s.kw > 1)


def _phase_tiles_apply(s: ConvSpec) -> bool:
    """Whether a call runs as ``_phase_tiles``: :func:`_larger_conv_tiles`, stride-2 column
    perforation, output rows of 16 kept values (``_microkernel.phase_tile_applies``)."""
    kn = s.knob
    return (_larger_conv_tiles(s) and kn.technique == "perforation" and kn.axis == "col"
            and kn.stride == 2 and phase_tile_applies(kn.offset, s.ho, s.wo))


def _phase_operands(w, s: ConvSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(transposed weights (C*KH*KW, K), tap offsets)`` of a phase-tile call."""
    wt = _tile_weights(w, np.ascontiguousarray(w).reshape(s.k, -1), s)
    return wt, phase_offsets(s.c, s.kh, s.kw, s.h + 2 * s.ph, phase_half(s.w, s.pw), s.wo,
                             s.knob.offset)


def _run_phase_tiles(x, w, out, s: ConvSpec, bias, has_bias, workers, timings, t_start,
                     small, relu=False) -> None:
    """Stride-2 column perforation by ``_phase_tiles``: tasks over blocks of samples, all
    their rows; with fewer samples than ``TASKS_PER_WORKER`` per thread, over blocks of
    each sample's output rows (an even number a block), each task splitting the input rows
    its block reads into column phases."""
    wt, toff = _phase_operands(w, s)
    nb, rows = batch_chunk(s.n, s.n, workers), s.ho
    if not small and workers > 1 and s.n < TASKS_PER_WORKER * workers:
        nb = 1
        rows = 2 * ceil(s.ho / (2 * ceil(TASKS_PER_WORKER * workers / s.n)))
    per_sample = ceil(s.ho / rows)
    n_tasks = ceil(s.n / nb) * per_sample
    size = phase_buffer_size(s.c, s.h, s.w, s.ph, s.pw)
    timing = timings is not None
    if _as_loop_job(timing, workers):
        _loop_job(phase_tiles_loop, (n_tasks, nb, rows, per_sample, x, wt, out, toff, s.kh,
                                     s.ph, s.pw, s.knob.offset, bias, relu, size), workers,
                  blas=False)
        return
    fused = relu and not timing  # timed, the ReLU is a pass of its own, clocked as "interp"

    def region(i: int) -> tuple:
        b, j = divmod(i, per_sample)
        return (b * nb, min(s.n, (b + 1) * nb), 0, s.k, j * rows * s.wo,
                min(s.ho, (j + 1) * rows) * s.wo)

    def task(i: int, scratch: dict) -> None:
        t0 = thread_time() if timing else 0.0
        if "xph" not in scratch:
            scratch["xph"] = np.empty(size, np.float32)
        n0, n1, _, _, p0, p1 = region(i)
        phase_tiles(x, wt, out, n0, n1, p0 // s.wo, p1 // s.wo, toff, s.kh, s.ph, s.pw,
                    s.knob.offset, bias, fused, scratch["xph"])
        if timing:
            add_time(scratch, "gemm", thread_time() - t0)

    run_tasks(relu_after(task, relu and timing, out, region), n_tasks, workers, timings,
              t_start, small)


def _tap_tile_rows(s: ConvSpec) -> bool | None:
    """Whether a call runs as ``_tap_tiles`` row-perforated (True) or exact / sampled
    (False), or not at all (None): :func:`_larger_conv_tiles`, 32-wide output rows, exact,
    filter sampling, or stride-2 row perforation."""
    kn = s.knob
    if not _larger_conv_tiles(s) or s.wo != TAP_WIDTH:
        return None
    if kn.technique != "perforation":
        return False
    if kn.axis != "row" or kn.stride != 2 or tile_plan("row", kn.offset, s.ho, s.wo) is None:
        return None
    return True


_NO_TILES = np.zeros(0, np.int64)


def _tap_operands(w, s: ConvSpec) -> tuple:
    """``(transposed weights, tap offsets, rows, tile starts, tile flags)`` of a tap-tile
    call: the kept taps of filter sampling and their weights rescaled; the row tiles'
    starts and flags under row perforation (else empty)."""
    kn = s.knob
    samp = (kn.stride, kn.offset) if kn.technique == "sampling" else (1, 0)
    w2 = np.ascontiguousarray(w).reshape(s.k, -1)
    if kn.technique == "sampling":
        w2 = packed(w, ("taps", *samp), lambda w2=w2: gather_columns(
            w2, _plan.reduction_plan(s.c, s.kh, s.kw, *samp)[0],
            np.float32(kn.stride / (kn.stride - 1))))
    rows = bool(_tap_tile_rows(s))
    d0, flags = tile_plan("row", kn.offset, s.ho, s.wo)[1:3] if rows else (_NO_TILES,
                                                                          _NO_TILES)
    toff = tap_offsets(s.c, s.kh, s.kw, s.h + 2 * s.ph, s.w + 2 * s.pw, *samp)
    return _tile_weights(w, w2, s), toff, rows, d0, flags


def _run_tap_tiles(x, w, out, s: ConvSpec, bias, has_bias, workers, timings, t_start,
                   small, relu=False) -> None:
    """Exact, sampled or stride-2 row-perforated stride-1 conv with 32-wide output rows by
    ``_tap_tiles``: tasks over blocks of samples x blocks of output channels, each task
    padding its samples' input."""
    wt, toff, rows, d0, flags = _tap_operands(w, s)
    nb, n_blocks, kb, kblocks = blocks(s.n, s.k, workers, small)
    size = pad_buffer_size(s.c, s.h, s.w, s.ph, s.pw)
    timing = timings is not None
    if _as_loop_job(timing, workers):
        _loop_job(tap_tiles_loop, (n_blocks * kblocks, nb, kb, kblocks, x, wt, out, toff, s.ph,
                                   s.pw, rows, d0, flags, bias, relu, size), workers, blas=False)
        return
    fused = relu and not timing  # timed, the ReLU is a pass of its own, clocked as "interp"
    region = block_region(s, nb, kb, kblocks)

    def task(i: int, scratch: dict) -> None:
        t0 = thread_time() if timing else 0.0
        if "xpad" not in scratch:
            scratch["xpad"] = np.empty(size, np.float32)
            scratch["carry"] = aligned_empty((kb * TAP_WIDTH,))
        n0, n1, k0, k1, _, _ = region(i)
        tap_tiles(x, wt, out, n0, n1, k0, k1, toff, s.ph, s.pw, rows, d0, flags, bias, fused,
                  scratch["xpad"], scratch["carry"])
        if timing:
            add_time(scratch, "gemm", thread_time() - t0)

    run_tasks(relu_after(task, relu and timing, out, region), n_blocks * kblocks, workers,
              timings, t_start, small)


def _wide_applies(s: ConvSpec) -> bool:
    kn = s.knob
    if (s.groups != 1 or kn.is_fp16 or s.sh != 1 or s.sw != 1 or s.ph or s.pw or s.kh < 2
            or s.c * s.kw < WIDE_MIN_REDUCTION or s.ho * s.wo < ROWBLOCK_MIN_PLANE):
        return False
    if kn.technique == "sampling":
        return s.kw % kn.stride == 0  # then (kh*kw) % stride == 0 too: column-only pattern
    return kn.technique == "exact"


def _shifted_perforation(s: ConvSpec) -> int | None:
    """For a stride-2 perforation of a conv that takes column-shifted rows when exact: the
    parity of the kept output rows (-1: columns perforated, every row kept), else None."""
    kn = s.knob
    if (kn.technique != "perforation" or kn.stride != 2 or s.groups != 1 or kn.is_fp16
            or s.sh != 1 or s.sw != 1 or s.ph or s.pw or s.kh < 2
            or s.c * s.kw < WIDE_MIN_REDUCTION or s.ho * s.wo < ROWBLOCK_MIN_PLANE):
        return None
    if kn.axis == "col":
        return -1
    kept = _plan.axis_plan(s.ho, 2, kn.offset)[0]
    parity = int(kept[0] % 2)
    return parity if np.array_equal(kept, np.arange(parity, s.ho, 2)) else None


def _run_shifted_perforated(x, w, out, s: ConvSpec, bias, has_bias, workers, timings,
                            t_start, small, relu=False) -> None:
    """Stride-2 row / column perforation on column-shifted rows (``_wide``): the kept
    outputs by KH GEMMs, then filled into the output (``_scatter.scatter``). Many samples:
    a task per sample. Fewer than ``WIDE_ROW_SPLIT_SAMPLES`` per thread: tasks over blocks
    of each sample's kept rows into a shared result, then the fill by blocks of channels
    (:func:`_fill_from_kept`); split by channels, every task had built the whole ``P`` of
    its sample and run GEMMs half as tall."""
    parity = _shifted_perforation(s)
    pc, pj, wr = _shifted_rows_weights(w, s)
    _, row_a, row_b, wsrc, col_a, col_b, col_s2 = _plan.output_plan(s.knob, s.ho, s.wo)
    sources = (row_a, row_b, col_a, col_b, col_s2)
    hk = (s.ho - parity + 1) // 2 if parity >= 0 else s.ho
    wk = wsrc.shape[0]
    step = 2 if parity >= 0 else 1  # input rows per kept row
    timing = timings is not None
    if small or workers == 1 or s.n >= WIDE_ROW_SPLIT_SAMPLES * workers:
        rows = hk
    else:
        rows = ceil(hk / min(hk, ceil(WIDE_ROW_TASKS * workers / s.n)))
    hblocks = ceil(hk / rows)
    pbuf_size = pc.shape[0] * (step * (rows - 1) + s.kh) * wk
    if _as_loop_job(timing, workers):
        res = np.empty((s.n if hblocks > 1 else 0, s.k, hk * wk), np.float32)
        _loop_job(shifted_loop, (s.n * hblocks, hblocks, rows, hk, x, wr, pc, pj, parity, wsrc,
                                 res, out, *sources, bias, has_bias, pbuf_size, relu), workers)
        if hblocks > 1:
            _fill_from_kept(res, out, s, hk, wk, sources, bias, has_bias,
                            WIDE_ROW_TASKS * workers // s.n, workers, timings, relu)
        return
    res = np.empty((s.n, s.k, hk * wk), np.float32) if hblocks > 1 else None

    def gemm_task(i: int, scratch: dict) -> None:
        t0 = thread_time() if timing else 0.0
        n, h = divmod(i, hblocks)
        m0, m1 = h * rows, min(hk, (h + 1) * rows)
        if "p" not in scratch:
            scratch["p"] = np.empty(pbuf_size, np.float32)
            scratch["res"] = np.empty(s.k * hk * wk, np.float32) if res is None else None
        out_block = res[n].reshape(-1) if res is not None else scratch["res"]
        shifted_perforated_conv(x, wr, pc, pj, n, 0, s.k, m0, m1, parity, wsrc, scratch["p"],
                                out_block, hk * wk)
        t1 = thread_time() if timing else 0.0
        if res is None:
            scatter(out_block.reshape(s.k, hk * wk), out, n, 0, hk, wk, *sources, bias,
                    has_bias, False, False)
        if timing:
            add_time(scratch, "gemm", t1 - t0)
            add_time(scratch, "interp", thread_time() - t1)

    if res is None:
        run_tasks(relu_after(gemm_task, relu, out, lambda i: (i, i + 1, 0, s.k, 0, s.ho * s.wo),
                             timing), s.n, workers, timings, t_start, small)
        return
    run_tasks(gemm_task, s.n * hblocks, workers, timings, t_start, small)
    _fill_from_kept(res, out, s, hk, wk, sources, bias, has_bias, WIDE_ROW_TASKS * workers // s.n,
                    workers, timings, relu)


def _shifted_rows_weights(w, s: ConvSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pc, pj, wr)`` of the column-shifted-rows paths (``_wide``): the input channel and
    kernel column of each row of ``P``, and the weights (KH, K, rows of ``P``). Filter
    sampling (a column-only pattern) keeps only its rows, rescaled; any other knob all."""
    kn = s.knob
    pc, pj = np.divmod(np.arange(s.c * s.kw, dtype=np.int64), s.kw)
    keep = None
    if kn.technique == "sampling":
        keep = pj % kn.stride != (kn.offset + pc) % kn.stride
        pc, pj = pc[keep], pj[keep]

    def row_weights() -> np.ndarray:
        wr = np.ascontiguousarray(w).transpose(2, 0, 1, 3).reshape(s.kh, s.k, s.c * s.kw)
        if keep is not None:
            wr = wr[:, :, keep] * np.float32(kn.stride / (kn.stride - 1))
        return np.ascontiguousarray(wr, dtype=np.float32)

    return pc, pj, packed(w, ("rows", (kn.stride, kn.offset) if keep is not None else None),
                          row_weights)


def _run_wide(x, w, out, s: ConvSpec, bias, has_bias, workers, timings, t_start,
              small, relu=False) -> None:
    """Stride-1 unpadded conv as KH accumulated GEMMs on column-shifted rows (``_wide``)."""
    pc, pj, wr = _shifted_rows_weights(w, s)
    if small or workers == 1 or s.n >= WIDE_ROW_SPLIT_SAMPLES * workers:
        nb, n_blocks, kb, kblocks = blocks(s.n, s.k, workers, small)
        rows = s.ho
    else:  # few samples: split each one's output rows, every task all the channels
        nb, n_blocks, kb, kblocks = 1, s.n, s.k, 1
        rows = ceil(s.ho / min(s.ho, ceil(WIDE_ROW_TASKS * workers / s.n)))
    hblocks = ceil(s.ho / rows)
    timing = timings is not None
    pbuf_size, abuf_size = pc.shape[0] * (rows + s.kh - 1) * s.wo, kb * rows * s.wo
    if _as_loop_job(timing, workers):
        _loop_job(wide_loop, (n_blocks * kblocks * hblocks, nb, kb, kblocks, rows, hblocks, x,
                              wr, pc, pj, out, bias, has_bias, pbuf_size, abuf_size, relu),
                  workers)
        return

    def region(i: int) -> tuple:
        """Task -> its output block (n0, n1, k0, k1, first pixel, end pixel)."""
        b, rest = divmod(i, kblocks * hblocks)
        j, h = divmod(rest, hblocks)
        return (b * nb, min(s.n, (b + 1) * nb), j * kb, min(s.k, (j + 1) * kb),
                h * rows * s.wo, min(s.ho, (h + 1) * rows) * s.wo)

    def task(i: int, scratch: dict) -> None:
        t0 = thread_time() if timing else 0.0
        n0, n1, k0, k1, p0, p1 = region(i)
        if "p" not in scratch:
            scratch["p"] = np.empty(pbuf_size, np.float32)
            scratch["acc"] = np.empty(abuf_size, np.float32)
        wide_conv(x, wr, pc, pj, out, n0, n1, k0, k1, p0 // s.wo, p1 // s.wo, bias, has_bias,
                  scratch["p"], scratch["acc"])
        if timing:
            add_time(scratch, "gemm", thread_time() - t0)

    run_tasks(relu_after(task, relu, out, region, timing), n_blocks * kblocks * hblocks, workers,
              timings, t_start, small)


def _run_depthwise(x, w, out, s: ConvSpec, bias, has_bias, workers, timings, t_start,
                   small, relu=False) -> None:
    """Depthwise conv by stride phases (``_direct.depthwise_phases``), tasks over blocks of
    samples and of channels."""
    w = np.ascontiguousarray(w)
    nb, n_blocks, kb, kblocks = blocks(s.n, s.k, workers, small)
    size = depthwise_buffer_size(s.h, s.w, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw)
    timing = timings is not None
    if _as_loop_job(timing, workers):
        _loop_job(depthwise_phases_loop, (
            n_blocks * kblocks, nb, kb, kblocks, size, x, w, out, s.sh, s.sw, s.ph, s.pw,
            bias, has_bias, relu), workers, blas=False)
        return

    def task(i: int, scratch: dict) -> None:
        t0 = thread_time() if timing else 0.0
        b, j = divmod(i, kblocks)
        if "phases" not in scratch:
            scratch["phases"] = np.zeros(size, np.float32)
        depthwise_phases(x, w, out, b * nb, min(s.n, (b + 1) * nb), j * kb,
                         min(s.k, (j + 1) * kb), s.sh, s.sw, s.ph, s.pw, bias, has_bias,
                         scratch["phases"], relu and not timing)
        if timing:
            add_time(scratch, "direct", thread_time() - t0)

    # timed, the ReLU is a pass of its own, clocked as "interp" like every other path's
    run_tasks(relu_after(task, relu and timing, out, block_region(s, nb, kb, kblocks)),
              n_blocks * kblocks, workers, timings, t_start, small)


def conv2d_breakdown(x, w, b=None, **kwargs) -> tuple[np.ndarray, dict[str, float]]:
    """:func:`conv2d` plus the seconds it spent per phase (keys of ``PHASES``, zeros included)."""
    acc = dict.fromkeys(PHASES, 0.0)
    return conv2d(x, w, b, timings=acc, **kwargs), acc


def _gemm_task(x, w2, out, s: ConvSpec, k0, chan, krow, kcol, geometry, bias, has_bias, fp16,
               timing, workers):
    """``(task, n_tasks, samples per task, (cols, res) buffer sizes)`` computing output
    channels ``k0 .. k0+len(w2)`` by chunks: reduced im2col + GEMM + scatter."""
    hsrc, row_a, row_b, wsrc, col_a, col_b, col_s2 = geometry
    r_, kc = chan.shape[0], w2.shape[0]
    hk, wk = hsrc.shape[0], wsrc.shape[0]
    plane = hk * wk
    fit = CHUNK_BYTES // (4 * (r_ + kc) * plane)
    if plane < s.ho * s.wo:  # perforated: the chunk's output is written too, keep it small
        fit = min(fit, max(1, PERFORATED_CHUNK_COLUMNS // plane))
    nb = batch_chunk(s.n, fit, workers)
    direct_out = nb == 1 and hk == s.ho and wk == s.wo

    sizes = (r_ * nb * plane, 0 if direct_out else kc * nb * plane)  # cols, res

    def task(i: int, scratch: dict) -> None:
        n0 = i * nb
        m = min(nb, s.n - n0)
        if "cols" not in scratch:
            scratch["cols"], scratch["res"] = (np.empty(size, np.float32) for size in sizes)
        if not timing:  # the whole chunk in one nogil call
            gemm_chunk(x, n0, m, chan, krow, kcol, hsrc, wsrc, w2, scratch["cols"],
                       scratch["res"], out, k0, row_a, row_b, col_a, col_b, col_s2, bias,
                       has_bias, fp16)
            return
        t0 = thread_time()
        patches = scratch["cols"][:r_ * m * plane].reshape(r_, m * plane)
        im2col(x, n0, m, chan, krow, kcol, hsrc, wsrc, patches)
        t1 = thread_time()
        if direct_out:
            matmul_into(w2, patches, out[n0, k0:k0 + kc].reshape(kc, plane))
            t2 = thread_time()
            if has_bias or fp16:
                finish(out, n0, n0 + 1, k0, k0 + kc, bias, has_bias, fp16)
        else:
            res = scratch["res"][:kc * m * plane].reshape(kc, m * plane)
            matmul_into(w2, patches, res)
            t2 = thread_time()
            scatter(res, out, n0, k0, hk, wk, row_a, row_b, col_a, col_b, col_s2, bias,
                    has_bias, fp16, False)
        t3 = thread_time()
        add_time(scratch, "im2col", t1 - t0)
        add_time(scratch, "gemm", t2 - t1)
        add_time(scratch, "interp", t3 - t2)

    return task, ceil(s.n / nb), nb, sizes
