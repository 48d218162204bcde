"""Reduced im2col: gather only the kept filter elements at only the kept output positions."""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

# Inner loops use flat arrays and unsigned offsets: no per-row array views (their
# reference counting costs more than a short row copy) and no negative-index
# wraparound, so LLVM vectorises the copies. Measured ~2x faster than views.


@njit(cache=True, nogil=True)
def im2col(x, n0, m, chan, krow, kcol, hsrc, wsrc, cols):
    """Fill ``cols`` (R, m*Hk*Wk) from samples ``n0 .. n0+m-1`` of ``x`` (N, C, H, W).

    ``cols[r, s*Hk*Wk + i*Wk + j] = x[n0+s, chan[r], hsrc[i] + krow[r], wsrc[j] + kcol[r]]``,
    zero outside the input (padding). ``hsrc`` / ``wsrc`` (increasing) are the
    top / left input coordinate of each kept output row / column:
    ``kept * stride - padding``.
    """
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    r_, hk, wk = chan.shape[0], hsrc.shape[0], wsrc.shape[0]
    plane = hk * wk
    width = cols.shape[1]
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    # kept columns a constant step apart in the input (1: plain copies; 2: stride-2
    # column perforation or a stride-2 conv) are read without an offset table
    step = wsrc[1] - wsrc[0] if wk > 1 else 1
    for j in range(1, wk):
        if wsrc[j] - wsrc[j - 1] != step:
            step = 0
    regular = step > 0
    # per filter column kw: the kept columns inside the image, [lo, hi), and (when
    # not regular) their input column offsets
    kw_n = 0
    for r in range(r_):
        kw_n = max(kw_n, kcol[r] + 1)
    lo = np.zeros(kw_n, np.int64)
    hi = np.zeros(kw_n, np.int64)
    offs = np.zeros((kw_n, 1 if regular else wk), np.uint64)
    for kw in range(kw_n):
        j0 = 0
        while j0 < wk and wsrc[j0] + kw < 0:
            j0 += 1
        j1 = wk
        while j1 > j0 and wsrc[j1 - 1] + kw >= w_:
            j1 -= 1
        lo[kw], hi[kw] = j0, j1
        if regular:
            offs[kw, 0] = wsrc[j0] + kw if j1 > j0 else 0
        else:
            for j in range(j0, j1):
                offs[kw, j] = wsrc[j] + kw
    for t in range(r_ * m):
        s = t // r_  # sample-major: consecutive tasks read the same input plane
        r = t - s * r_
        kh, kw = krow[r], kcol[r]
        j0, j1 = lo[kw], hi[kw]
        off = offs[kw]
        src0 = ((n0 + s) * c_ + chan[r]) * h_ * w_
        dst0 = r * width + s * plane
        for i in range(hk):
            d = uint64(dst0 + i * wk)
            ih = hsrc[i] + kh
            if ih < 0 or ih >= h_ or j0 > 0 or j1 < wk:
                for j in range(uint64(wk)):
                    cf[d + j] = 0.0
                if ih < 0 or ih >= h_:
                    continue
            srow = uint64(src0 + ih * w_)
            if step == 1:
                sd = srow + off[0]
                dd = d + uint64(j0)
                for j in range(uint64(j1 - j0)):
                    cf[dd + j] = xf[sd + j]
            elif regular:
                sd = srow + off[0]
                dd = d + uint64(j0)
                st = uint64(step)
                for j in range(uint64(j1 - j0)):
                    cf[dd + j] = xf[sd + j * st]
            else:
                for j in range(uint64(j0), uint64(j1)):
                    cf[d + j] = xf[srow + off[j]]


@njit(cache=True, nogil=True)
def im2col_column_phases(xph, h_, w_, chan, krow, kcol, hsrc, w0, wk, cols):
    """``im2col`` of one sample for kept output columns two input columns apart (stride-2
    column perforation of a stride-1 conv), from its column phases
    (:func:`split_padded_column_phases` of all its rows, no padding): the kept columns of
    every filter tap are then one contiguous run.

    ``cols[r, i*wk + j] = x[chan[r], hsrc[i] + krow[r], w0 + kcol[r] + 2j]`` (0 outside);
    ``w0``: the input column of kept output column 0 at tap column 0."""
    half = (w_ + 1) // 2
    r_, hk = chan.shape[0], hsrc.shape[0]
    width = cols.shape[1]
    cf = cols.reshape(-1)
    for r in range(r_):
        c0 = w0 + kcol[r]  # input column of kept column 0: its parity is the phase
        p = c0 & 1
        q0 = (c0 - p) // 2
        j0 = 0 if q0 >= 0 else -q0
        j1 = min(wk, (w_ - p + 1) // 2 - q0)  # q0 + j < number of columns of phase p
        j1 = max(j0, j1)
        for i in range(hk):
            d = uint64(r * width + i * wk)
            ih = hsrc[i] + krow[r]
            if ih < 0 or ih >= h_:
                for j in range(uint64(wk)):
                    cf[d + j] = 0.0
                continue
            if j0 > 0 or j1 < wk:  # padding: zeros around the run
                for j in range(uint64(wk)):
                    cf[d + j] = 0.0
            s = uint64(((chan[r] * h_ + ih) * 2 + p) * half + q0 + j0)
            dd = d + uint64(j0)
            for j in range(uint64(j1 - j0)):
                cf[dd + j] = xph[s + j]


@njit(cache=True, nogil=True)
def split_padded_column_phases(x, n, ph, pw, h0, h1, half, xph):
    """Rows ``h0 .. h1-1`` of sample ``n`` of ``x`` (N, C, H, W) zero-padded by ``ph`` rows
    and ``pw`` columns each side, split into even and odd padded columns:
    ``xph[((c*Hp + h)*2 + p)*half + q] = xpad[c, h, 2q + p]`` (0 past the padded width),
    ``Hp = H + 2*ph``; ``xph`` holds ``C * Hp * 2 * half`` floats, its other rows untouched."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    hp_n = h_ + 2 * ph
    xf = x.reshape(-1)
    q0 = (pw + 1) // 2, pw // 2  # per phase: the first slot holding an input column
    for c in range(c_):
        for h in range(h0, h1):
            d = uint64(((c * hp_n + h) * 2) * half)
            ih = h - ph
            if ih < 0 or ih >= h_:
                for j in range(uint64(2 * half)):
                    xph[d + j] = 0.0
                continue
            for p in range(2):  # the padding slots
                dp = d + uint64(p * half)
                for q in range(uint64(q0[p])):  # input column 2q + p - pw < 0
                    xph[dp + q] = 0.0
                for q in range(uint64(min(half, (w_ + pw - p + 1) // 2)), uint64(half)):
                    xph[dp + q] = 0.0  # input column >= W
            s = uint64(((n * c_ + c) * h_ + ih) * w_)
            for j in range(w_):  # one pass over the input row
                pc = j + pw
                xph[d + uint64((pc & 1) * half + (pc >> 1))] = xf[s + uint64(j)]
