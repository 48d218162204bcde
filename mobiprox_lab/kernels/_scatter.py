"""Scatter GEMM results into NCHW: fill perforated rows / columns, add bias, round to half."""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from ._half import f16

# Flat arrays and unsigned offsets in the inner loops, as in ``_im2col``.
_HALF = np.float32(0.5)  # keeps the mean in float32, as the reference computes it
FLAT_FILL_MAX_PLANE = 16  # perforated planes of at most this many outputs: one loop a sample
RELU_CHUNK = 256  # relu_block's scratch, float32 values
# uint64 constants: an int literal mixed with a uint64 index makes Numba compute in float64
_U1, _U2 = np.uint64(1), np.uint64(2)


@njit(cache=True, inline="always")
def finish_value(v, bias, has_bias, fp16):
    # fp16: the conv value is rounded to half, then HPVM's separate half bias add
    # (``bias`` already half) is rounded again.
    if fp16:
        v = f16(v)
        if has_bias:
            v = f16(v + bias)
    elif has_bias:
        v = v + bias
    return v


@njit(cache=True, inline="always")
def act(v, relu):
    """``v``, or ReLU of it (NaN and -0.0 kept) if ``relu``."""
    return np.float32(0.0) if relu and v < 0 else v


@njit(cache=True, nogil=True)
def scatter(res, out, n0, k0, hk, wk, row_a, row_b, col_a, col_b, col_s2, bias, has_bias,
            fp16, relu):
    """Write ``res`` (Kc, m*hk*wk) into ``out[n0:n0+m, k0:k0+Kc]`` (N, K, Ho, Wo).

    Column ``s*hk*wk + i*wk + j`` of ``res`` holds kept output row ``i`` (of
    ``hk``) and kept column ``j`` (of ``wk``) of sample ``n0+s``. At most one axis
    is perforated: output ``(ho, wo)`` is the mean of the kept entries
    ``(row_a[ho], col_a[wo])`` and ``(row_b[ho], col_b[wo])``, a copy when they
    coincide (``col_a`` / ``col_b`` are uint64). ``col_s2``: the offset (0 or 1) of
    a stride-2 column perforation, which gets interleaved loops, else -1.
    ``bias`` (K,) is added after the fill.

    fp32 loops add the bias unconditionally (0 without one: it changes nothing but the
    sign of a zero) so that no flag is tested per element and the loops vectorise.
    ``relu`` (fp32 only): ReLU on each value as it is written, not in a pass of its own.
    """
    kc, width = res.shape[0], res.shape[1]
    k_, ho_n, wo_n = out.shape[1], out.shape[2], out.shape[3]
    plane = hk * wk
    m = width // plane
    col_full = wk == wo_n  # no column perforation
    rf = res.reshape(-1)
    of = out.reshape(-1)
    if not fp16 and plane < ho_n * wo_n and ho_n * wo_n <= FLAT_FILL_MAX_PLANE:
        _perforated_small_planes(rf, of, n0, k0, k_, kc, width, hk, wk, ho_n, wo_n, row_a,
                                 row_b, col_a, col_b, bias, has_bias, relu)
        return
    row_s2 = _stride2_offset(row_a, row_b, ho_n) if col_full and hk < ho_n else -1
    for t in range(m * kc):
        s = t // kc
        k = t - s * kc
        src0 = k * width + s * plane
        dst0 = ((n0 + s) * k_ + k0 + k) * ho_n * wo_n
        bv = bias[k0 + k]
        if fp16:
            _plane_fp16(rf, of, src0, dst0, ho_n, wo_n, wk, row_a, row_b, col_a, col_b,
                        bv, has_bias)
            continue
        bz = bv if has_bias else np.float32(0.0)
        if row_s2 >= 0:
            _rows_s2_plane(rf, of, src0, dst0, ho_n, wo_n, hk, row_s2, bz, relu)
        elif col_full:
            _rows_fp32(rf, of, src0, dst0, ho_n, wo_n, row_a, row_b, bz, has_bias, relu)
        else:
            _cols_rows(rf, of, src0, dst0, ho_n, wo_n, wk, col_a, col_b, col_s2, bz, relu)


@njit(cache=True, nogil=True)
def _perforated_small_planes(rf, of, n0, k0, k_, kc, width, hk, wk, ho_n, wo_n, row_a, row_b,
                             col_a, col_b, bias, has_bias, relu):
    """``scatter`` of a perforated result onto planes of a few pixels (fp32): a plane-long
    loop costs more to start than its handful of outputs, so each sample's channels
    ``k0 .. k0+kc`` (consecutive planes of the output) are written in one loop, its sources
    looked up in per-output index tables built once per call."""
    plane = ho_n * wo_n
    kept = hk * wk
    if width == kept:  # one sample: tables of one plane, not worth building for every channel
        _perforated_small_planes_one(rf, of, n0, k0, k_, kc, width, hk, wk, ho_n, wo_n, row_a,
                                     row_b, col_a, col_b, bias, has_bias, relu)
        return
    size = kc * plane
    ia = np.empty(size, np.uint64)
    ib = np.empty(size, np.uint64)
    bvec = np.empty(size, np.float32)
    for k in range(kc):
        bz = bias[k0 + k] if has_bias else np.float32(0.0)
        for ho in range(ho_n):
            for wo in range(wo_n):
                o = k * plane + ho * wo_n + wo
                ia[o] = uint64(k * width + row_a[ho] * wk) + col_a[wo]
                ib[o] = uint64(k * width + row_b[ho] * wk) + col_b[wo]
                bvec[o] = bz
    for s in range(width // kept):
        a = uint64(s * kept)
        d = uint64(((n0 + s) * k_ + k0) * plane)
        for o in range(uint64(size)):
            u = rf[a + ia[o]]
            v = rf[a + ib[o]]
            u = u if ia[o] == ib[o] else _HALF * (u + v)
            of[d + o] = act(u + bvec[o], relu)


@njit(cache=True, nogil=True)
def _perforated_small_planes_one(rf, of, n0, k0, k_, kc, width, hk, wk, ho_n, wo_n, row_a,
                                 row_b, col_a, col_b, bias, has_bias, relu):
    """:func:`_perforated_small_planes` of one sample (``width`` = its kept values): the
    source tables cover one plane and serve every channel, so that a batch-1 call does not
    build ``kc`` planes' worth of them (HAR 128 -> 128 on 4x4, row s2: the whole call
    29 -> 2x us, 1 thread)."""
    plane = ho_n * wo_n
    ia = np.empty(plane, np.uint64)
    ib = np.empty(plane, np.uint64)
    for ho in range(ho_n):
        for wo in range(wo_n):
            ia[ho * wo_n + wo] = uint64(row_a[ho] * wk) + col_a[wo]
            ib[ho * wo_n + wo] = uint64(row_b[ho] * wk) + col_b[wo]
    d = uint64((n0 * k_ + k0) * plane)
    for k in range(kc):
        bz = bias[k0 + k] if has_bias else np.float32(0.0)
        a = uint64(k * width)
        dk = d + uint64(k * plane)
        for o in range(uint64(plane)):
            u = rf[a + ia[o]]
            v = rf[a + ib[o]]
            u = u if ia[o] == ib[o] else _HALF * (u + v)
            of[dk + o] = act(u + bz, relu)


@njit(cache=True, nogil=True)
def fill_column_rows(res, out, n, r0, r1, col_a, col_b, col_s2, bias, has_bias):
    """Rows ``r0 .. r1-1`` of ``out[n]`` (N, K, Ho, Wo), every channel, from ``res``
    (K, (r1-r0)*wk) holding their kept columns (column perforation; fp32), bias after."""
    kc, width = res.shape[0], res.shape[1]
    k_, ho_n, wo_n = out.shape[1], out.shape[2], out.shape[3]
    wk = width // (r1 - r0)
    rf = res.reshape(-1)
    of = out.reshape(-1)
    for k in range(kc):
        bz = bias[k] if has_bias else np.float32(0.0)
        _cols_rows(rf, of, k * width, ((n * k_ + k) * ho_n + r0) * wo_n, r1 - r0, wo_n, wk,
                   col_a, col_b, col_s2, bz, False)


@njit(cache=True, nogil=True)
def _cols_rows(rf, of, src0, dst0, rows, wo_n, wk, col_a, col_b, col_s2, bz, relu):
    """``rows`` consecutive output rows under column perforation, from their kept columns
    (``wk`` a row, consecutive from ``rf[src0]``), plus ``bz``, then ReLU if ``relu``."""
    if col_s2 >= 0 and wo_n % 2 == 0:
        _cols_s2_plane(rf, of, src0, dst0, rows * wk, wk, col_s2, bz, relu)
        return
    for ho in range(rows):
        a = uint64(src0 + ho * wk)
        d = uint64(dst0 + ho * wo_n)
        if col_s2 >= 0:
            _cols_s2_row(rf, of, a, d, wo_n, wk, col_s2, bz, relu)
        else:  # branch-free select: gathers and contiguous stores vectorise
            for wo in range(uint64(wo_n)):
                u = rf[a + col_a[wo]]
                v = rf[a + col_b[wo]]
                u = u if col_a[wo] == col_b[wo] else _HALF * (u + v)
                of[d + wo] = act(u + bz, relu)


@njit(cache=True, nogil=True)
def _rows_fp32(rf, of, src0, dst0, ho_n, wo_n, row_a, row_b, bz, has_bias, relu):
    """One output plane, columns complete: each row a copy of a kept row or the mean of
    two, plus ``bz`` (copies without a bias stay plain copies: exact outputs are bit for
    bit the GEMM's), then ReLU if ``relu``."""
    uw = uint64(wo_n)
    d = uint64(dst0)
    for ho in range(ho_n):
        a = uint64(src0 + row_a[ho] * wo_n)
        b = uint64(src0 + row_b[ho] * wo_n)
        if a == b and has_bias:
            for j in range(uw):
                of[d + j] = act(rf[a + j] + bz, relu)
        elif a == b:
            for j in range(uw):
                of[d + j] = act(rf[a + j], relu)
        else:
            for j in range(uw):
                of[d + j] = act(_HALF * (rf[a + j] + rf[b + j]) + bz, relu)
        d += uw


@njit(cache=True, nogil=True)
def _stride2_offset(row_a, row_b, ho_n):
    """The offset (0 or 1) if ``row_a`` / ``row_b`` are the plan of a stride-2 row
    perforation of ``ho_n`` rows, else -1."""
    for off in range(2):
        pos = 0  # kept rows before row r
        same = True
        for r in range(ho_n):
            if r >= off and (r - off) % 2 == 0:  # skipped
                if r == 0:
                    a = b = 0
                elif r == ho_n - 1:
                    a = b = pos - 1
                else:
                    a, b = pos - 1, pos
            else:
                a = b = pos
                pos += 1
            if row_a[r] != a or row_b[r] != b:
                same = False
                break
        if same:
            return off
    return -1


@njit(cache=True, nogil=True)
def _rows_s2_plane(rf, of, src0, dst0, ho_n, wo_n, hk, off, bz, relu):
    """One output plane under stride-2 row perforation with offset ``off``: kept row ``i``
    is output row ``2i + 1 - off``; each is written in one loop with the skipped row above
    it (the mean of kept rows ``i - 1`` and ``i``), which halves the short row loops; ReLU
    on each value if ``relu``."""
    uw = uint64(wo_n)
    a, d = uint64(src0), uint64(dst0)
    r0 = uint64(1 - off)  # output row of kept row 0
    for j in range(uw):  # kept row 0; with offset 0, row 0 above it is its copy
        v = act(rf[a + j] + bz, relu)
        of[d + j] = v
        of[d + r0 * uw + j] = v
    for i in range(_U1, uint64(hk)):
        ka = a + i * uw
        dk = d + (_U2 * i + r0) * uw
        for j in range(uw):
            u, v = rf[ka - uw + j], rf[ka + j]
            of[dk - uw + j] = act(_HALF * (u + v) + bz, relu)
            of[dk + j] = act(v + bz, relu)
    last = uint64(2 * (hk - 1)) + r0  # output row of the last kept row
    if last + _U1 < uint64(ho_n):  # the last row is skipped: a copy of the one above
        ka = a + uint64(hk - 1) * uw
        dk = d + (last + _U1) * uw
        for j in range(uw):
            of[dk + j] = act(rf[ka + j] + bz, relu)


@njit(cache=True, nogil=True)
def _cols_s2_plane(rf, of, src0, dst0, half, wk, off, bz, relu):
    """One output plane of even width under stride-2 column perforation with offset
    ``off``: its ``half`` kept values (``wk`` per row) interleaved with their means in one
    loop over the whole plane, then the edge columns (copies) of each row fixed; ReLU on
    each value if ``relu``."""
    a, d = uint64(src0), uint64(dst0)
    uh = uint64(half)
    if off == 0:  # kept odd columns: out[2p+1] = r[p], out[2p] = mean(r[p-1], r[p])
        for p in range(_U1, uh):
            u, v = rf[a + p - _U1], rf[a + p]
            of[d + _U2 * p] = act(_HALF * (u + v) + bz, relu)
            of[d + _U2 * p + _U1] = act(v + bz, relu)
        of[d + _U1] = act(rf[a] + bz, relu)
        for p in range(0, half, wk):  # column 0 of each row copies column 1
            of[d + uint64(2 * p)] = act(rf[a + uint64(p)] + bz, relu)
    else:  # kept even columns: out[2p] = r[p], out[2p+1] = mean(r[p], r[p+1])
        for p in range(uh - _U1):
            u, v = rf[a + p], rf[a + p + _U1]
            of[d + _U2 * p] = act(u + bz, relu)
            of[d + _U2 * p + _U1] = act(_HALF * (u + v) + bz, relu)
        for p in range(wk - 1, half, wk):  # the last column of each row copies the one before
            v = act(rf[a + uint64(p)] + bz, relu)
            of[d + uint64(2 * p)] = v
            of[d + uint64(2 * p + 1)] = v


@njit(cache=True, nogil=True)
def columns_s2_sample(rf, of, dst0, n_kept, off, bvec, edge, relu):
    """Planes of even width under stride-2 column perforation with offset ``off``, written
    from ``rf``'s first ``n_kept`` values (consecutive planes' kept values, in order) to
    ``of[dst0:]`` in one loop: kept value ``q`` is output ``2q + 1 - off``, its skipped
    neighbour (``2q`` or ``2q + 1``) the mean of it and the kept value beyond, or a copy
    where ``edge[q]`` (column 0 / Wo-1). ``bvec[q]``: the bias to add; then ReLU if ``relu``."""
    d = uint64(dst0)
    n = uint64(n_kept)
    if off == 0:  # kept odd columns: out[2q+1] = r[q], out[2q] = mean(r[q-1], r[q])
        for q in range(_U1, n):
            u, v = rf[q - _U1], rf[q]
            b = bvec[q]
            m = v if edge[q] else _HALF * (u + v)
            of[d + _U2 * q] = act(m + b, relu)
            of[d + _U2 * q + _U1] = act(v + b, relu)
        v = act(rf[0] + bvec[0], relu)
        of[d] = v
        of[d + _U1] = v
    else:  # kept even columns: out[2q] = r[q], out[2q+1] = mean(r[q], r[q+1])
        for q in range(n - _U1):
            u, v = rf[q], rf[q + _U1]
            b = bvec[q]
            m = u if edge[q] else _HALF * (u + v)
            of[d + _U2 * q] = act(u + b, relu)
            of[d + _U2 * q + _U1] = act(m + b, relu)
        last = n - _U1
        v = act(rf[last] + bvec[last], relu)
        of[d + _U2 * last] = v
        of[d + _U2 * last + _U1] = v


@njit(cache=True, nogil=True)
def _cols_s2_row(rf, of, a, d, wo_n, wk, off, bz, relu):
    """One output row (any width) under stride-2 column perforation with offset ``off``;
    ReLU on each value if ``relu``."""
    if off == 0:  # kept odd columns: out[2p+1] = r[p], out[2p] = mean(r[p-1], r[p])
        for p in range(_U1, uint64(wk)):
            u, v = rf[a + p - _U1], rf[a + p]
            of[d + _U2 * p] = act(_HALF * (u + v) + bz, relu)
            of[d + _U2 * p + _U1] = act(v + bz, relu)
        of[d] = of[d + _U1] = act(rf[a] + bz, relu)
        if wo_n % 2:
            of[d + uint64(wo_n - 1)] = act(rf[a + uint64(wk - 1)] + bz, relu)
    else:  # kept even columns: out[2p] = r[p], out[2p+1] = mean(r[p], r[p+1])
        for p in range(uint64(wk - 1)):
            u, v = rf[a + p], rf[a + p + _U1]
            of[d + _U2 * p] = act(u + bz, relu)
            of[d + _U2 * p + _U1] = act(_HALF * (u + v) + bz, relu)
        last = act(rf[a + uint64(wk - 1)] + bz, relu)
        of[d + uint64(2 * (wk - 1))] = last
        if wo_n % 2 == 0:
            of[d + uint64(wo_n - 1)] = last


@njit(cache=True, nogil=True)
def _plane_fp16(rf, of, src0, dst0, ho_n, wo_n, wk, row_a, row_b, col_a, col_b, bv,
                has_bias):
    """One output plane in half precision: the kept values rounded to half before the
    mean, the result (and the bias sum) rounded again."""
    col_full = wk == wo_n
    for ho in range(ho_n):
        a = uint64(src0 + row_a[ho] * wk)
        b = uint64(src0 + row_b[ho] * wk)
        d = uint64(dst0 + ho * wo_n)
        if col_full and a == b:
            for wo in range(uint64(wo_n)):
                of[d + wo] = finish_value(rf[a + wo], bv, has_bias, True)
        elif col_full:  # an interpolated row
            for wo in range(uint64(wo_n)):
                u = _HALF * (f16(rf[a + wo]) + f16(rf[b + wo]))
                of[d + wo] = finish_value(u, bv, has_bias, True)
        else:  # column perforation (rows are not perforated: a == b)
            for wo in range(uint64(wo_n)):
                u = f16(rf[a + col_a[wo]])
                if col_a[wo] != col_b[wo]:
                    u = _HALF * (u + f16(rf[a + col_b[wo]]))
                of[d + wo] = finish_value(u, bv, has_bias, True)


@njit(cache=True, nogil=True)
def finish(out, n0, n1, k0, k1, bias, has_bias, fp16):
    """Add ``bias`` to ``out[n0:n1, k0:k1]`` of ``out`` (N, K, Ho, Wo) in place.

    With ``fp16`` the values are rounded to half first and the sum again.
    """
    k_ = out.shape[1]
    plane = out.shape[2] * out.shape[3]
    of = out.reshape(-1)
    for n in range(n0, n1):
        for k in range(k0, k1):
            bv = bias[k]
            d = uint64((n * k_ + k) * plane)
            for j in range(uint64(plane)):
                of[d + j] = finish_value(of[d + j], bv, has_bias, fp16)


@njit(cache=True, nogil=True)
def _relu_run(of, start, length, tmp):
    """ReLU in place on ``of[start:start + length]``, through ``tmp`` a chunk at a time."""
    if length <= 0:
        return
    zero = np.float32(0.0)
    d = uint64(start)
    end = d + uint64(length)
    chunk = uint64(tmp.shape[0])
    while d < end:
        m = min(chunk, end - d)
        for i in range(m):
            tmp[i] = of[d + i]
        for i in range(m):
            v = tmp[i]
            of[d + i] = zero if v < 0 else v
        d += m


@njit(cache=True, nogil=True)
def relu_block(out, n0, n1, k0, k1, j0, j1):
    """ReLU in place on ``out[n0:n1, k0:k1]`` (N, K, Ho, Wo), flat plane positions
    ``j0 .. j1-1`` (NaN stays NaN and -0.0 stays -0.0, as with ``torch.relu``).

    Each run of values is copied to a small scratch and written back from it: written in
    place in one loop (``v = of[i]; of[i] = 0 if v < 0 else v``), LLVM turns the loop into
    a conditional store of zeros, which does not vectorise (this VM, one thread: 16 GB/s
    read + write on a block in L2, against 70-80 GB/s through the scratch)."""
    k_ = out.shape[1]
    plane = out.shape[2] * out.shape[3]
    of = out.reshape(-1)
    tmp = np.empty(RELU_CHUNK, np.float32)
    whole = j0 == 0 and j1 == plane  # the samples' channels k0 .. k1-1: one run a sample
    for n in range(n0, n1):
        if whole:
            _relu_run(of, (n * k_ + k0) * plane, (k1 - k0) * plane, tmp)
            continue
        for k in range(k0, k1):
            _relu_run(of, (n * k_ + k) * plane + j0, j1 - j0, tmp)
