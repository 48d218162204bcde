"""Stride-2 column perforation of stride-1 convolutions on 32- or 33-wide output maps by
``_microkernel`` phase tiles: no im2col, no GEMM result buffer, no fill pass.

Through the row-block path (``_conv``), such a layer copied its kept columns' patches
(im2col, from the input's column phases), ran a BLAS GEMM into a buffer and filled each
output row from it in a second loop: on the KWS CNN's first layer (1 -> 64 channels, a
20x8 kernel, 82x33 outputs; batch 16, one thread, per sample) 0.050 ms of im2col and 0.099
ms of fill around a 0.283 ms GEMM, against 0.039 and 0.063 ms for row perforation, whose
patches and fill are whole 33-float rows. Here each sample's padded input is split once
into its even and odd columns; a tile's reduction step then loads an output row's 16 kept
inputs of one filter tap as one contiguous run of a column phase (the step's offset from
a table, :func:`phase_offsets`), and the tile writes the whole rows, kept and filled, from
its registers (``_microkernel.phase_tile``).

Covers stride-1 convs larger than 1x1 (any kernel, padding and input channels; ``groups ==
1``, fp32) whose output rows keep 16 values: 32 or 33 wide at offset 0, 32 wide at offset 1
(``_microkernel.PHASE_WIDTHS``), the HAR MobileNet's first layer and the KWS CNN's first
under offset 0 (at offset 1 its rows keep 17, and it stays on the row blocks). ``_conv``
leaves 1x1 convs to their own tiles and the shapes its shifted-rows path takes to that path
(unpadded, ``C*KW >= WIDE_MIN_REDUCTION``: against it the tiles won at batch 1 and lost or
tied at batch 16 on two 64-channel layers).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from ._im2col import split_padded_column_phases
from ._microkernel import (
    ONE_ROW,
    RELU,
    TILE_OUTPUTS,
    TRAIL_COPY,
    phase_tile,
    tile_channels,
)
from ._plan import axis_plan


@njit(cache=True, nogil=True)
def phase_half(w: int, pw: int) -> int:
    """Floats of one column phase of a padded input row: ``ceil((W + 2*pw) / 2)``."""
    return (w + 2 * pw + 1) // 2


@lru_cache(maxsize=256)
def phase_offsets(c: int, kh: int, kw: int, hp: int, half: int, wo: int,
                  offset: int) -> np.ndarray:
    """Per reduction step (filter tap ``(channel, row, column)``, the weights' flat order),
    where output row 0's kept inputs start in a sample's column phases
    (:func:`~._im2col.split_padded_column_phases` with ``hp`` padded rows a channel):
    int64 (C*KH*KW,), read-only. Kept output ``j`` of a row at tap column ``t`` reads padded
    column ``kept[j] + t``, two apart for consecutive ``j``: one run of one phase."""
    first = int(axis_plan(wo, 2, offset)[0][0])  # the first kept output column
    ch, i, t = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
    col = first + t.reshape(-1)
    offs = ((ch.reshape(-1) * hp + i.reshape(-1)) * 2 + col % 2) * half + col // 2
    offs = offs.astype(np.int64)
    offs.flags.writeable = False
    return offs


@njit(cache=True, nogil=True)
def phase_buffer_size(c: int, h: int, w: int, ph: int, pw: int) -> int:
    """Floats of one sample's padded column phases (:func:`phase_tiles`' ``xph``)."""
    return c * (h + 2 * ph) * 2 * phase_half(w, pw)


@njit(cache=True, nogil=True)
def phase_tiles(x, wt, out, n0, n1, r0, r1, toff, kh, ph, pw, offset, bias, relu, xph):
    """Output rows ``r0 .. r1-1`` of samples ``n0 .. n1-1``, every output channel, of a
    stride-1 conv under stride-2 column perforation with ``offset``: per sample, the padded
    input rows those rows read split into column phases (``xph``: at least
    :func:`phase_buffer_size` floats), then phase tiles of ``MR_SIZES`` output channels x two
    rows (one for an odd last row), channel block by channel block.

    ``wt``: the weights transposed, (C*KH*KW, K); ``toff``: :func:`phase_offsets`; ``out``:
    (N, K, Ho, Wo) with ``Wo`` in ``_microkernel.PHASE_WIDTHS[offset]``."""
    k_, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    plane = ho * wo
    half = phase_half(x.shape[3], pw)
    rs = 2 * half  # one padded input row further on
    nc = toff.shape[0]
    wf, of = wt.reshape(-1), out.reshape(-1)
    flags = (RELU if relu else 0) | (TRAIL_COPY if wo == TILE_OUTPUTS + 1 else 0)
    for n in range(n0, n1):
        split_padded_column_phases(x, n, ph, pw, r0, r1 + kh - 1, half, xph)
        m0 = 0
        while m0 < k_:
            mr = tile_channels(k_ - m0)
            d = (n * k_ + m0) * plane
            for r in range(r0, r1, 2):
                one = r + 1 == r1
                phase_tile(offset, mr, wf, m0, k_, xph, r * rs, toff, 0 if one else rs, nc,
                           of, d + r * wo, plane, bias, m0, flags | (ONE_ROW if one else 0),
                           wo)
            m0 += mr


@njit(cache=True, nogil=True)
def phase_tiles_whole(x, wt, out, toff, kh, ph, pw, offset, bias, relu):
    """:func:`phase_tiles` over the whole of ``out``, as one single-threaded call runs it,
    its phase buffer allocated here."""
    xph = np.empty(phase_buffer_size(x.shape[1], x.shape[2], x.shape[3], ph, pw), np.float32)
    phase_tiles(x, wt, out, 0, out.shape[0], 0, out.shape[2], toff, kh, ph, pw, offset, bias,
                relu, xph)
