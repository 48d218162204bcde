"""Direct (loop) convolution for depthwise and narrow grouped layers: no im2col, no GEMM."""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from ._scatter import act, finish_value
from ._transpose import transpose_block


@njit(cache=True, nogil=True)
def direct_conv(x, w, out, n0, n1, sh, sw, ph, pw, groups, bias, has_bias, fp16):
    """``out[n0:n1]`` = grouped conv of ``x[n0:n1]`` with ``w``.

    x (N, C, H, W), w (K, C/groups, KH, KW), out (N, K, Ho, Wo).

    Plane by plane (sample, output channel); each tap is accumulated in
    fp32 over the whole plane, which stays in L1. Flat arrays and unsigned
    offsets in the inner loops (see ``_im2col``).
    """
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    k_, cg_, kh_, kw_ = w.shape
    ho_n, wo_n = out.shape[2], out.shape[3]
    kg = k_ // groups
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for t in range(n0 * k_, n1 * k_):
        n = t // k_
        k = t - n * k_
        c0 = (k // kg) * cg_
        o0 = t * ho_n * wo_n
        for j in range(uint64(ho_n * wo_n)):
            of[uint64(o0) + j] = 0.0
        for cg in range(cg_):
            x0 = (n * c_ + c0 + cg) * h_ * w_
            for kw in range(kw_):
                # output columns whose input column wo*sw - pw + kw is inside the image
                wo0 = max(0, (pw - kw + sw - 1) // sw)
                wo1 = min(wo_n, (w_ - 1 + pw - kw) // sw + 1)
                if wo1 <= wo0:
                    continue
                for kh in range(kh_):
                    wv = w[k, cg, kh, kw]
                    for ho in range(ho_n):
                        ih = ho * sh - ph + kh
                        if ih < 0 or ih >= h_:
                            continue
                        d = uint64(o0 + ho * wo_n + wo0)
                        src = uint64(x0 + ih * w_ + wo0 * sw - pw + kw)
                        if sw == 1:
                            for j in range(uint64(wo1 - wo0)):
                                of[d + j] += wv * xf[src + j]
                        else:
                            for j in range(uint64(wo1 - wo0)):
                                of[d + j] += wv * xf[src + j * uint64(sw)]
        if fp16 or has_bias:
            bv = bias[k]
            for j in range(uint64(ho_n * wo_n)):
                of[uint64(o0) + j] = finish_value(of[uint64(o0) + j], bv, has_bias, fp16)


@njit(cache=True, nogil=True)
def depthwise_nhwc(x, w, out, n0, n1, sh, sw, ph, pw, bias, has_bias, fp16, relu):
    """Depthwise conv (K == C, one filter per channel) of samples ``n0 .. n1-1``, small maps.

    Each sample's (C, H*W) planes are transposed into an (H*W, C) scratch so that every
    tap is one multiply-add over a contiguous run of C channels (vectorised); taps that
    fall on the padding are skipped. The bias, the fp16 rounding and, if ``relu``, ReLU
    (NaN kept) are applied to each output pixel's channels, and the (Ho*Wo, C) result is
    transposed back into ``out`` (N, C, Ho, Wo): a separate ReLU pass over these small
    planes cost a fifth of the layer (HAR's 4x4 maps, 256 channels, batch 64). Both
    transposes go by 8 x 8 tiles of vector shuffles (``_transpose``).
    """
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    kh_, kw_ = w.shape[2], w.shape[3]
    ho_n, wo_n = out.shape[2], out.shape[3]
    cu = uint64(c_)
    hw = h_ * w_
    pl = ho_n * wo_n
    taps = kh_ * kw_
    xs = np.empty(hw * c_, np.float32)
    acc = np.empty(pl * c_, np.float32)
    wt = np.empty(taps * c_, np.float32)
    transpose_block(w.reshape(-1), 0, taps, wt, 0, c_, c_, taps)  # wt[t*C + c] = w[c, t]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for n in range(n0, n1):
        transpose_block(xf, n * c_ * hw, hw, xs, 0, c_, c_, hw)
        for ho in range(ho_n):
            kh0, kh1 = max(0, ph - ho * sh), min(kh_, h_ + ph - ho * sh)
            for wo in range(wo_n):
                kw0, kw1 = max(0, pw - wo * sw), min(kw_, w_ + pw - wo * sw)
                a = uint64((ho * wo_n + wo) * c_)
                for c in range(cu):
                    acc[a + c] = 0.0
                for kh in range(kh0, kh1):
                    for kw in range(kw0, kw1):
                        sx = uint64(((ho * sh - ph + kh) * w_ + wo * sw - pw + kw) * c_)
                        st = uint64((kh * kw_ + kw) * c_)
                        for c in range(cu):
                            acc[a + c] += wt[st + c] * xs[sx + c]
                if has_bias or fp16 or relu:
                    for c in range(cu):
                        v = finish_value(acc[a + c], bias[c], has_bias, fp16)
                        acc[a + c] = act(v, relu)
        transpose_block(acc, 0, c_, of, n * c_ * pl, pl, pl, c_)


@njit(cache=True, nogil=True)
def depthwise_phases(x, w, out, n0, n1, c0, c1, sh, sw, ph, pw, bias, has_bias, buf, relu):
    """Depthwise conv (K == C, one filter per channel) of channels ``c0 .. c1-1`` of samples
    ``n0 .. n1-1``, plane by plane, for any stride and padding; ReLU (NaN kept) on the
    output if ``relu``.

    Each zero-padded input plane is split into its ``sh*sw`` stride phases
    (``phase[a, b][r, q] = padded[r*sh + a, q*sw + b]``, each ``hq x wq``) in ``buf``
    (float32, at least :func:`depthwise_buffer_size` elements, zero on the first call: only
    the image's positions are ever written, so padding stays zero). Tap ``(i, j)`` then reads
    phase ``(i % sh, j % sw)`` shifted by ``(i // sh, j // sw)``: every output of a "wide"
    plane (``ho`` rows of ``wq``) is one contiguous, vectorised multiply-add per tap; the
    ``wo`` valid columns of each row are written to ``out`` with the bias. Unsigned indices
    throughout (see ``_im2col``); ``x``, ``w`` and ``out`` C-contiguous. Each plane's taps are
    read straight from ``w`` in order: indexing ``w[c, 0, t // kw, t % kw]`` cost two integer
    divisions per tap and plane, 15-30 % of HAR's 8x8 and 4x4 layers (one thread, batch 64).

    One function on purpose (~90 lines): it is the depthwise hot loop, whose set-up arrays
    (tap offsets, phase bounds) feed the inner loops directly; splitting it into Numba
    calls would risk the unrolled 3x3 path's vectorisation for no gain in clarity.
    """
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    kh_, kw_ = w.shape[2], w.shape[3]
    ho_n, wo_n = out.shape[2], out.shape[3]
    hq = (h_ + 2 * ph + sh - 1) // sh
    wq = (w_ + 2 * pw + sw - 1) // sw
    pq = hq * wq
    taps = kh_ * kw_
    offs = np.empty(taps, np.uint64)
    for i in range(kh_):
        for j in range(kw_):
            offs[i * kw_ + j] = ((i % sh) * sw + j % sw) * pq + (i // sh) * wq + j // sw
    # per phase: the phase rows / columns that hold image pixels, [lo, hi), and the image
    # row / column of the first of them
    nph = sh * sw
    r_lo = np.empty(nph, np.int64)
    r_hi = np.empty(nph, np.int64)
    q_lo = np.empty(nph, np.int64)
    q_hi = np.empty(nph, np.int64)
    for a in range(sh):
        for b in range(sw):
            f = a * sw + b
            r_lo[f] = (ph - a + sh - 1) // sh if ph > a else 0
            r_hi[f] = max(r_lo[f], (h_ - 1 + ph - a) // sh + 1)
            q_lo[f] = (pw - b + sw - 1) // sw if pw > b else 0
            q_hi[f] = max(q_lo[f], (w_ - 1 + pw - b) // sw + 1)
    wide = uint64(ho_n * wq)
    acc = np.empty(ho_n * wq, np.float32)
    wv = np.empty(taps, np.float32)
    xf = x.reshape(-1)
    of = out.reshape(-1)
    wf = w.reshape(-1)
    three = kh_ == 3 and kw_ == 3
    usw = uint64(sw)
    for n in range(n0, n1):
        for c in range(c0, c1):
            src = (n * c_ + c) * h_ * w_
            for a in range(sh):  # scatter the plane into its phases
                for b in range(sw):
                    f = a * sw + b
                    q0, q1 = q_lo[f], q_hi[f]
                    if q1 <= q0:
                        continue
                    for rq in range(r_lo[f], r_hi[f]):
                        ih = rq * sh + a - ph
                        d = uint64(f * pq + rq * wq + q0)
                        s0 = uint64(src + ih * w_ + q0 * sw + b - pw)
                        if sw == 1:
                            for t in range(uint64(q1 - q0)):
                                buf[d + t] = xf[s0 + t]
                        else:
                            for t in range(uint64(q1 - q0)):
                                buf[d + t] = xf[s0 + t * usw]
            for t in range(taps):  # w is C-contiguous: its taps in order (no division)
                wv[t] = wf[uint64(c * taps + t)]
            if three:
                o0, o1, o2, o3, o4 = offs[0], offs[1], offs[2], offs[3], offs[4]
                o5, o6, o7, o8 = offs[5], offs[6], offs[7], offs[8]
                w0, w1, w2, w3, w4 = wv[0], wv[1], wv[2], wv[3], wv[4]
                w5, w6, w7, w8 = wv[5], wv[6], wv[7], wv[8]
                for p in range(wide):
                    acc[p] = (w0 * buf[p + o0] + w1 * buf[p + o1] + w2 * buf[p + o2]
                              + w3 * buf[p + o3] + w4 * buf[p + o4] + w5 * buf[p + o5]
                              + w6 * buf[p + o6] + w7 * buf[p + o7] + w8 * buf[p + o8])
            else:
                for p in range(wide):
                    acc[p] = 0.0
                for t in range(taps):
                    o, v = offs[t], wv[t]
                    for p in range(wide):
                        acc[p] += v * buf[p + o]
            bv = bias[c] if has_bias else np.float32(0.0)
            d0 = (n * c_ + c) * ho_n * wo_n
            for ho in range(ho_n):
                d = uint64(d0 + ho * wo_n)
                s0 = uint64(ho * wq)
                for j in range(uint64(wo_n)):
                    v = acc[s0 + j] + bv
                    of[d + j] = act(v, relu)


def depthwise_buffer_size(h: int, w: int, kh: int, kw: int, sh: int, sw: int, ph: int,
                          pw: int) -> int:
    """Elements of the phase buffer :func:`depthwise_phases` needs."""
    hq = (h + 2 * ph + sh - 1) // sh
    wq = (w + 2 * pw + sw - 1) // sw
    ho = (h + 2 * ph - kh) // sh + 1
    # the last phase, plus the widest tap shift read past a wide row
    return sh * sw * hq * wq + ((kh - 1) // sh + 1) * wq + (kw - 1) // sw + ho * wq
