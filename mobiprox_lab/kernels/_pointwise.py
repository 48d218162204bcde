"""1x1, stride-1, unpadded convolutions (the MobileNet's pointwise layers) without im2col.

A 1x1 convolution of one sample is one GEMM, ``out[n] (K, H*W) = w (K, C) @ x[n] (C, H*W)``.
The approximations are GEMMs on strided views of the same operands, written straight
into the output, so nothing is gathered and the output is written once, while the
sample's planes are still in cache:

* on AVX-512 CPUs, exact and stride-2 sampled convs on planes of whole 32-output tiles
  run as ``_microkernel`` dense tiles (:func:`pointwise_dense_tiles`): 12 output channels
  x 32 outputs accumulated in registers over the (kept) input channels, read in place,
  and stored once with the bias and ReLU. Side by side with the GEMMs below (HAR width 1,
  batch 64, ``benchmarks/tiles.py``, Emerald Rapids), exact ran 1.1-1.55x faster on one thread and
  1.1-1.4x on two on the 8x8 to 32x32 layers; it is the baseline every approximation's
  speedup is measured against, so the faster exact makes those speedups smaller, and true;
* filter sampling skips the input channels ``c % s == offset`` (1x1 kernels are always
  "irregular", ``approximations.md``): the kept channels are ``s - 1`` residue classes,
  each a strided view ``x[n, r::s]`` (leading dimension ``s*H*W``); one GEMM per class,
  accumulated (``beta = 1``) in the output;
* stride-2 perforation of rows or columns on the maps ``_microkernel.tile_plan`` covers
  (:func:`pointwise_s2_tiles`): register tiles that compute 32 kept outputs of 12 output
  channels from the input in place and store them with the filled ones and the bias and
  ReLU, tile by tile, so the output is written once and while the next tile computes
  (one thread, batch 64, the HAR MobileNet's 4x4 to 32x32 layers: 1.6-2.3x over exact,
  against 1.0-1.5x through a BLAS GEMM and a fill pass, ``benchmarks/tiles.py``);
* other row perforation of a layer with enough work per output row (``_conv`` decides): one
  GEMM per kept row, straight from the input row into the output row (the plane as
  leading dimension), then the skipped rows filled in place from their neighbours while
  the sample's output is in cache. On the HAR MobileNet's 8x8 and 16x16 layers with
  >= 64 input channels this measured faster than the gathered GEMM below (64 -> 128 on
  16x16: 1.96x over exact against 1.50x, whose separate fill pass is not hidden behind
  the GEMM); on few input channels (32) the many small GEMMs cost more than the gather;
* other perforation copies the kept pixels of a few samples into a small buffer, runs
  one GEMM into another and fills the samples' output from it (``_scatter``) while both
  are in cache.

A task is a block of output channels of a block of samples, so that a single sample
still spreads over several threads. A fused ReLU (``relu``) is applied to each sample's
block of output channels while it is in cache: with the bias in one pass (exact, sampled),
as the scatter writes each value (gathered perforation), else by ``_scatter.relu_block``
(no bias, or row GEMMs). A pass over a whole task's block afterwards read it back from
memory (HAR at batch 64: ~2 ms of an exact inference's ~26 ms on the calling thread under
cProfile, ~3.7 ms of row s2's).

Computing at most 16 pixels a map (2x2, 4x4), one or two samples (2x2: any number)
at a time, :func:`pointwise_channel_tiles` runs ``_microkernel`` channel tiles (output
channels in the vector lanes). Otherwise, on maps too small for per-sample GEMMs (2x2, or
4x4 with large weights) a batch is one GEMM instead: the kept input channels (and pixels) of
every sample are packed side by side (:func:`pack_channels`, ``(R, N*kept)``), and
:func:`batched_gemm` multiplies a block of output channels by a block of those columns and
unpacks the result into NCHW (filling perforated pixels from the kept ones).
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from ._blas import sgemm
from ._memory import aligned_buffer
from ._microkernel import (
    LANES,
    RELU,
    STREAM,
    TILE_OUTPUTS,
    channel_tile,
    channel_tile_width,
    cols_tile,
    dense_tile,
    pack_columns,
    plane_tile,
    rows_tile,
    stream_fence,
    tile_channels,
)
from ._scatter import act, columns_s2_sample, relu_block, scatter

_HALF = np.float32(0.5)  # the mean in float32, as ``_scatter`` and the reference compute it
SAMPLE_FILL_MAX_VALUES = 8192  # stride-2 columns, <= this many kept values a task's sample


@njit(cache=True, nogil=True)
def _bias_plane(of, d, plane, bv, relu):
    """Add ``bv`` to ``plane`` values from ``of[d]``, then ReLU if ``relu``: one pass (a
    stored value that differs from the loaded one keeps the loop vectorised, see
    ``_scatter.relu_block``)."""
    for j in range(uint64(plane)):
        of[d + j] = act(of[d + j] + bv, relu)


@njit(cache=True, nogil=True)
def pointwise_exact(x, w2, out, n0, n1, k0, k1, bias, has_bias, relu):
    """``out[n0:n1, k0:k1]`` of the exact 1x1 conv; ``w2`` (K, C); ``relu``: see the module
    doc (every kernel here takes it)."""
    c_, plane = x.shape[1], x.shape[2] * x.shape[3]
    k_ = out.shape[1]
    xf, of, wf = x.reshape(-1), out.reshape(-1), w2.reshape(-1)
    for n in range(n0, n1):
        o0 = (n * k_ + k0) * plane
        sgemm(wf[k0 * c_:], c_, xf[n * c_ * plane:], plane, of[o0:], plane, k1 - k0, plane, c_,
              np.float32(0.0))
        if has_bias:
            for k in range(k0, k1):
                _bias_plane(of, uint64((n * k_ + k) * plane), plane, bias[k], relu)
        elif relu:
            relu_block(out, n, n + 1, k0, k1, 0, plane)


@njit(cache=True, nogil=True)
def pointwise_sampled(x, wcls, out, n0, n1, k0, k1, s, offset, bias, has_bias, relu):
    """``out[n0:n1, k0:k1]`` of a 1x1 conv sampled at stride ``s``: input channels
    ``c % s == offset`` skipped. ``wcls`` (K, kept): the kept, rescaled weight columns
    grouped by residue class (classes ``r != offset`` in increasing order, each in channel
    order)."""
    c_, plane = x.shape[1], x.shape[2] * x.shape[3]
    k_ = out.shape[1]
    kept = wcls.shape[1]
    xf, of, wf = x.reshape(-1), out.reshape(-1), wcls.reshape(-1)
    for n in range(n0, n1):
        o0 = (n * k_ + k0) * plane
        col = 0
        first = True
        for r in range(s):
            if r == offset or r >= c_:
                continue
            cnt = (c_ - r + s - 1) // s
            sgemm(wf[k0 * kept + col:], kept, xf[(n * c_ + r) * plane:], s * plane, of[o0:],
                  plane, k1 - k0, plane, cnt, np.float32(0.0 if first else 1.0))
            first = False
            col += cnt
        if first:  # nothing kept (one input channel, skipped): the conv is 0
            for j in range(uint64(o0), uint64(o0 + (k1 - k0) * plane)):
                of[j] = 0.0
        if has_bias:
            for k in range(k0, k1):
                _bias_plane(of, uint64((n * k_ + k) * plane), plane, bias[k], relu)
        elif relu:
            relu_block(out, n, n + 1, k0, k1, 0, plane)


@njit(cache=True, nogil=True)
def _gather_pixels(x, n, hsrc, wsrc, step, xb, d0, ld):
    """Copy the kept pixels (rows ``hsrc`` x columns ``wsrc``) of every input channel of
    sample ``n`` into ``xb``: channel ``c`` at ``xb[d0 + c*ld :]``. ``step``: the constant
    distance between kept columns (0 if none). Kept rows that are whole rows of a plane
    with all rows kept (stride-2 column perforation of an even width) are one strided run."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    hk, wk = hsrc.shape[0], wsrc.shape[0]
    xf = x.reshape(-1)
    flat = step > 0 and hk == h_ and wk * step == w_
    for c in range(c_):
        s0 = (n * c_ + c) * h_ * w_
        dc = d0 + c * ld
        if flat:
            src = uint64(s0 + wsrc[0])
            st = uint64(step)
            for j in range(uint64(hk * wk)):
                xb[uint64(dc) + j] = xf[src + j * st]
            continue
        for i in range(hk):
            src = uint64(s0 + hsrc[i] * w_ + wsrc[0])
            d = uint64(dc + i * wk)
            if step == 1:
                for j in range(uint64(wk)):
                    xb[d + j] = xf[src + j]
            elif step > 0:
                st = uint64(step)
                for j in range(uint64(wk)):
                    xb[d + j] = xf[src + j * st]
            else:
                src = uint64(s0 + hsrc[i] * w_)
                for j in range(wk):
                    xb[d + uint64(j)] = xf[src + uint64(wsrc[j])]


@njit(cache=True, nogil=True)
def pointwise_kept_rows(x, w2, out, n0, n1, k0, k1, hsrc, bias, has_bias, relu):
    """``out[n0:n1, k0:k1]`` of a 1x1 conv perforated along rows (kept rows ``hsrc``): per
    sample one GEMM per kept row, straight from the input row into the output row (leading
    dimension: the plane), then the skipped rows filled in place from their neighbours
    while the sample's output is in cache, and the bias added to the kept rows last (the
    fill reads them without it)."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    k_ = out.shape[1]
    plane = h_ * w_
    kc = k1 - k0
    xf, of, wf = x.reshape(-1), out.reshape(-1), w2.reshape(-1)
    kept = np.zeros(h_, np.bool_)
    for i in range(hsrc.shape[0]):
        kept[hsrc[i]] = True
    uw = uint64(w_)
    for n in range(n0, n1):
        o0 = (n * k_ + k0) * plane
        for i in range(hsrc.shape[0]):
            r = hsrc[i] * w_
            sgemm(wf[k0 * c_:], c_, xf[n * c_ * plane + r:], plane, of[o0 + r:], plane, kc,
                  w_, c_, np.float32(0.0))
        for k in range(k0, k1):
            bz = bias[k] if has_bias else np.float32(0.0)
            d = uint64((n * k_ + k) * plane)
            for r in range(h_):
                dr = d + uint64(r) * uw
                if kept[r]:
                    continue
                if r == 0 or r == h_ - 1:  # an edge row: a copy of its one neighbour
                    src = dr + uw if r == 0 else dr - uw
                    for j in range(uw):
                        of[dr + j] = of[src + j] + bz
                else:
                    for j in range(uw):
                        of[dr + j] = _HALF * (of[dr - uw + j] + of[dr + uw + j]) + bz
            if has_bias:
                for i in range(hsrc.shape[0]):
                    dr = d + uint64(hsrc[i]) * uw
                    for j in range(uw):
                        of[dr + j] += bz
        if relu:
            relu_block(out, n, n + 1, k0, k1, 0, plane)


@njit(cache=True, nogil=True)
def _columns_s2_samples(x, w2, out, n0, n1, k0, k1, wsrc, off, bias, has_bias, xbuf, rbuf,
                        relu):
    """Stride-2 column perforation of an even width, one sample at a time: its kept pixels
    (every second one of each plane) copied, one GEMM into ``rbuf`` (K, kept), whose rows
    are then exactly the output planes' kept values in order, so that one loop over the
    whole sample fills every channel (``_scatter.columns_s2_sample``): no loop per plane or
    per row, which on small maps cost more than the GEMM. Side by side with the batched
    per-plane fill (1 thread, batch 64, x 1.0 = exact): 32 -> 64 channels on 8x8
    0.60 -> 1.07, 64 -> 64 on 8x8 0.85 -> 1.23, 16 -> 32 on 16x16 0.66 -> 0.82,
    128 -> 256 on 8x8 1.31 -> 1.42; with more kept values a sample (64 -> 128 on 16x16)
    the per-plane fill measured faster (1.42 against 1.31)."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    k_ = out.shape[1]
    plane = h_ * w_
    wk = wsrc.shape[0]
    kp = h_ * wk
    kc = k1 - k0
    wf, of = w2.reshape(-1), out.reshape(-1)
    hs = np.arange(h_)
    bvec = np.empty(kc * kp, np.float32)  # the bias of each kept value, 0 without one
    edge = np.empty(kc * kp, np.bool_)  # kept values next to a copied edge column
    e = 0 if off == 0 else wk - 1
    for k in range(kc):
        bv = bias[k0 + k] if has_bias else np.float32(0.0)
        for i in range(h_):
            q0 = k * kp + i * wk
            for j in range(wk):
                bvec[q0 + j] = bv
                edge[q0 + j] = j == e
    for n in range(n0, n1):
        _gather_pixels(x, n, hs, wsrc, 2, xbuf, 0, kp)
        sgemm(wf[k0 * c_:], c_, xbuf, kp, rbuf, kp, kc, kp, c_, np.float32(0.0))
        columns_s2_sample(rbuf, of, (n * k_ + k0) * plane, kc * kp, off, bvec, edge, relu)


@njit(cache=True, nogil=True)
def pointwise_gathered(x, w2, out, n0, n1, k0, k1, hsrc, wsrc, row_a, row_b, col_a, col_b,
                       col_s2, bias, has_bias, xbuf, rbuf, relu, row_gemms):
    """``out[n0:n1, k0:k1]`` of a 1x1 conv perforated along rows or columns.

    ``row_gemms`` (rows perforated): :func:`pointwise_kept_rows`. Else ``m`` samples at a
    time (``m`` = what ``xbuf`` holds, at least ``C*kept``, and ``rbuf`` at least
    ``(k1-k0)*m*kept``): copy their kept pixels (rows ``hsrc`` x columns ``wsrc``) into
    ``xbuf`` (C, m*kept), one GEMM into ``rbuf`` (K, m*kept), then ``scatter`` fills their
    output planes (``row_a`` ... ``col_s2`` as in ``_scatter.scatter``). Several samples
    per GEMM: its width ``m*kept`` keeps the GEMM efficient on small maps; the caller sizes
    the buffers so that they and the samples' output stay in cache."""
    c_ = x.shape[1]
    hk, wk = hsrc.shape[0], wsrc.shape[0]
    if row_gemms:
        pointwise_kept_rows(x, w2, out, n0, n1, k0, k1, hsrc, bias, has_bias, relu)
        return
    kp = hk * wk
    kc = k1 - k0
    if col_s2 >= 0 and 2 * wk == x.shape[3] and kc * kp <= SAMPLE_FILL_MAX_VALUES:
        _columns_s2_samples(x, w2, out, n0, n1, k0, k1, wsrc, col_s2, bias, has_bias, xbuf,
                            rbuf, relu)
        return
    m = max(1, min(xbuf.shape[0] // max(1, c_ * kp), rbuf.shape[0] // max(1, kc * kp)))
    wf = w2.reshape(-1)
    step = wsrc[1] - wsrc[0] if wk > 1 else 1
    for j in range(1, wk):
        if wsrc[j] - wsrc[j - 1] != step:
            step = 0
    for nb in range(n0, n1, m):
        mm = min(m, n1 - nb)
        wid = mm * kp
        for s in range(mm):
            _gather_pixels(x, nb + s, hsrc, wsrc, step, xbuf, s * kp, wid)
        sgemm(wf[k0 * c_:], c_, xbuf, wid, rbuf, wid, kc, wid, c_, np.float32(0.0))
        scatter(rbuf[:kc * wid].reshape(kc, wid), out, nb, k0, hk, wk, row_a, row_b, col_a,
                col_b, col_s2, bias, has_bias, False, relu)


@njit(cache=True, nogil=True)
def pointwise_s2_tiles(x, wt, out, n0, n1, k0, k1, rows, offset, voff, d0, flags, edges, bias,
                       relu, stream, carry):
    """``out[n0:n1, k0:k1]`` of a 1x1 conv under stride-2 perforation of rows (``rows``)
    or columns with ``offset``, by ``_microkernel`` tiles of the transposed weights ``wt``
    (C, K): the plan ``voff`` ... ``edges`` of ``_microkernel.tile_plan``; per sample,
    ``MR_SIZES`` output channels at a time, each through all of the plane's tiles (their
    planes written in order; the sample's input stays in cache across the channel blocks).
    ``stream``: non-temporal stores of the output
    (``_microkernel.STREAM``; ``out`` 64-byte aligned, its plane a multiple of 16 floats).
    ``carry``: at least ``(k1-k0) * TILE_OUTPUTS`` floats of the thread's own, 64-byte
    aligned (``_memory.aligned_buffer``): every tile stores and reloads it as whole vectors,
    and 16 or 48 bytes off a cache line HAR pw1's row tiles took 1.15x as long (1.92 against
    1.68 ms, one thread, batch 64); NumPy's small arrays start anywhere 16 bytes apart.

    Rows and columns run in functions of their own (:func:`_rows_tiles`,
    :func:`_cols_tiles`): with both kinds of tile inlined in one loop, the same tiles took
    1.4x as long (HAR pw1, 32 -> 64 on 32x32, batch 64, one thread, CPU time, median of
    20 interleaved calls: rows 3.01 -> 2.15 ms, columns 3.05 -> 2.12 ms, exact 3.85 ms;
    Zen 4), although the hot loops' code is the same."""
    if rows:
        _rows_tiles(x, wt, out, n0, n1, k0, k1, voff, d0, flags, bias, relu, stream, carry)
    else:
        _cols_tiles(x, wt, out, n0, n1, k0, k1, offset, voff, d0, flags, edges, bias, relu,
                    stream)


@njit(cache=True, nogil=True)
def pointwise_s2_tiles_whole(x, wt, out, rows, offset, voff, d0, flags, edges, bias, relu,
                             stream):
    """:func:`pointwise_s2_tiles` over the whole of ``out``, as one single-threaded call
    runs it, the row tiles' carry allocated here: from Python it took a ~1 us NumPy call,
    a tenth of the row tiles' time on a HAR layer at batch 1."""
    carry = aligned_buffer(out.shape[1] * TILE_OUTPUTS if rows else 0)
    pointwise_s2_tiles(x, wt, out, 0, out.shape[0], 0, out.shape[1], rows, offset, voff, d0,
                       flags, edges, bias, relu, stream, carry)


@njit(cache=True, nogil=True)
def _rows_tiles(x, wt, out, n0, n1, k0, k1, voff, d0, flags, bias, relu, stream, carry):
    """:func:`pointwise_s2_tiles` of rows."""
    c_, plane = x.shape[1], x.shape[2] * x.shape[3]
    k_, width = out.shape[1], out.shape[3]
    xf, wf, of = x.reshape(-1), wt.reshape(-1), out.reshape(-1)
    extra = (RELU if relu else 0) | (STREAM if stream else 0)
    for n in range(n0, n1):
        x0 = n * c_ * plane
        m0 = k0
        while m0 < k1:
            mr = tile_channels(k1 - m0)
            for j in range(d0.shape[0]):
                rows_tile(width, mr, wf, m0, k_, xf, x0, voff[j], plane, c_, of,
                          (n * k_ + m0) * plane + d0[j], plane, bias, m0,
                          carry[(m0 - k0) * TILE_OUTPUTS:], flags[j] | extra)
            m0 += mr
    if stream:
        stream_fence()


@njit(cache=True, nogil=True)
def _cols_tiles(x, wt, out, n0, n1, k0, k1, offset, voff, d0, flags, edges, bias, relu,
                stream):
    """:func:`pointwise_s2_tiles` of columns: each sample's kept columns packed side by side
    (``_microkernel.pack_columns``), then its tiles read them, rather than load 32 floats
    and shuffle out the 16 kept ones for every vector of every block of output channels.
    Speedup over exact, one thread, batch 64, two runs of each version (Zen 4): HAR's 32 ->
    64 on 32x32 1.56-1.60 -> 1.74, 64 -> 128 on 16x16 1.58-1.60 -> 1.72-1.88, 128 -> 256
    on 8x8 1.62 -> 1.77-1.83."""
    c_, plane = x.shape[1], x.shape[2] * x.shape[3]
    k_, kept = out.shape[1], plane // 2
    xf, wf, of = x.reshape(-1), wt.reshape(-1), out.reshape(-1)
    packed = aligned_buffer(c_ * kept)  # the tiles' 64-byte loads within one line
    extra = (RELU if relu else 0) | (STREAM if stream else 0)
    for n in range(n0, n1):
        pack_columns(offset, xf, n * c_ * plane, c_ * kept, packed, 0)
        m0 = k0
        while m0 < k1:
            mr = tile_channels(k1 - m0)
            for j in range(d0.shape[0]):
                cols_tile(offset, mr, wf, m0, k_, packed, 0, voff[j], kept, c_, of,
                          (n * k_ + m0) * plane + d0[j], plane, bias, m0, flags[j] | extra,
                          edges[j])
            m0 += mr
    if stream:
        stream_fence()


@njit(cache=True, nogil=True)
def pointwise_dense_tiles(x, wt, out, n0, n1, k0, k1, first, step, bias, relu, stream):
    """``out[n0:n1, k0:k1]`` of a 1x1 conv over the input channels ``first, first + step,
    ...`` (``wt`` (their count, K), transposed: the exact weights with ``step`` 1, one
    residue class of stride-2 sampling's rescaled ones with ``step`` 2) by
    ``_microkernel.dense_tile``: per sample, ``MR_SIZES`` output channels at a time, each
    through its planes 32 outputs at a time (the plane a multiple of 32); ``stream`` as
    :func:`pointwise_s2_tiles`. Channel blocks outside the plane's tiles, each plane written
    in order: HAR pw1 (32 -> 64 on 32x32, batch 64, one thread, CPU time, median of 60
    interleaved) 6.11 -> 4.70 ms, pw2 4.13 -> 3.61, pw4 2.91 -> 2.67 (Zen 4)."""
    c_, plane = x.shape[1], x.shape[2] * x.shape[3]
    k_, kept = out.shape[1], wt.shape[0]
    xf, wf, of = x.reshape(-1), wt.reshape(-1), out.reshape(-1)
    extra = (RELU if relu else 0) | (STREAM if stream else 0)
    voff = np.empty(2, np.int64)
    for n in range(n0, n1):
        x0 = (n * c_ + first) * plane
        m0 = k0
        while m0 < k1:
            mr = tile_channels(k1 - m0)
            for p0 in range(0, plane, TILE_OUTPUTS):
                voff[0], voff[1] = p0, p0 + LANES
                dense_tile(mr, wf, m0, k_, xf, x0, voff, step * plane, kept, of,
                           (n * k_ + m0) * plane, plane, bias, m0, extra)
            m0 += mr
    if stream:
        stream_fence()


@njit(cache=True, nogil=True)
def pointwise_channel_tiles(x, wp, out, n0, n1, k0, k1, first, step, kept, src_a, src_b, bias,
                            relu):
    """``out[n0:n1, k0:k1]`` of a 1x1 conv on small maps (at most 16 pixels computed) by
    ``_microkernel.channel_tile``, sample by sample: the ``P = kept.size`` computed pixels
    (``kept``: their plane positions) of the input channels ``first, first + step, ...``
    side by side, tiles of ``P`` pixels x ``16 * channel_vectors(P)`` output channels,
    then every output position ``q`` from kept values ``src_a[q]`` and ``src_b[q]`` (their
    mean where they differ, ``approximations.md``), the bias and the ReLU.

    ``wp``: the weights of those input channels (exact, or one residue class of stride-2
    sampling's) in :func:`channel_panels` of ``P``. ``k0`` is a multiple of the main tile's
    channels (``_microkernel.channel_tile_width(P)``), and so is ``k1`` unless it is K:
    each tile then starts where a panel does."""
    c_, plane = x.shape[1], x.shape[2] * x.shape[3]
    k_ = out.shape[1]
    nc = wp.shape[0] // k_
    pixels, ldr = kept.shape[0], k1 - k0
    main = channel_tile_width(pixels)
    xf, of = x.reshape(-1), out.reshape(-1)
    xk = np.empty(nc * pixels, np.float32)
    res = np.empty(pixels * ldr, np.float32)
    for n in range(n0, n1):
        for c in range(nc):
            base = (n * c_ + first + c * step) * plane
            for p in range(pixels):
                xk[c * pixels + p] = xf[base + kept[p]]
        m0 = k0
        while m0 < k1:
            tail = k1 - m0 < main
            width = LANES if tail else main
            channel_tile(pixels, tail, xk, wp, m0 * nc, width, nc, res, m0 - k0, ldr)
            m0 += width
        # position by position, reading ``res`` in order (a channel's positions are ``ldr``
        # apart): HAR's 256 -> 512 layer on 2x2 maps under stride-2 perforation at batch 1
        # took 13.7 against 15.2 us channel by channel (one thread)
        at = (n * k_ + k0) * plane
        for q in range(plane):
            a, b = src_a[q] * ldr, src_b[q] * ldr
            if a == b:
                for r in range(ldr):
                    of[at + r * plane + q] = act(res[a + r] + bias[k0 + r], relu)
            else:
                for r in range(ldr):
                    v = (res[a + r] + res[b + r]) * _HALF
                    of[at + r * plane + q] = act(v + bias[k0 + r], relu)


def channel_panels(w2: np.ndarray, pixels: int) -> np.ndarray:
    """The weights ``w2`` (K, C') of a 1x1 call as :func:`pointwise_channel_tiles` of
    ``pixels`` pixels reads them: flat, one panel per tile, output channels ``m0 ..
    m0+width`` as (C', width) from ``m0 * C'`` on; ``width`` is the main tile's channels
    (``_microkernel.channel_tile_width``) while that many are left, then 16. A tile thus reads
    its weights in order, rather than ``width`` of every K's: HAR's 256 -> 256 layer on 4x4
    maps under stride-2 row perforation at batch 1 (one thread, CPU time, four runs) took
    0.047-0.068 ms against 0.070-0.102 ms with its weights out of L2, as they are in a model,
    where it had been slower than exact's GEMM (0.062-0.081 ms)."""
    k, nc = w2.shape
    main = channel_tile_width(pixels)
    out = aligned_buffer(k * nc)  # every panel's rows start on a cache line
    m0 = 0
    while m0 < k:
        width = main if k - m0 >= main else LANES
        out[m0 * nc:(m0 + width) * nc] = w2[m0:m0 + width].T.reshape(-1)
        m0 += width
    return out


@njit(cache=True, nogil=True)
def pointwise_plane_tiles(x, wt, out, n0, n1, k0, k1, code, group, first, step, bias, relu):
    """``out[n0:n1, k0:k1]`` of a 1x1 conv on small maps, stride-2 perforated, exact or
    stride-2 sampled, by ``_microkernel.plane_tile`` ``code`` of the transposed weights
    ``wt`` (C', K) of input channels ``first, first + step, ...`` (C' of them): ``group``
    samples a tile (``n1 - n0`` a multiple of it), ``MR_SIZES`` output channels at a time."""
    c_, plane = x.shape[1], x.shape[2] * x.shape[3]
    k_, nc = out.shape[1], wt.shape[0]
    xf, wf, of = x.reshape(-1), wt.reshape(-1), out.reshape(-1)
    extra = RELU if relu else 0
    for n in range(n0, n1, group):
        m0 = k0
        while m0 < k1:
            mr = tile_channels(k1 - m0)
            plane_tile(code, mr, wf, m0, k_, xf, (n * c_ + first) * plane, c_ * plane,
                       step * plane, nc, of, (n * k_ + m0) * plane, k_ * plane, plane, bias,
                       m0, extra)
            m0 += mr


@njit(cache=True, nogil=True)
def pack_channels(x, chan, hsrc, wsrc, n0, n1, xb):
    """Samples ``n0 .. n1-1`` of ``xb`` (R, N*kept), flat: row ``r`` holds the kept pixels
    (rows ``hsrc`` x columns ``wsrc``, all of them without perforation) of input channel
    ``chan[r]`` of every sample, sample ``n`` at columns ``n*kept .. (n+1)*kept``."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    hk, wk = hsrc.shape[0], wsrc.shape[0]
    plane, kept = h_ * w_, hk * wk
    ld = x.shape[0] * kept
    xf = x.reshape(-1)
    # sample by sample, reading each in order: channel by channel across the samples, the
    # reads jumped a sample's size each (512 channels of 2x2 maps, batch 64, one thread:
    # 0.21 -> 0.15 ms in cache, 0.26 -> 0.18 ms from memory)
    for n in range(n0, n1):
        for r in range(chan.shape[0]):
            src = uint64((n * c_ + chan[r]) * plane)
            d = uint64(r * ld + n * kept)
            if kept == plane:
                for j in range(uint64(plane)):
                    xb[d + j] = xf[src + j]
                continue
            for i in range(hk):
                s0 = src + uint64(hsrc[i] * w_)
                di = d + uint64(i * wk)
                for j in range(wk):
                    xb[di + uint64(j)] = xf[s0 + uint64(wsrc[j])]


@njit(cache=True, nogil=True)
def batched_gemm(w2, xb, res, out, n0, n1, k0, k1, bias, has_bias, relu, hk, wk, row_a, row_b,
                 col_a, col_b, col_s2):
    """``out[n0:n1, k0:k1]`` = ``w2[k0:k1]`` (K, R) @ the samples' columns of ``xb`` (see
    :func:`pack_channels`), through ``res`` (at least ``(k1-k0)*(n1-n0)*hk*wk``), plus the
    bias. Perforated (``hk*wk`` kept pixels of fewer than the plane's): the output filled
    from the kept ones by ``_scatter.scatter`` (``row_a`` ... ``col_s2`` as there), else
    unpacked; ReLU on each value as it is written if ``relu`` (NaN kept)."""
    k_, red = w2.shape
    plane = out.shape[2] * out.shape[3]
    kept = hk * wk
    ld = out.shape[0] * kept
    cols = (n1 - n0) * kept
    wf, of = w2.reshape(-1), out.reshape(-1)
    sgemm(wf[k0 * red:], red, xb[n0 * kept:], ld, res, cols, k1 - k0, cols, red,
          np.float32(0.0))
    if kept < plane:
        scatter(res[:(k1 - k0) * cols].reshape(k1 - k0, cols), out, n0, k0, hk, wk, row_a,
                row_b, col_a, col_b, col_s2, bias, has_bias, False, relu)
        return
    zero = np.float32(0.0)
    # sample by sample, writing each in order (512 channels of 2x2 maps, batch 64, one
    # thread: 0.18 -> 0.08 ms in cache, 0.21 -> 0.16 ms to memory, channel by channel)
    for n in range(n0, n1):
        s0 = uint64((n - n0) * plane)
        for k in range(k0, k1):
            bv = bias[k] if has_bias else zero
            d = uint64((n * k_ + k) * plane)
            r0 = s0 + uint64((k - k0) * cols)
            for j in range(uint64(plane)):
                v = res[r0 + j] + bv
                of[d + j] = act(v, relu)
