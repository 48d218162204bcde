"""Task loops in Numba for the pool's loop jobs (``_pool.Pool.run_loop``).

Each function runs on every thread that takes part in one kernel call: it claims tasks
(blocks of the output) from a shared counter with an atomic add and computes them, with no
return to Python between tasks, so no thread takes the GIL during the call. Signature:
``(state, job_flags, helper, counter, n_tasks, ...)``, the first five as ``run_loop`` passes
them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._direct import depthwise_nhwc, depthwise_phases
from ._fused import gemm_chunk, kept_rows_gemm, rowblock_chunk, rowblock_columns_chunk
from ._memory import aligned_buffer
from ._microkernel import TILE_OUTPUTS
from ._phase_tiles import phase_tiles
from ._pointwise import (
    batched_gemm,
    pack_channels,
    pointwise_channel_tiles,
    pointwise_dense_tiles,
    pointwise_exact,
    pointwise_gathered,
    pointwise_plane_tiles,
    pointwise_s2_tiles,
    pointwise_sampled,
)
from ._pool import enter_loop, fetch_add
from ._scatter import relu_block, scatter
from ._tap_tiles import tap_tiles
from ._wide import shifted_perforated_conv, wide_conv


@njit(cache=True, nogil=True)
def _block(i, nb, kb, kblocks, n, k):
    """(n0, n1, k0, k1) of task ``i``: samples ``b*nb ..`` x output channels ``j*kb ..``."""
    b, j = divmod(i, kblocks)
    return b * nb, min(n, (b + 1) * nb), j * kb, min(k, (j + 1) * kb)


@njit(cache=True, nogil=True)
def depthwise_phases_loop(state, job_flags, helper, counter, n_tasks, nb, kb, kblocks,
                          buffer_size, x, w, out, sh, sw, ph, pw, bias, has_bias, relu):
    """``_direct.depthwise_phases`` on tasks ``i < n_tasks`` (see :func:`_block`)."""
    if not enter_loop(state, job_flags, helper):
        return
    buf = np.zeros(buffer_size, np.float32)
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n0, n1, k0, k1 = _block(i, nb, kb, kblocks, out.shape[0], out.shape[1])
        depthwise_phases(x, w, out, n0, n1, k0, k1, sh, sw, ph, pw, bias, has_bias, buf, relu)


@njit(cache=True, nogil=True)
def depthwise_nhwc_loop(state, job_flags, helper, counter, n_tasks, nb, x, w, out, sh, sw,
                        ph, pw, bias, has_bias, fp16, relu):
    """``_direct.depthwise_nhwc`` on tasks ``i < n_tasks``: samples ``i*nb ..``."""
    if not enter_loop(state, job_flags, helper):
        return
    n = out.shape[0]
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        depthwise_nhwc(x, w, out, i * nb, min(n, (i + 1) * nb), sh, sw, ph, pw, bias,
                       has_bias, fp16, relu)


@njit(cache=True, nogil=True)
def pointwise_exact_loop(state, job_flags, helper, counter, n_tasks, nb, kb, kblocks, x, w2,
                         out, bias, has_bias, relu):
    """``_pointwise.pointwise_exact`` on tasks ``i < n_tasks`` (see :func:`_block`)."""
    if not enter_loop(state, job_flags, helper):
        return
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n0, n1, k0, k1 = _block(i, nb, kb, kblocks, out.shape[0], out.shape[1])
        pointwise_exact(x, w2, out, n0, n1, k0, k1, bias, has_bias, relu)


@njit(cache=True, nogil=True)
def pointwise_sampled_loop(state, job_flags, helper, counter, n_tasks, nb, kb, kblocks, x,
                           wcls, out, s, offset, bias, has_bias, relu):
    """``_pointwise.pointwise_sampled`` on tasks ``i < n_tasks`` (see :func:`_block`)."""
    if not enter_loop(state, job_flags, helper):
        return
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n0, n1, k0, k1 = _block(i, nb, kb, kblocks, out.shape[0], out.shape[1])
        pointwise_sampled(x, wcls, out, n0, n1, k0, k1, s, offset, bias, has_bias, relu)


@njit(cache=True, nogil=True)
def pointwise_gathered_loop(state, job_flags, helper, counter, n_tasks, nb, kb, kblocks, x,
                            w2, out, hsrc, wsrc, row_a, row_b, col_a, col_b, col_s2, bias,
                            has_bias, xbuf_size, rbuf_size, relu, row_gemms):
    """``_pointwise.pointwise_gathered`` on tasks ``i < n_tasks`` (see :func:`_block`),
    with buffers of ``xbuf_size`` and ``rbuf_size`` floats of each thread's own."""
    if not enter_loop(state, job_flags, helper):
        return
    xbuf = np.empty(xbuf_size, np.float32)
    rbuf = np.empty(rbuf_size, np.float32)
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n0, n1, k0, k1 = _block(i, nb, kb, kblocks, out.shape[0], out.shape[1])
        pointwise_gathered(x, w2, out, n0, n1, k0, k1, hsrc, wsrc, row_a, row_b, col_a, col_b,
                           col_s2, bias, has_bias, xbuf, rbuf, relu, row_gemms)


@njit(cache=True, nogil=True)
def pointwise_s2_tiles_loop(state, job_flags, helper, counter, n_tasks, nb, kb, kblocks, x,
                            wt, out, rows, offset, voff, d0, flags, edges, bias, relu, stream):
    """``_pointwise.pointwise_s2_tiles`` on tasks ``i < n_tasks`` (see :func:`_block`),
    with a carry buffer of each thread's own."""
    if not enter_loop(state, job_flags, helper):
        return
    carry = aligned_buffer(kb * TILE_OUTPUTS)
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n0, n1, k0, k1 = _block(i, nb, kb, kblocks, out.shape[0], out.shape[1])
        pointwise_s2_tiles(x, wt, out, n0, n1, k0, k1, rows, offset, voff, d0, flags, edges,
                           bias, relu, stream, carry)


@njit(cache=True, nogil=True)
def phase_tiles_loop(state, job_flags, helper, counter, n_tasks, nb, rows, per_sample, x, wt,
                     out, toff, kh, ph, pw, offset, bias, relu, xph_size):
    """``_phase_tiles.phase_tiles`` on tasks ``i < n_tasks``: samples ``(i // per_sample) *
    nb ..``, output rows ``(i % per_sample) * rows ..``, with a phase buffer of each
    thread's own."""
    if not enter_loop(state, job_flags, helper):
        return
    xph = np.empty(xph_size, np.float32)
    n, ho = out.shape[0], out.shape[2]
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        b, j = divmod(i, per_sample)
        phase_tiles(x, wt, out, b * nb, min(n, (b + 1) * nb), j * rows,
                    min(ho, (j + 1) * rows), toff, kh, ph, pw, offset, bias, relu, xph)


@njit(cache=True, nogil=True)
def tap_tiles_loop(state, job_flags, helper, counter, n_tasks, nb, kb, kblocks, x, wt, out,
                   toff, ph, pw, rows, d0, flags, bias, relu, xpad_size):
    """``_tap_tiles.tap_tiles`` on tasks ``i < n_tasks`` (see :func:`_block`), with a padded
    input and a carry buffer of each thread's own."""
    if not enter_loop(state, job_flags, helper):
        return
    xpad = np.empty(xpad_size, np.float32)
    carry = aligned_buffer(kb * TILE_OUTPUTS if rows else 0)
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n0, n1, k0, k1 = _block(i, nb, kb, kblocks, out.shape[0], out.shape[1])
        tap_tiles(x, wt, out, n0, n1, k0, k1, toff, ph, pw, rows, d0, flags, bias, relu, xpad,
                  carry)


@njit(cache=True, nogil=True)
def pointwise_plane_tiles_loop(state, job_flags, helper, counter, n_tasks, nb, kb, kblocks,
                               n_main, x, wt, out, code, group, first, step, bias, relu):
    """``_pointwise.pointwise_plane_tiles`` on tasks ``i < n_tasks`` (see :func:`_block`) of
    the first ``n_main`` samples."""
    if not enter_loop(state, job_flags, helper):
        return
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n0, n1, k0, k1 = _block(i, nb, kb, kblocks, n_main, out.shape[1])
        pointwise_plane_tiles(x, wt, out, n0, n1, k0, k1, code, group, first, step, bias,
                              relu)


@njit(cache=True, nogil=True)
def pointwise_channel_tiles_loop(state, job_flags, helper, counter, n_tasks, nb, kb, kblocks,
                                 x, wp, out, first, step, kept, src_a, src_b, bias, relu):
    """``_pointwise.pointwise_channel_tiles`` on tasks ``i < n_tasks`` (see :func:`_block`)."""
    if not enter_loop(state, job_flags, helper):
        return
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n0, n1, k0, k1 = _block(i, nb, kb, kblocks, out.shape[0], out.shape[1])
        pointwise_channel_tiles(x, wp, out, n0, n1, k0, k1, first, step, kept, src_a, src_b,
                                bias, relu)


@njit(cache=True, nogil=True)
def pointwise_dense_tiles_loop(state, job_flags, helper, counter, n_tasks, nb, kb, kblocks, x,
                               wt, out, first, step, bias, relu, stream):
    """``_pointwise.pointwise_dense_tiles`` on tasks ``i < n_tasks`` (see :func:`_block`)."""
    if not enter_loop(state, job_flags, helper):
        return
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n0, n1, k0, k1 = _block(i, nb, kb, kblocks, out.shape[0], out.shape[1])
        pointwise_dense_tiles(x, wt, out, n0, n1, k0, k1, first, step, bias, relu, stream)


@njit(cache=True, nogil=True)
def wide_loop(state, job_flags, helper, counter, n_tasks, nb, kb, kblocks, rows, hblocks, x,
              wr, pc, pj, out, bias, has_bias, pbuf_size, abuf_size, relu):
    """``_wide.wide_conv`` on tasks ``i < n_tasks``: block ``b`` of ``nb`` samples, block
    ``j`` of ``kb`` channels and block ``h`` of ``rows`` output rows, with ``b, rest =
    divmod(i, kblocks * hblocks)`` and ``j, h = divmod(rest, hblocks)``; then ReLU on the
    block if ``relu``."""
    if not enter_loop(state, job_flags, helper):
        return
    n, k, ho, wo = out.shape
    pbuf = np.empty(pbuf_size, np.float32)
    abuf = np.empty(abuf_size, np.float32)
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        b, rest = divmod(i, kblocks * hblocks)
        j, h = divmod(rest, hblocks)
        n0, n1, k0, k1 = b * nb, min(n, (b + 1) * nb), j * kb, min(k, (j + 1) * kb)
        h0, h1 = h * rows, min(ho, (h + 1) * rows)
        wide_conv(x, wr, pc, pj, out, n0, n1, k0, k1, h0, h1, bias, has_bias, pbuf, abuf)
        if relu:
            relu_block(out, n0, n1, k0, k1, h0 * wo, h1 * wo)


@njit(cache=True, nogil=True)
def rowblock_loop(state, job_flags, helper, counter, n_tasks, rows, per_sample, x, chan, krow,
                  kcol, hsrc, wsrc, w2, out, col_a, col_b, col_s2, bias, has_bias, cols_size,
                  res_size, xph_size, perforated, relu):
    """``_fused.rowblock_chunk`` (or ``rowblock_columns_chunk`` if ``perforated``) on tasks
    ``i < n_tasks``: sample ``i // per_sample``, its output rows ``(i % per_sample) * rows``
    onwards; then ReLU on them if ``relu``."""
    if not enter_loop(state, job_flags, helper):
        return
    k, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    cols = np.empty(cols_size, np.float32)
    res = np.empty(res_size, np.float32)
    xph = np.empty(xph_size, np.float32)
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n, j = divmod(i, per_sample)
        r0, r1 = j * rows, min(ho, (j + 1) * rows)
        if perforated:
            rowblock_columns_chunk(x, n, r0, r1, chan, krow, kcol, hsrc, wsrc, w2, cols, res,
                                   out, col_a, col_b, col_s2, bias, has_bias, xph)
        else:
            rowblock_chunk(x, n, r0, r1, chan, krow, kcol, hsrc, wsrc, w2, cols, out, bias,
                           has_bias)
        if relu:
            relu_block(out, n, n + 1, 0, k, r0 * wo, r1 * wo)


@njit(cache=True, nogil=True)
def chunks_loop(state, job_flags, helper, counter, n_tasks, nb, x, chan, krow, kcol, hsrc,
                wsrc, w2, out, k0, row_a, row_b, col_a, col_b, col_s2, bias, has_bias, fp16,
                cols_size, res_size, relu):
    """``_fused.gemm_chunk`` on tasks ``i < n_tasks``: samples ``i*nb ..``, output channels
    ``k0 .. k0+len(w2)``; then ReLU on them if ``relu``."""
    if not enter_loop(state, job_flags, helper):
        return
    n = out.shape[0]
    plane = out.shape[2] * out.shape[3]
    cols = np.empty(cols_size, np.float32)
    res = np.empty(res_size, np.float32)
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n0 = i * nb
        m = min(nb, n - n0)
        gemm_chunk(x, n0, m, chan, krow, kcol, hsrc, wsrc, w2, cols, res, out, k0, row_a,
                   row_b, col_a, col_b, col_s2, bias, has_bias, fp16)
        if relu:
            relu_block(out, n0, n0 + m, k0, k0 + w2.shape[0], 0, plane)


@njit(cache=True, nogil=True)
def pack_loop(state, job_flags, helper, counter, n_tasks, nb, x, chan, hsrc, wsrc, xb):
    """``_pointwise.pack_channels`` on tasks ``i < n_tasks``: samples ``i*nb ..``."""
    if not enter_loop(state, job_flags, helper):
        return
    n = x.shape[0]
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        pack_channels(x, chan, hsrc, wsrc, i * nb, min(n, (i + 1) * nb), xb)


@njit(cache=True, nogil=True)
def batched_gemm_loop(state, job_flags, helper, counter, n_tasks, cb, kb, kblocks, w2, xb, out,
                      bias, has_bias, relu, hk, wk, row_a, row_b, col_a, col_b, col_s2,
                      res_size):
    """``_pointwise.batched_gemm`` on tasks ``i < n_tasks`` (see :func:`_block`, with blocks
    of ``cb`` samples)."""
    if not enter_loop(state, job_flags, helper):
        return
    res = np.empty(res_size, np.float32)
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n0, n1, k0, k1 = _block(i, cb, kb, kblocks, out.shape[0], out.shape[1])
        batched_gemm(w2, xb, res, out, n0, n1, k0, k1, bias, has_bias, relu, hk, wk, row_a,
                     row_b, col_a, col_b, col_s2)


@njit(cache=True, nogil=True)
def shifted_loop(state, job_flags, helper, counter, n_tasks, hblocks, rows, hk, x, wr, pc, pj,
                 parity, wsrc, res, out, row_a, row_b, col_a, col_b, col_s2, bias, has_bias,
                 pbuf_size, relu):
    """``_wide.shifted_perforated_conv`` on tasks ``i < n_tasks``: sample ``i // hblocks``,
    its kept rows ``(i % hblocks) * rows`` onwards, into ``res`` (N, K, hk*wk), for
    :func:`fill_loop` to fill the output from afterwards. With one block a sample
    (``hblocks == 1``; ``res`` may then be empty) each task computes into a buffer of its
    thread's own and fills its sample's output from it (``_scatter.scatter``, ReLU if
    ``relu``) while it is in cache."""
    if not enter_loop(state, job_flags, helper):
        return
    k = out.shape[1]
    wk = wsrc.shape[0]
    pbuf = np.empty(pbuf_size, np.float32)
    own = np.empty((k if hblocks == 1 else 0, hk * wk), np.float32)
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n, h = divmod(i, hblocks)
        m0, m1 = h * rows, min(hk, (h + 1) * rows)
        kept = own if hblocks == 1 else res[n]
        shifted_perforated_conv(x, wr, pc, pj, n, 0, k, m0, m1, parity, wsrc, pbuf,
                                kept.reshape(-1), hk * wk)
        if hblocks == 1:
            scatter(own, out, n, 0, hk, wk, row_a, row_b, col_a, col_b, col_s2, bias,
                    has_bias, False, relu)


@njit(cache=True, nogil=True)
def kept_rows_loop(state, job_flags, helper, counter, n_tasks, hblocks, rows, x, chan, krow,
                   kcol, hsrc, wsrc, w2, res, cols_size):
    """``_fused.kept_rows_gemm`` on tasks ``i < n_tasks``: sample ``i // hblocks``, its kept
    rows ``hsrc[(i % hblocks) * rows ..]``, into ``res`` (N, K, kept pixels)."""
    if not enter_loop(state, job_flags, helper):
        return
    cols = np.empty(cols_size, np.float32)
    wk = wsrc.shape[0]
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n, j = divmod(i, hblocks)
        kept_rows_gemm(x, n, chan, krow, kcol, hsrc[j * rows:(j + 1) * rows], wsrc, w2, cols,
                       res[n], j * rows * wk)


@njit(cache=True, nogil=True)
def fill_loop(state, job_flags, helper, counter, n_tasks, kb, kblocks, res, out, hk, wk, row_a,
              row_b, col_a, col_b, col_s2, bias, has_bias, relu):
    """``_scatter.scatter`` of ``res`` (N, K, hk*wk) into ``out`` on tasks ``i < n_tasks``:
    sample ``i // kblocks``, channels ``(i % kblocks) * kb`` onwards; ReLU if ``relu``."""
    if not enter_loop(state, job_flags, helper):
        return
    k = out.shape[1]
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        n, j = divmod(i, kblocks)
        k0, k1 = j * kb, min(k, (j + 1) * kb)
        scatter(res[n, k0:k1], out, n, k0, hk, wk, row_a, row_b, col_a, col_b, col_s2, bias,
                has_bias, False, relu)
