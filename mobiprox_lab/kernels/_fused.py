"""One chunk of a GEMM-path convolution in a single nogil call: im2col -> GEMM -> scatter.

Used when no phase timings are asked for: a worker thread then takes the GIL once
per chunk instead of once per phase, which matters when the cores are shared
(every GIL hand-over waits for the other thread to be scheduled). Every GEMM here
is ``_blas``'s (``matmul_into`` / ``sgemm``), called outside any parallel loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from ._blas import matmul_into, sgemm
from ._im2col import im2col, im2col_column_phases, split_padded_column_phases
from ._scatter import fill_column_rows, finish, scatter


@njit(cache=True, nogil=True)
def gemm_chunk(x, n0, m, chan, krow, kcol, hsrc, wsrc, w2, cols_buf, res_buf, out, k0, row_a,
               row_b, col_a, col_b, col_s2, bias, has_bias, fp16):
    """Samples ``n0 .. n0+m-1``, output channels ``k0 .. k0+len(w2)`` (see ``_conv``).

    ``cols_buf`` / ``res_buf``: flat float32 work buffers; ``res_buf`` of size 0
    means "GEMM straight into ``out``" (one sample, nothing perforated).
    """
    r_, kc = chan.shape[0], w2.shape[0]
    hk, wk = hsrc.shape[0], wsrc.shape[0]
    plane = hk * wk
    patches = cols_buf[:r_ * m * plane].reshape(r_, m * plane)
    im2col(x, n0, m, chan, krow, kcol, hsrc, wsrc, patches)
    if res_buf.shape[0] == 0:
        k_ = out.shape[1]
        start = (n0 * k_ + k0) * plane
        dst = out.reshape(-1)[start:start + kc * plane].reshape(kc, plane)
        matmul_into(w2, patches, dst)
        if has_bias or fp16:
            finish(out, n0, n0 + 1, k0, k0 + kc, bias, has_bias, fp16)
        return
    res = res_buf[:kc * m * plane].reshape(kc, m * plane)
    matmul_into(w2, patches, res)
    scatter(res, out, n0, k0, hk, wk, row_a, row_b, col_a, col_b, col_s2, bias, has_bias, fp16,
            False)


@njit(cache=True, nogil=True)
def pointwise_chunk(x, w2, out, n0, n1, bias, has_bias, fp16):
    """1x1 stride-1 unpadded exact conv of samples ``n0 .. n1-1``: one GEMM per sample
    straight into ``out``, then bias / fp16 rounding."""
    c_, plane = x.shape[1], x.shape[2] * x.shape[3]
    k_ = w2.shape[0]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for n in range(n0, n1):
        src = xf[n * c_ * plane:(n + 1) * c_ * plane].reshape(c_, plane)
        dst = of[n * k_ * plane:(n + 1) * k_ * plane].reshape(k_, plane)
        matmul_into(w2, src, dst)
    if has_bias or fp16:
        finish(out, n0, n1, 0, k_, bias, has_bias, fp16)


@njit(cache=True, nogil=True)
def rowblock_chunk(x, n, r0, r1, chan, krow, kcol, hsrc, wsrc, w2, cols_buf, out, bias,
                   has_bias):
    """Output rows ``r0 .. r1-1`` of sample ``n``, no perforation (exact or sampled fp32):
    im2col of those rows only into ``cols_buf``, then :func:`rowblock_gemm`."""
    r_, wo = chan.shape[0], wsrc.shape[0]
    width = (r1 - r0) * wo
    im2col(x, n, 1, chan, krow, kcol, hsrc[r0:r1], wsrc, cols_buf[:r_ * width].reshape(r_, width))
    rowblock_gemm(cols_buf, w2, out, n, r0, r1, bias, has_bias)


@njit(cache=True, nogil=True)
def rowblock_gemm(cols_buf, w2, out, n, r0, r1, bias, has_bias):
    """``out[n, :, r0:r1]`` = ``w2`` (K, R) @ the patches in ``cols_buf`` (R, rows x Wo),
    written straight into ``out`` (a plane's rows are contiguous: leading dimension = the
    plane), then the bias on the block while it is in cache."""
    r_, kc = w2.shape[1], w2.shape[0]
    k_, wo = out.shape[1], out.shape[3]
    plane = out.shape[2] * wo
    width = (r1 - r0) * wo
    of = out.reshape(-1)
    start = n * k_ * plane + r0 * wo
    sgemm(w2.reshape(-1), r_, cols_buf, width, of[start:], plane, kc, width, r_,
          np.float32(0.0))
    if has_bias:
        for k in range(kc):
            bv = bias[k]
            d = uint64(start + k * plane)
            for j in range(uint64(width)):
                of[d + j] += bv


@njit(cache=True, nogil=True)
def rowblock_columns_chunk(x, n, r0, r1, chan, krow, kcol, hsrc, wsrc, w2, cols_buf, res_buf,
                           out, col_a, col_b, col_s2, bias, has_bias, xph):
    """Output rows ``r0 .. r1-1`` of sample ``n`` under column perforation (fp32): im2col of
    their kept columns ``wsrc`` into ``cols_buf``, one GEMM into ``res_buf``, then the rows
    filled (``_scatter.fill_column_rows``), the three in cache. ``xph`` non-empty (stride-2
    pattern, stride-1 conv): the im2col reads the sample's column phases, split into it
    first, so that every tap's kept columns are one contiguous run."""
    r_, kc, wk = chan.shape[0], w2.shape[0], wsrc.shape[0]
    width = (r1 - r0) * wk
    cols = cols_buf[:r_ * width].reshape(r_, width)
    if xph.shape[0]:
        split_padded_column_phases(x, n, 0, 0, 0, x.shape[2], (x.shape[3] + 1) // 2, xph)
        im2col_column_phases(xph, x.shape[2], x.shape[3], chan, krow, kcol, hsrc[r0:r1],
                             wsrc[0], wk, cols)
    else:
        im2col(x, n, 1, chan, krow, kcol, hsrc[r0:r1], wsrc, cols)
    res = res_buf[:kc * width].reshape(kc, width)
    matmul_into(w2, cols, res)
    fill_column_rows(res, out, n, r0, r1, col_a, col_b, col_s2, bias, has_bias)


@njit(cache=True, nogil=True)
def kept_rows_gemm(x, n, chan, krow, kcol, hsrc, wsrc, w2, cols_buf, res, c0):
    """Kept output rows ``hsrc`` (their top input rows) of sample ``n``: their im2col into
    ``cols_buf``, then one GEMM into columns ``c0 ..`` of ``res`` (K, all kept pixels of
    the sample), whose other columns other row blocks fill."""
    r_, kc, wk = chan.shape[0], w2.shape[0], wsrc.shape[0]
    width = hsrc.shape[0] * wk
    im2col(x, n, 1, chan, krow, kcol, hsrc, wsrc, cols_buf[:r_ * width].reshape(r_, width))
    sgemm(w2.reshape(-1), r_, cols_buf, width, res.reshape(-1)[c0:], res.shape[1], kc, width,
          r_, np.float32(0.0))
