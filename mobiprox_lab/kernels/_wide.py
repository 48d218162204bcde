"""Stride-1, unpadded convolution as KH accumulated GEMMs on column-shifted rows.

With ``P[(c, j), h, w] = x[c, h, w + j]`` (``C*KW`` copies of the input planes, each cut
to the ``Wo`` output columns: a quarter of an im2col for a 10x4 kernel), output row ``ho``
of kernel row ``i`` reads ``P[:, ho + i, :]``, so kernel row ``i`` is one GEMM of the
weights' ``(K, C*KW)`` slice with the columns ``i*Wo .. i*Wo + Ho*Wo`` of ``P``,
accumulated in a cache-resident ``(K, Ho*Wo)`` buffer, then copied out with the bias.
Filter sampling whose skipped elements depend on the kernel column only (``KW`` and
``KH*KW`` multiples of the sampling stride: the "regular" rotation of
``approximations.md`` then skips column ``j`` of channel ``c`` when
``j % s == (offset + c) % s``) drops those rows of ``P``.
The KWS CNN's second layer (64 channels, 10x4 kernel) is the case it is for: its im2col
is 2560 x 416 per sample, ten times the input, and does not stay in cache. Before, ``P``
kept whole input rows (``W`` columns, every GEMM ``W/Wo`` = 16/13 times wider, the extra
columns thrown away); cut to ``Wo`` the layer took, 2 threads, wall: batch 1 0.96-1.09
against 1.57 ms by row blocks, batch 4 3.84 against 5.08, batch 64 53.5 against 63.5 ms
(torch 0.81, 2.54, 39.8; one noisy run, side by side).
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
    filter sampling whose pattern depends on the column only). Only the input rows that
    output rows ``h0:h1`` read are copied: ``h1 - h0 + KH - 1`` of ``Wo`` columns per row.

    ``pbuf``: at least ``R*(h1-h0+KH-1)*Wo`` float32; ``abuf``: at least ``(k1-k0)*(h1-h0)*Wo``.
    """
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    kh_, k_, red = wr.shape[0], wr.shape[1], wr.shape[2]
    ho_n, wo_n = out.shape[2], out.shape[3]
    rows_in = h1 - h0 + kh_ - 1
    span = rows_in * wo_n  # columns of P built
    width = (h1 - h0) * wo_n
    kc = k1 - k0
    uwo = uint64(wo_n)
    xf, of, wf = x.reshape(-1), out.reshape(-1), wr.reshape(-1)
    for n in range(n0, n1):
        for r in range(red):
            src = uint64(((n * c_ + pc[r]) * h_ + h0) * w_ + pj[r])
            d = uint64(r * span)
            for q in range(rows_in):
                s0 = src + uint64(q * w_)
                d0 = d + uint64(q) * uwo
                for j in range(uwo):
                    pbuf[d0 + j] = xf[s0 + j]
        for i in range(kh_):
            sgemm(wf[(i * k_ + k0) * red:], red, pbuf[i * wo_n:], span, abuf, width, kc, width,
                  red, np.float32(0.0 if i == 0 else 1.0))
        for k in range(kc):
            bv = bias[k0 + k] if has_bias else np.float32(0.0)
            d = uint64(((n * k_ + k0 + k) * ho_n + h0) * wo_n)
            s1 = uint64(k * width)
            for j in range(uint64(width)):
                of[d + j] = abuf[s1 + j] + bv


@njit(cache=True, nogil=True)
def shifted_perforated_conv(x, wr, pc, pj, n, k0, k1, m0, m1, row_parity, wsrc, pbuf, res,
                            ldr):
    """Stride-2 row or column perforation of the same conv, sample ``n``, output channels
    ``k0 .. k1-1``, kept rows ``m0 .. m1-1``: ``res`` (flat, rows of ``ldr``) gets, in
    columns ``m0*wk .. m1*wk`` of its first ``k1-k0`` rows, the kept outputs kept row by
    kept row (scattered into the output by the caller).

    ``row_parity`` (0 / 1): the kept output rows are those of that parity (row
    perforation); -1: every row. ``wsrc`` (int64): the kept output columns. ``P`` holds the
    kept columns of the input rows these outputs read only, and under row perforation
    split by parity (the first row's parity first), so that each kernel row's GEMM reads
    the kept output rows' inputs as one contiguous run. ``pbuf``: at least
    ``R*rows_in*len(wsrc)`` float32, ``rows_in = 2*(m1-m0-1) + KH`` (row perforation) or
    ``m1-m0-1 + KH``.
    """
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    kh_, k_, red = wr.shape[0], wr.shape[1], wr.shape[2]
    wk = wsrc.shape[0]
    if row_parity >= 0:
        first = row_parity + 2 * m0
        rows_in = 2 * (m1 - m0 - 1) + kh_
        even = (rows_in + 1) // 2  # input rows of the first row's parity
    else:
        first = m0
        rows_in = m1 - m0 - 1 + kh_
        even = 0
    span = rows_in * wk
    width = (m1 - m0) * wk
    kc = k1 - k0
    xf, wf = x.reshape(-1), wr.reshape(-1)
    for r in range(red):
        src = uint64(((n * c_ + pc[r]) * h_ + first) * w_ + pj[r])
        for q in range(rows_in):
            pos = (q % 2) * even + q // 2 if row_parity >= 0 else q
            s0 = src + uint64(q * w_)
            d0 = uint64(r * span + pos * wk)
            for t in range(wk):
                pbuf[d0 + uint64(t)] = xf[s0 + uint64(wsrc[t])]
    for i in range(kh_):
        start = ((i % 2) * even + i // 2) * wk if row_parity >= 0 else i * wk
        sgemm(wf[(i * k_ + k0) * red:], red, pbuf[start:], span, res[m0 * wk:], ldr, kc,
              width, red, np.float32(0.0 if i == 0 else 1.0))
