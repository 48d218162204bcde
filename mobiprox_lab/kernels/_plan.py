"""Index plans of the approximations: which output rows / columns and filter elements to compute.

Pure Python + NumPy, memoised per shape and knob. The arrays returned are
shared between calls and must not be modified.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=512)
def axis_plan(n: int, stride: int, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Perforation of one output axis of length ``n`` (``stride`` 1 = none).

    Returns ``(kept, src_a, src_b)``: ``kept`` the computed positions (sorted);
    for every output position ``p``, the result is the mean of computed entries
    ``src_a[p]`` and ``src_b[p]`` (indices into ``kept``; equal when ``p`` is
    computed or copied from a neighbour).
    """
    idx = np.arange(n)
    if stride == 1:
        return idx, idx, idx
    skipped = (idx >= offset) & ((idx - offset) % stride == 0)
    kept = idx[~skipped]
    pos = np.full(n, -1, dtype=np.int64)
    pos[kept] = np.arange(kept.size)
    src_a, src_b = pos.copy(), pos.copy()
    for p in idx[skipped]:
        if p == 0:
            src_a[p] = src_b[p] = pos[1]
        elif p == n - 1:
            src_a[p] = src_b[p] = pos[n - 2]
        else:
            src_a[p], src_b[p] = pos[p - 1], pos[p + 1]
    return kept, src_a, src_b


@lru_cache(maxsize=512)
def output_plan(knob, ho: int, wo: int) -> tuple:
    """Which outputs of an ``ho x wo`` map a knob (``knobs.Knob``) computes and how the
    others are filled: ``(rows, row_a, row_b, cols, col_a, col_b, col_s2)``.

    ``rows`` / ``cols`` (int64): the kept output rows / columns; ``row_a`` / ``row_b``: the
    :func:`axis_plan` sources of every output row; ``col_a`` / ``col_b``: those of every
    column, as uint64 (:func:`column_sources`); ``col_s2``: the offset of a stride-2 column
    perforation, else -1. Without perforation everything is kept.
    """
    row = col = (1, 0)
    if knob.technique == "perforation":
        row, col = ((knob.stride, knob.offset), col) if knob.axis == "row" else \
            (row, (knob.stride, knob.offset))
    rows, row_a, row_b = axis_plan(ho, *row)
    col_a, col_b = column_sources(wo, *col)
    return (rows, row_a, row_b, axis_plan(wo, *col)[0], col_a, col_b,
            col[1] if col[0] == 2 else -1)


@lru_cache(maxsize=512)
def sampling_kept(c: int, kh: int, kw: int, stride: int, offset: int) -> np.ndarray:
    """Flat indices into ``c*kh*kw`` of the filter elements a sampling knob keeps.

    Regular case ``(kh*kw) % stride == 0``: the offset rotates per input channel,
    ``o_c = (offset + c) % stride``; otherwise the pattern runs over the flat index.
    """
    area = kh * kw
    if area % stride:
        flat = np.arange(c * area)
        skipped = (flat >= offset) & ((flat - offset) % stride == 0)
    else:
        k = np.arange(area)[None, :]
        o_c = ((offset + np.arange(c)) % stride)[:, None]
        skipped = ((k >= o_c) & ((k - o_c) % stride == 0)).reshape(-1)
    return np.flatnonzero(~skipped)


@lru_cache(maxsize=512)
def reduction_plan(c: int, kh: int, kw: int, stride: int = 1, offset: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(kept, chan, row, col)`` of each reduction element (im2col row), all int64.

    ``stride`` 1 keeps all ``c*kh*kw`` elements; 2-4 applies filter sampling.
    """
    kept = np.arange(c * kh * kw) if stride == 1 else sampling_kept(c, kh, kw, stride, offset)
    chan, rest = np.divmod(kept, kh * kw)
    row, col = np.divmod(rest, kw)
    return kept, chan, row, col


@lru_cache(maxsize=512)
def column_sources(n: int, stride: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """``(src_a, src_b)`` of :func:`axis_plan` as uint64 (unsigned indices for the scatter)."""
    _, src_a, src_b = axis_plan(n, stride, offset)
    return src_a.astype(np.uint64), src_b.astype(np.uint64)


@lru_cache(maxsize=512)
def channel_classes(c: int, stride: int, offset: int) -> np.ndarray:
    """The input channels a 1x1 sampling knob keeps, grouped by residue class: classes
    ``r != offset`` (``r < c``) in increasing order, each in channel order (int64)."""
    parts = [np.arange(r, c, stride) for r in range(stride) if r != offset and r < c]
    return np.concatenate(parts) if parts else np.arange(0)
