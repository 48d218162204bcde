"""Exact, filter-sampled and stride-2 row-perforated stride-1 convolutions with 32-wide
output rows by ``_microkernel`` tap tiles: no im2col, no GEMM result buffer, no fill pass.

The HAR MobileNet's first layer (3 -> 16 channels, 3x3, padding 1, 32x32 outputs) ran
through im2col and a BLAS GEMM 27 deep; at batch 1 (two threads) exact took 0.058 ms and
row perforation 0.057, while column perforation by phase tiles (``_phase_tiles``) took
0.015. Here each sample's input is copied once, zero-padded; a tile's reduction step (one
filter tap of one input channel, the kept ones under filter sampling) then loads an output
row's 32 inputs as one run of a padded input row, its offset from a table
(:func:`tap_offsets`), and the tile stores the row, or, a kept row of stride-2 row
perforation, the row and the skipped rows beside it (``_microkernel.tap_tile``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, uint64

from ._memory import aligned_buffer
from ._microkernel import RELU, TILE_OUTPUTS, tap_tile, tile_channels
from ._plan import reduction_plan

TAP_WIDTH = TILE_OUTPUTS  # the output width tap tiles cover


@lru_cache(maxsize=256)
def tap_offsets(c: int, kh: int, kw: int, hp: int, wp: int, stride: int = 1,
                offset: int = 0) -> np.ndarray:
    """Per reduction step (the kept filter taps of ``_plan.reduction_plan`` with sampling
    ``stride`` / ``offset``, 1 / 0 for all of them, in its order), where output row 0's
    inputs start in a sample's padded input (:func:`pad_sample`: ``hp`` rows of ``wp`` a
    channel): int64, read-only."""
    _, chan, row, col = reduction_plan(c, kh, kw, stride, offset)
    offs = ((chan * hp + row) * wp + col).astype(np.int64)
    offs.flags.writeable = False
    return offs


@njit(cache=True, nogil=True)
def pad_buffer_size(c: int, h: int, w: int, ph: int, pw: int) -> int:
    """Floats of one sample's padded input (:func:`pad_sample`'s ``xpad``)."""
    return c * (h + 2 * ph) * (w + 2 * pw)


@njit(cache=True, nogil=True)
def pad_sample(x, n, ph, pw, xpad):
    """Sample ``n`` of ``x`` (N, C, H, W), zero-padded by ``ph`` rows and ``pw`` columns each
    side, into ``xpad`` (:func:`pad_buffer_size` floats), row-major."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    hp, wp = h_ + 2 * ph, w_ + 2 * pw
    xf = x.reshape(-1)
    for c in range(c_):
        for h in range(hp):
            d = uint64((c * hp + h) * wp)
            ih = h - ph
            if ih < 0 or ih >= h_:
                for j in range(uint64(wp)):
                    xpad[d + j] = 0.0
                continue
            for j in range(uint64(pw)):
                xpad[d + j] = 0.0
                xpad[d + uint64(pw + w_) + j] = 0.0
            s = uint64(((n * c_ + c) * h_ + ih) * w_)
            dd = d + uint64(pw)
            for j in range(uint64(w_)):
                xpad[dd + j] = xf[s + j]


@njit(cache=True, nogil=True)
def tap_tiles(x, wt, out, n0, n1, k0, k1, toff, ph, pw, rows, d0, flags, bias, relu, xpad,
              carry):
    """``out[n0:n1, k0:k1]`` of a stride-1 conv with 32-wide output rows by tap tiles of the
    transposed (kept, rescaled) weights ``wt`` (R, K) and tap offsets ``toff``
    (:func:`tap_offsets`): per sample, its padded input into ``xpad``, then ``MR_SIZES``
    output channels at a time through every output row, or with ``rows`` the kept rows of
    stride-2 row perforation, the tiles ``d0`` / ``flags`` of
    ``_microkernel.tile_plan("row", offset, Ho, 32)`` in order (``carry``: at least ``(k1 -
    k0) * 32`` floats, 64-byte aligned)."""
    k_, ho = out.shape[1], out.shape[2]
    plane = ho * TAP_WIDTH
    wp = x.shape[3] + 2 * pw
    nc = toff.shape[0]
    wf, of = wt.reshape(-1), out.reshape(-1)
    extra = RELU if relu else 0
    for n in range(n0, n1):
        pad_sample(x, n, ph, pw, xpad)
        m0 = k0
        while m0 < k1:
            mr = tile_channels(k1 - m0)
            base = (n * k_ + m0) * plane
            cm = carry[(m0 - k0) * TAP_WIDTH:]
            if rows:
                for j in range(d0.shape[0]):
                    tap_tile(True, mr, wf, m0, k_, xpad, (d0[j] // TAP_WIDTH) * wp, toff, nc,
                             of, base + d0[j], plane, bias, m0, cm, flags[j] | extra)
            else:
                for r in range(ho):
                    tap_tile(False, mr, wf, m0, k_, xpad, r * wp, toff, nc, of,
                             base + r * TAP_WIDTH, plane, bias, m0, cm, extra)
            m0 += mr


@njit(cache=True, nogil=True)
def tap_tiles_whole(x, wt, out, toff, ph, pw, rows, d0, flags, bias, relu):
    """:func:`tap_tiles` over the whole of ``out``, as one single-threaded call runs it, its
    padded input and carry allocated here."""
    xpad = np.empty(pad_buffer_size(x.shape[1], x.shape[2], x.shape[3], ph, pw), np.float32)
    carry = aligned_buffer(out.shape[1] * TAP_WIDTH if rows else 0)
    tap_tiles(x, wt, out, 0, out.shape[0], 0, out.shape[1], toff, ph, pw, rows, d0, flags,
              bias, relu, xpad, carry)
