"""Exact stride-1, unpadded convolution as KH accumulated GEMMs on "wide" rows.

With the output computed ``W`` columns wide instead of ``Wo`` (the extra ``KW - 1``
columns of each row are discarded), output pixel ``p = ho*W + wo`` of kernel row ``i``,
column ``j`` and channel ``c`` reads input element ``c*H*W + p + i*W + j``. So with
``P[(c, j), q] = x[c, q + j]`` (``C*KW`` shifted copies of the input planes, a quarter
of an im2col for a 10x4 kernel), kernel row ``i`` is one GEMM of the weights' ``(K, C*KW)``
slice with the columns ``i*W .. i*W + Ho*W`` of ``P``, accumulated in a cache-resident
``(K, Ho*W)`` buffer; the valid columns are then copied out with the bias.
Filter sampling whose skipped elements depend on the kernel column only (``KW`` and
``KH*KW`` multiples of the sampling stride: the "regular" rotation of
``approximations.md`` then skips column ``j`` of channel ``c`` when
``j % s == (offset + c) % s``) drops those rows of ``P``.
The KWS CNN's second layer (64 channels, 10x4 kernel) is the case it is for: its im2col
is 2560 x 416 per sample, ten times the input, and does not stay in cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from ._blas import sgemm


@njit(cache=True, nogil=True)
def wide_conv(x, wr, pc, pj, out, n0, n1, k0, k1, h0, h1, bias, has_bias, pbuf, abuf):
    """``out[n0:n1, k0:k1, h0:h1]``; ``P`` has the rows ``(pc[r], pj[r])`` (channel, kernel
    column); ``wr`` (KH, K, R): ``wr[i, k, r]`` = the weight of kernel row ``i`` at that
    channel and column (all ``C*KW`` rows for the exact conv; the kept ones, rescaled, for
    filter sampling whose pattern depends on the column only). Only the columns of ``P``
    that output rows ``h0:h1`` read are built: ``(h1 - h0 + KH - 1) * W`` per row.

    ``pbuf``: at least ``R*(h1-h0+KH-1)*W`` float32; ``abuf``: at least ``(k1-k0)*(h1-h0)*W``.
    """
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    kh_, k_, red = wr.shape[0], wr.shape[1], wr.shape[2]
    ho_n, wo_n = out.shape[2], out.shape[3]
    plane = h_ * w_
    q0 = h0 * w_
    span = (h1 - h0 + kh_ - 1) * w_  # columns of P built: q0 .. q0 + span
    width = (h1 - h0) * w_
    kc = k1 - k0
    xf, of, wf = x.reshape(-1), out.reshape(-1), wr.reshape(-1)
    for n in range(n0, n1):
        for r in range(red):
            src = uint64((n * c_ + pc[r]) * plane + pj[r] + q0)
            d = uint64(r * span)
            m = uint64(min(span, plane - pj[r] - q0))  # the rest reads past the plane
            for q in range(m):
                pbuf[d + q] = xf[src + q]
            for q in range(m, uint64(span)):
                pbuf[d + q] = 0.0
        for i in range(kh_):
            sgemm(wf[(i * k_ + k0) * red:], red, pbuf[i * w_:], span, abuf, width, kc, width,
                  red, np.float32(0.0 if i == 0 else 1.0))
        for k in range(kc):
            bv = bias[k0 + k] if has_bias else np.float32(0.0)
            d0 = ((n * k_ + k0 + k) * ho_n) * wo_n
            for ho in range(h0, h1):
                d = uint64(d0 + ho * wo_n)
                s = uint64(k * width + (ho - h0) * w_)
                for j in range(uint64(wo_n)):
                    of[d + j] = abuf[s + j] + bv
