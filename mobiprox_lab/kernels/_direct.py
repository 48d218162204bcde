"""Direct (loop) convolution for depthwise and narrow grouped layers: no im2col, no GEMM."""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from ._scatter import _finish


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
                of[uint64(o0) + j] = _finish(of[uint64(o0) + j], bv, has_bias, fp16)


@njit(cache=True, nogil=True)
def depthwise_nhwc(x, w, out, n0, n1, sh, sw, ph, pw, bias, has_bias, fp16):
    """Depthwise conv (K == C, one filter per channel) of samples ``n0 .. n1-1``, small maps.

    Each sample is transposed into a zero-padded (Hp, Wp, C) scratch so that every
    tap is one multiply-add over a contiguous run of C channels (vectorised),
    then transposed back into ``out`` (N, C, Ho, Wo).
    """
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    kh_, kw_ = w.shape[2], w.shape[3]
    ho_n, wo_n = out.shape[2], out.shape[3]
    hp, wp = h_ + 2 * ph, w_ + 2 * pw
    cu = uint64(c_)
    xs = np.zeros(hp * wp * c_, np.float32)  # the border stays zero
    acc = np.empty(ho_n * wo_n * c_, np.float32)
    wt = np.empty(kh_ * kw_ * c_, np.float32)
    for c in range(c_):
        for kh in range(kh_):
            for kw in range(kw_):
                wt[(kh * kw_ + kw) * c_ + c] = w[c, 0, kh, kw]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for n in range(n0, n1):
        hw = uint64(h_ * w_)
        src = uint64(n * c_ * h_ * w_)
        for ih in range(h_):
            for iw in range(w_):
                d = uint64(((ih + ph) * wp + pw + iw) * c_)
                s0 = src + uint64(ih * w_ + iw)
                for c in range(cu):
                    xs[d + c] = xf[s0 + c * hw]
        for ho in range(ho_n):
            for wo in range(wo_n):
                a = uint64((ho * wo_n + wo) * c_)
                for c in range(cu):
                    acc[a + c] = 0.0
                for kh in range(kh_):
                    for kw in range(kw_):
                        sx = uint64(((ho * sh + kh) * wp + wo * sw + kw) * c_)
                        sw_ = uint64((kh * kw_ + kw) * c_)
                        for c in range(cu):
                            acc[a + c] += wt[sw_ + c] * xs[sx + c]
        pl = uint64(ho_n * wo_n)
        d = uint64(n * c_) * pl
        if has_bias or fp16:
            for j in range(pl):
                for c in range(cu):
                    of[d + c * pl + j] = _finish(acc[j * cu + c], bias[c], has_bias, fp16)
        else:
            for j in range(pl):
                for c in range(cu):
                    of[d + c * pl + j] = acc[j * cu + c]
