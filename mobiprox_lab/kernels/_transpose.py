"""Matrix transposes for the channel-vectorised depthwise path, in 8 x 8 tiles of vector
shuffles.

``_direct.depthwise_nhwc`` turns each sample's (C, H*W) planes into (H*W, C) so that every
tap is one multiply-add over a contiguous run of channels, and turns the result back. Done
one float at a time, the transposes took most of HAR's small depthwise layers: leaving out
the one into (H*W, C) took dw6 (256 channels on 8x8, stride 2, batch 64, one thread) from
1.07 to 0.34 ms. :func:`transpose_block` moves each 8 x 8 tile with eight vector loads, 24
shuffles and eight vector stores (:func:`_transpose8`, LLVM ``shufflevector``:
``vunpcklps`` / ``vshufps`` / ``vperm2f128`` on AVX; other targets get whatever their
backend lowers it to, with the same result). Against the float-by-float version, side by
side, one thread, CPU time, with bias and ReLU: dw6 0.43-0.53x, dw7 (512 channels on 4x4)
0.68-0.71x, dw12 (512 on 4x4, stride 2) 0.47-0.68x, dw13 (1024 on 2x2, edges only) 1.00x
at batch 64, 0.46-0.52x at batch 1. 2x2 maps have no whole tile: their (C, 4) <-> (4, C)
transposes go by constant-stride loops instead (:func:`_from_packed`, :func:`_to_packed`),
which took dw13 at batch 64 from 1.4x torch's time to 0.72-0.78x on one thread and
from 1.5-1.7x to 0.75-0.94x on two, and dw12 (2x2 outputs) from 1.43-1.45x to 0.95-1.11x
on two (benchmark timings, two runs each).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types, uint64
from numba.extending import intrinsic

TILE = 8  # rows and columns of one shuffle-transposed tile

_STAGES = (  # (first input, second input, lanes) per output of each stage, lanes of both
    # stage 1: interleave the low / high pairs of rows 2i and 2i+1 within each 128-bit half
    [(2 * i, 2 * i + 1, (0, 8, 1, 9, 4, 12, 5, 13) if h == 0 else (2, 10, 3, 11, 6, 14, 7, 15))
     for i in range(4) for h in range(2)],
    # stage 2: pairs of those (stage-1 outputs 0 and 2, 1 and 3, 4 and 6, 5 and 7)
    [(b + s, b + s + 2, (0, 1, 8, 9, 4, 5, 12, 13) if h == 0 else (2, 3, 10, 11, 6, 7, 14, 15))
     for b in (0, 4) for s in range(2) for h in range(2)],
    # stage 3: the 128-bit halves of stage-2 outputs i and i+4 -> columns i and i+4
    [(i % 4, i % 4 + 4, (0, 1, 2, 3, 8, 9, 10, 11) if i < 4 else (4, 5, 6, 7, 12, 13, 14, 15))
     for i in range(8)],
)


@intrinsic
def _transpose8(typingctx, src, src_start, src_stride, dst, dst_start, dst_stride):
    """``dst[dst_start + j*dst_stride + i] = src[src_start + i*src_stride + j]`` for
    ``i, j < 8`` (float32 arrays, flat offsets in elements, no bounds checks)."""
    if not (isinstance(src, types.Array) and isinstance(dst, types.Array)
            and src.dtype == dst.dtype == types.float32
            and all(isinstance(t, types.Integer)
                    for t in (src_start, src_stride, dst_start, dst_stride))):
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        vec = ir.VectorType(ir.FloatType(), TILE)

        def pointers(array_arg, start_arg, stride_arg):
            array = context.make_array(signature.args[array_arg])(
                context, builder, args[array_arg])
            start = context.cast(builder, args[start_arg], signature.args[start_arg], types.int64)
            stride = context.cast(builder, args[stride_arg], signature.args[stride_arg],
                                  types.int64)
            return [builder.bitcast(builder.gep(array.data, [builder.add(
                start, builder.mul(stride, ir.Constant(i64, k)))]), vec.as_pointer())
                for k in range(TILE)]

        rows = [builder.load(p, align=4) for p in pointers(0, 1, 2)]
        for stage in _STAGES:
            rows = [builder.shuffle_vector(rows[a], rows[b], ir.Constant(
                ir.VectorType(ir.IntType(32), TILE), list(lanes))) for a, b, lanes in stage]
        for column, pointer in zip(rows, pointers(3, 4, 5), strict=True):
            builder.store(column, pointer, align=4)
        return context.get_dummy_value()

    return types.void(src, src_start, src_stride, dst, dst_start, dst_stride), codegen


@njit(cache=True, nogil=True)
def transpose_block(src, src_start, src_stride, dst, dst_start, dst_stride, rows, cols):
    """``dst[dst_start + j*dst_stride + i] = src[src_start + i*src_stride + j]`` for
    ``i < rows``, ``j < cols``: a (rows, cols) matrix of flat float32 ``src`` written
    transposed into flat ``dst`` (offsets and strides in elements). 8 x 8 tiles by vector
    shuffles, the edges one element at a time, except a matrix of 2 or 4 packed columns
    (``src_stride == cols``) or into 2 or 4 packed columns (``dst_stride == rows``):
    :func:`_from_packed` / :func:`_to_packed`. The caller keeps every index in bounds."""
    s0, ss = uint64(src_start), uint64(src_stride)
    d0, ds = uint64(dst_start), uint64(dst_stride)
    if (cols == 4 or cols == 2) and ss == cols:
        _from_packed(src, s0, dst, d0, ds, uint64(rows), cols == 4)
        return
    if (rows == 4 or rows == 2) and ds == rows:
        _to_packed(src, s0, ss, dst, d0, uint64(cols), rows == 4)
        return
    r8 = rows - rows % TILE
    c8 = cols - cols % TILE
    for i in range(0, r8, TILE):
        for j in range(0, c8, TILE):
            _transpose8(src, s0 + uint64(i) * ss + uint64(j), ss,
                        dst, d0 + uint64(j) * ds + uint64(i), ds)
    for j in range(uint64(cols)):  # the edges, stores in order (HAR's 2x2 maps: all of it)
        first = uint64(r8) if j < c8 else uint64(0)
        for i in range(first, uint64(rows)):
            dst[d0 + j * ds + i] = src[s0 + i * ss + j]


@njit(cache=True, nogil=True)
def _from_packed(src, s0, dst, d0, ds, rows, four):
    """:func:`transpose_block` of a (rows, 4 or 2) matrix whose rows are packed (stride 4
    or 2): each output row is one strided stream, which LLVM vectorises with constant
    strides (loads of whole vectors, then shuffles). The edge loop, with the stride known
    only at run time, moved one float at a time: HAR's 2x2 depthwise maps (1024 channels,
    batch 64) spent 0.08 ms there per call, 0.02 ms this way (one thread)."""
    if four:
        for i in range(rows):
            a = s0 + i * uint64(4)
            dst[d0 + i] = src[a]
            dst[d0 + ds + i] = src[a + uint64(1)]
            dst[d0 + uint64(2) * ds + i] = src[a + uint64(2)]
            dst[d0 + uint64(3) * ds + i] = src[a + uint64(3)]
    else:
        for i in range(rows):
            a = s0 + i * uint64(2)
            dst[d0 + i] = src[a]
            dst[d0 + ds + i] = src[a + uint64(1)]


@njit(cache=True, nogil=True)
def _to_packed(src, s0, ss, dst, d0, cols, four):
    """:func:`transpose_block` of a (4 or 2, cols) matrix into packed output rows of 4 or 2
    (``dst_stride`` 4 or 2): interleaved stores of constant stride. Back from the
    channel-vectorised layout into 2x2 maps, the edge loop took 0.28 ms per call where
    this takes 0.05 ms (1024 channels, batch 64, one thread)."""
    if four:
        for j in range(cols):
            a = d0 + j * uint64(4)
            dst[a] = src[s0 + j]
            dst[a + uint64(1)] = src[s0 + ss + j]
            dst[a + uint64(2)] = src[s0 + uint64(2) * ss + j]
            dst[a + uint64(3)] = src[s0 + uint64(3) * ss + j]
    else:
        for j in range(cols):
            a = d0 + j * uint64(2)
            dst[a] = src[s0 + j]
            dst[a + uint64(1)] = src[s0 + ss + j]
