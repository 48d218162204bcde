"""``kernels._transpose``: the 8 x 8 shuffle tiles and their edges against numpy's transpose."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mobiprox_lab.kernels._transpose import TILE, transpose_block


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(0, 40), cols=st.integers(0, 40), src_pad=st.integers(0, 9),
       dst_pad=st.integers(0, 9), src_start=st.integers(0, 11), dst_start=st.integers(0, 11),
       seed=st.integers(0, 2**31 - 1))
def test_transpose_block_matches_numpy(rows, cols, src_pad, dst_pad, src_start, dst_start,
                                       seed):
    """Any (rows, cols), whole tiles or not, inside larger strided buffers at any offset
    (unaligned vector loads and stores); nothing outside the target is written."""
    rng = np.random.default_rng(seed)
    src_stride, dst_stride = cols + src_pad, rows + dst_pad
    src = rng.standard_normal(src_start + rows * src_stride + TILE, dtype=np.float32)
    dst = np.full(dst_start + cols * dst_stride + TILE, np.nan, np.float32)
    transpose_block(src, src_start, src_stride, dst, dst_start, dst_stride, rows, cols)
    matrix = src[src_start:src_start + rows * src_stride].reshape(rows, src_stride)[:, :cols]
    want = np.full_like(dst, np.nan)
    if rows and cols:
        view = want[dst_start:dst_start + cols * dst_stride].reshape(cols, dst_stride)
        view[:, :rows] = matrix.T
    np.testing.assert_array_equal(dst, want)


def test_transpose_block_keeps_bits():
    """A shuffle moves values unchanged: NaN payloads, signed zeros, infinities, denormals."""
    bits = np.arange(16 * 24, dtype=np.uint32) * np.uint32(2654435761)
    bits[:6] = [0x7FC00001, 0x80000000, 0x7F800000, 0xFF800000, 0x00000001, 0xFFFFFFFF]
    src = bits.view(np.float32)
    dst = np.zeros(24 * 16, np.float32)
    transpose_block(src, 0, 24, dst, 0, 16, 16, 24)
    np.testing.assert_array_equal(dst.view(np.uint32).reshape(24, 16),
                                  bits.reshape(16, 24).T)


@settings(max_examples=120, deadline=None)
@given(narrow=st.sampled_from([1, 2, 3, 4, 5]), wide=st.integers(0, 70),
       packed_side=st.sampled_from(["src", "dst"]), start=st.integers(0, 9),
       seed=st.integers(0, 2**31 - 1))
def test_transpose_block_packed_narrow_matrices(narrow, wide, packed_side, start, seed):
    """Matrices of 2 or 4 packed columns (the channel-vectorised depthwise path's 2x2 maps,
    either way) take their own loops; widths 1, 3 and 5 the general ones. All match numpy,
    at any offset, and write nothing else."""
    rng = np.random.default_rng(seed)
    rows, cols = (wide, narrow) if packed_side == "src" else (narrow, wide)
    src_stride = cols if packed_side == "src" else cols + 3
    dst_stride = rows if packed_side == "dst" else rows + 3
    src = rng.standard_normal(start + rows * src_stride + TILE, dtype=np.float32)
    dst = np.full(start + cols * dst_stride + TILE, np.nan, np.float32)
    transpose_block(src, start, src_stride, dst, start, dst_stride, rows, cols)
    want = np.full_like(dst, np.nan)
    if rows and cols:
        matrix = src[start:start + rows * src_stride].reshape(rows, src_stride)[:, :cols]
        want[start:start + cols * dst_stride].reshape(cols, dst_stride)[:, :rows] = matrix.T
    np.testing.assert_array_equal(dst, want)
