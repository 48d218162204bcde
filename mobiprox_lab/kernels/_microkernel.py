"""Register-tiled 1x1 convolution tiles that write the stride-2 perforation fill themselves.

A stride-2 perforated 1x1 convolution computes half of its outputs and fills the other
half from them. Through a BLAS GEMM the computed values land in a buffer, and a second
loop writes the whole output from it, after the GEMM rather than beside it: on the HAR
MobileNet's pointwise layers (width 1, one thread, batch 64, an Emerald Rapids VM) that
path ran 1.0-1.5x over exact, against a nominal 2x. The tiles here are written in LLVM IR
(an ``@intrinsic``, compiled by Numba's LLVM: no toolchain beyond numba) and keep
everything in registers; on the same layers, 4x4 to 32x32 maps, they ran 1.6-2.3x over
exact (``benchmarks/tiles.py`` times both side by side):

* the GEMM part: ``mr`` output channels x 32 kept outputs as ``mr x 2`` vectors of 16 lanes,
  accumulated over the input channels with fused multiply-adds. Each vector loads its
  input straight from the NCHW tensor, 16 floats of a kept row or two 8-float kept rows
  (rows of width 8), or 16 kept columns from a copy of a sample's kept columns packed
  side by side (:func:`pack_columns`), made once for all its output channels;
* the epilogue: the skipped outputs as means of their kept neighbours (shuffles of the
  accumulators), then the bias and the ReLU, and one store of every output the tile
  covers, kept and filled, while the next tile computes.

The values follow ``approximations.md``: the mean ``0.5 * (a + b)`` in float32 of the
unbiased kept values, a copy at the map's edges, the bias after the fill; ReLU keeps NaN
and -0.0 (as ``_scatter.act``). The sums run over the input channels in order, with one
rounding per multiply-add, so values differ from a BLAS GEMM's in the last bits, as two
BLAS builds do.

Tiles (``flags`` bits: :data:`RELU`, :data:`LEAD_COPY`, :data:`LEAD_MEAN`,
:data:`TRAIL_COPY`, :data:`STREAM`, :data:`ONE_ROW`):

* rows (:func:`rows_tile`, width ``W`` in 8, 16, 32): ``32 // W`` consecutive kept rows of
  one plane; kept row ``t`` is written at ``d0 + 2*t*W``, the skipped row after it (the
  mean of kept rows ``t`` and ``t + 1``) at ``d0 + (2*t + 1)*W``; the skipped row before the
  tile at ``d0 - W`` (a copy of kept row 0 at the map's top edge, else the mean with the
  previous tile's last kept row, kept unbiased in ``carry``); the row after the last kept
  row at ``d0 + (2*R - 1)*W`` when it is the map's last row (a copy);
* columns (:func:`cols_tile`): 64 consecutive outputs of a plane, whole rows of even width
  ``W`` (``64 % W == 0``), whose 32 kept values are the odd (offset 0) or even (offset 1)
  inputs of those 64 positions; ``edges`` (bit ``p``) marks the skipped positions at a
  row's edge, which copy their one neighbour;
* planes (:func:`plane_tile`, 4x4 maps): the whole planes of four consecutive samples (8
  kept outputs each), each plane's 16 outputs written by one store; exact and stride-2
  sampled, those of two samples, nothing skipped (a 16-column BLAS GEMM a sample had made
  exact 1.1-1.5x slower on HAR's 4x4 layers, batch 64, and every approximate speedup there
  up to 2.5x);
* dense (:func:`dense_tile`): 32 consecutive outputs, nothing skipped, for exact convs and
  for stride-2 filter sampling (the reduction over one residue class of input channels).
  On the same layers exact ran 1.1-1.55x faster this way than through the BLAS GEMM
  (Emerald Rapids, 1 thread), 1.08-1.16x on a Zen 4 VM (2 threads), where the tiles'
  approximations also beat the GEMM paths' on all but HAR pw1 and pw7.

* channels (:func:`channel_tile`, at most 16 computed pixels of a map, one or two
  samples): the roles swapped, 16 or more output channels in the vector lanes and the
  sample's 16, 8, 4 or 2 (kept) pixels broadcast, each weight read once as part of a vector;
  the sums go to a buffer that ``_pointwise.pointwise_channel_tiles`` fills the output
  from. A BLAS GEMM a few columns wide took as long as a wider one: HAR pw13 (1024 ->
  1024 on 2x2) at batch 1 ran 2.9x faster this way exact, and row s2 1.2x over that (its
  weight reads, 4 MB, are not halved), sampling 1.7x (Zen 4, 2 threads).

* taps (:func:`tap_tile`, not 1x1: any stride-1 conv ``_tap_tiles`` runs): one 32-wide
  output row, a reduction step one filter tap of one input channel (the kept ones of
  filter sampling), whose 32 inputs lie side by side in one row of the padded input (an
  offset from a table): exact and sampled, stored as they are, and the kept rows of stride-2
  row perforation, stored as the row tiles store theirs;
* phases (:func:`phase_tile`, not 1x1: any stride-1 conv ``_phase_tiles`` runs): two
  output rows of 32 or 33 outputs under stride-2 column perforation, 16 kept a row, one
  vector each. A reduction step is one filter tap of one input channel, whose 16 kept
  inputs of a row lie side by side in one column phase of the padded input (offsets from a
  table, one entry a step): no im2col. The epilogue fills the rows as the column tiles do,
  position 32 of a 33-wide row a copy of kept value 15 (:data:`TRAIL_COPY`), and an odd last
  row comes alone (:data:`ONE_ROW`).

Each tile computes ``mr`` = 12 output channels (24 of the 32 vector registers of AVX-512
hold accumulators), then 4, then 1 for the last ones of a block. Tiles read the weights
transposed, (input channels, output channels) (see ``_accumulate``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ._plan import axis_plan

__all__ = ["CHANNEL_PIXELS", "LANES", "LEAD_COPY", "LEAD_MEAN", "MR_SIZES", "ONE_ROW",
           "PHASE_WIDTHS", "PLANE_SHAPES", "RELU", "ROW_WIDTHS", "STREAM", "TILE_OUTPUTS",
           "TRAIL_COPY", "channel_tile", "channel_tile_width", "channel_vectors", "cols_tile",
           "dense_tile", "host_has_wide_vectors", "pack_columns", "phase_tile",
           "phase_tile_applies", "plane_code", "plane_group", "plane_lanes", "plane_tile",
           "rows_tile", "stream_fence", "tap_tile", "tile_channels", "tile_plan"]

LANES = 16  # floats per vector register (AVX-512; LLVM splits them on narrower machines)


TILE_OUTPUTS = 2 * LANES  # kept outputs per tile and output channel
ROW_WIDTHS = (8, 16, 32)  # the row tiles' widths
RELU, LEAD_COPY, LEAD_MEAN, TRAIL_COPY, STREAM, ONE_ROW = 1, 2, 4, 8, 16, 32

_F32, _I64, _I32, _I1 = ir.FloatType(), ir.IntType(64), ir.IntType(32), ir.IntType(1)


def host_has_wide_vectors() -> bool:
    """Whether this CPU has AVX-512 (32 registers of 16 floats), the machine the tiles are
    shaped for. Elsewhere they compute the same values, but their 24 accumulators no longer
    fit in registers, and they were never timed there."""
    try:
        import llvmlite.binding as llvm

        return bool(llvm.get_host_cpu_features().get("avx512f", False))
    except (RuntimeError, OSError):  # no feature query on this platform
        return False


def _vec(n: int) -> ir.VectorType:
    return ir.VectorType(_F32, n)


def _const_lanes(values) -> ir.Constant:
    return ir.Constant(ir.VectorType(_I32, len(values)), list(values))


def _shuffle(builder, a, b, lanes):
    """``a`` and ``b`` as one vector (``b`` after ``a``), lanes ``lanes`` of it."""
    return builder.shuffle_vector(a, b, _const_lanes(lanes))


def _splat(builder, scalar, n: int):
    undef = ir.Constant(_vec(n), ir.Undefined)
    one = builder.insert_element(undef, scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, undef, _const_lanes([0] * n))


def _fma(builder, n: int):
    name = f"llvm.fma.v{n}f32"
    vec = _vec(n)
    return builder.module.globals.get(name) or ir.Function(
        builder.module, ir.FunctionType(vec, [vec, vec, vec]), name=name)


def _data(context, builder, array_type, value):
    return context.make_array(array_type)(context, builder, value).data


def _load(builder, base, index, n: int):
    """``n`` floats from ``base[index]`` (any alignment)."""
    ptr = builder.bitcast(builder.gep(base, [index]), _vec(n).as_pointer())
    return builder.load(ptr, align=4)


def _store(builder, value, base, index, stream: bool = False):
    """``value`` to ``base[index]``; ``stream``: a non-temporal store (past the caches, no
    read of the line first), which needs ``base[index]`` aligned to the vector's bytes, up
    to 64 (a wider value is stored as 64-byte vectors)."""
    ptr = builder.bitcast(builder.gep(base, [index]), value.type.as_pointer())
    if not stream:
        builder.store(value, ptr, align=4)
        return
    store = builder.store(value, ptr, align=min(4 * value.type.count, 64))
    store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(_I32, 1)]))


def _epilogue(builder, flags, emit) -> None:
    """``emit(stream)`` twice, for the :data:`STREAM` bit of ``flags`` set and clear: the
    tile's stores of its outputs, non-temporal or not."""
    with builder.if_else(_flag(builder, flags, STREAM)) as (streamed, cached):
        with streamed:
            emit(True)
        with cached:
            emit(False)


def _accumulate(builder, w, w0, ldw, loads, nc, mr: int, vectors: int = 2):
    """The tile's GEMM: ``mr`` x ``vectors`` accumulators (vectors of ``LANES``),
    ``acc[m][v] += w[w0 + c*ldw + m] * loads(c)[v]`` for ``c`` in ``[0, nc)``, ``nc >= 1``.

    The weights are transposed, (input channels, output channels): the ``mr`` weights of one
    input channel lie side by side, and one pointer, advanced by ``ldw``, walks them. With
    one pointer per output channel (weights (K, C)), LLVM's Zen 4 schedule ran out of
    registers, recomputed the 12 pointers in every iteration and spilled accumulators: the
    exact tile took 2.7x the BLAS GEMM's time on HAR pw3 (1 thread), against 1.1x now."""
    fma = _fma(builder, LANES)
    start = builder.gep(w, [w0])
    entry = builder.block
    loop = builder.append_basic_block("tile.loop")
    done = builder.append_basic_block("tile.done")
    builder.branch(loop)
    builder.position_at_end(loop)
    c = builder.phi(_I64)
    c.add_incoming(ir.Constant(_I64, 0), entry)
    row = builder.phi(start.type)
    row.add_incoming(start, entry)
    zero = ir.Constant(_vec(LANES), [0.0] * LANES)
    acc = [[builder.phi(_vec(LANES)) for _ in range(vectors)] for _ in range(mr)]
    inputs = loads(c)
    new = []
    for m in range(mr):
        weight = _splat(builder, builder.load(builder.gep(row, [ir.Constant(_I64, m)])), LANES)
        new.append([builder.call(fma, [weight, v, a])
                    for v, a in zip(inputs, acc[m], strict=True)])
    c_next = builder.add(c, ir.Constant(_I64, 1))
    body = builder.block
    c.add_incoming(c_next, body)
    row.add_incoming(builder.gep(row, [ldw]), body)
    for m in range(mr):
        for a, v in zip(acc[m], new[m], strict=True):
            a.add_incoming(zero, entry)
            a.add_incoming(v, body)
    builder.cbranch(builder.icmp_signed("<", c_next, nc), loop, done)
    builder.position_at_end(done)
    return new


def _finish(builder, value, bias, relu):
    """``value + bias``, then ReLU (``0 if v < 0 else v``: NaN and -0.0 kept) if ``relu``."""
    n = value.type.count
    v = builder.fadd(value, _splat(builder, bias, n))
    zero = ir.Constant(_vec(n), [0.0] * n)
    negative = builder.fcmp_ordered("<", v, zero)
    return builder.select(builder.and_(negative, _splat_bool(builder, relu, n)), zero, v)


def _splat_bool(builder, flag, n: int):
    undef = ir.Constant(ir.VectorType(_I1, n), ir.Undefined)
    one = builder.insert_element(undef, flag, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, undef, _const_lanes([0] * n))


def _mean(builder, a, b):
    n = a.type.count
    return builder.fmul(builder.fadd(a, b), ir.Constant(_vec(n), [0.5] * n))


def _flag(builder, flags, bit: int):
    return builder.icmp_unsigned("!=", builder.and_(flags, ir.Constant(_I64, bit)),
                                 ir.Constant(_I64, 0))


def _tile_signature(w, w0, ldw, x, x0, voff, ldx, nc, out, d0, ldo, bias, b0, carry, flags,
                    edges):
    arrays = (w, x, voff, out, bias, carry)
    ints = (w0, ldw, x0, ldx, nc, d0, ldo, b0, flags, edges)
    if not all(isinstance(a, types.Array) for a in arrays) or not all(
            isinstance(i, types.Integer) for i in ints):
        return None
    if any(a.dtype != types.float32 for a in (w, x, out, bias, carry)) or voff.dtype != types.int64:
        return None
    return types.void(w, w0, ldw, x, x0, voff, ldx, nc, out, d0, ldo, bias, b0, carry, flags,
                      edges)


def _tile_intrinsic(codegen):
    """The ``@intrinsic`` of a row, column or dense tile whose IR ``codegen`` emits."""

    @intrinsic
    def tile(typingctx, w, w0, ldw, x, x0, voff, ldx, nc, out, d0, ldo, bias, b0, carry,
             flags, edges):
        sig = _tile_signature(w, w0, ldw, x, x0, voff, ldx, nc, out, d0, ldo, bias, b0,
                              carry, flags, edges)
        return None if sig is None else (sig, codegen)

    return tile


def _channel(builder, a, m: int):
    """Output channel ``m`` of a tile: its bias and the index of its first output."""
    bias = builder.load(builder.gep(a["bias"], [builder.add(a["b0"], ir.Constant(_I64, m))]))
    return bias, builder.add(a["d0"], builder.mul(ir.Constant(_I64, m), a["ldo"]))


_TILE_ARGS = ("w", "w0", "ldw", "x", "x0", "voff", "ldx", "nc", "out", "d0", "ldo", "bias",
              "b0", "carry", "flags", "edges")
_PLANE_ARGS = ("w", "w0", "ldw", "x", "x0", "xs", "ldx", "nc", "out", "d0", "ds", "ldo",
               "bias", "b0", "flags", "mr")


def _unpack(context, builder, sig, args, names=_TILE_ARGS):
    """A tile's arguments by name: array data pointers, integers as int64."""
    got = {}
    for name, ty, value in zip(names, sig.args, args, strict=True):
        if isinstance(ty, types.Array):
            got[name] = _data(context, builder, ty, value)
        else:
            got[name] = context.cast(builder, value, ty, types.int64)
    return got


def _codegen_per_mr(names, emit):
    """The codegen of a tile whose last argument ``mr`` picks one of ``MR_SIZES`` at run
    time: ``emit(builder, a, mr)`` under each, ``a`` its arguments by ``names``."""

    def codegen(context, builder, sig, args):
        a = _unpack(context, builder, sig, args, names)
        for mr in MR_SIZES:
            with builder.if_then(builder.icmp_signed("==", a["mr"], ir.Constant(_I64, mr))):
                emit(builder, a, mr)
        return context.get_dummy_value()

    return codegen


def _typed(floats, ints, tables=()) -> bool:
    """Whether an intrinsic's arguments have the types its IR reads: float32 arrays
    ``floats``, int64 arrays ``tables``, integers ``ints``."""
    return (all(isinstance(v, types.Array) and v.dtype == types.float32 for v in floats)
            and all(isinstance(v, types.Array) and v.dtype == types.int64 for v in tables)
            and all(isinstance(v, types.Integer) for v in ints))


def _table_loads(builder, a, second):
    """``loads(c)`` of a tile whose reduction steps are read through a table of offsets:
    16 floats at ``x[x0 + toff[c]]``, and 16 at ``second`` (int64 IR value) floats further
    on."""

    def at(c):
        base = builder.add(a["x0"], builder.load(builder.gep(a["toff"], [c])))
        return [_load(builder, a["x"], base, LANES),
                _load(builder, a["x"], builder.add(base, second), LANES)]

    return at


def _make_rows_tile(mr: int, width: int):
    chunk = min(LANES, width)
    per_vector = LANES // chunk  # kept rows of one vector (2 when rows are 8 wide)

    def loads(builder, a):
        def at(c):
            base = builder.add(a["x0"], builder.mul(c, a["ldx"]))
            vectors = []
            for v in range(2):
                parts = [_load(builder, a["x"], builder.add(base, builder.load(builder.gep(
                    a["voff"], [ir.Constant(_I64, v * per_vector + p)]))), chunk)
                    for p in range(per_vector)]
                if per_vector == 2:
                    parts = [_shuffle(builder, parts[0], parts[1], range(LANES))]
                vectors.append(parts[0])
            return vectors
        return at

    def codegen(context, builder, sig, args):
        a = _unpack(context, builder, sig, args)
        acc = _accumulate(builder, a["w"], a["w0"], a["ldw"], loads(builder, a), a["nc"], mr)
        _rows_epilogue(builder, a, acc, mr, width)
        return context.get_dummy_value()

    return _tile_intrinsic(codegen)


def _rows_epilogue(builder, a, acc, mr: int, width: int) -> None:
    """A row tile's stores (module doc) of the accumulators ``acc`` (``mr`` x two vectors:
    ``32 // width`` kept rows), by the tile's ``flags``, ``carry``, ``out``, ``d0``, ``ldo``,
    ``bias`` and ``b0`` in ``a``."""
    kept_rows = TILE_OUTPUTS // width
    relu = _flag(builder, a["flags"], RELU)
    lead_copy = _flag(builder, a["flags"], LEAD_COPY)
    lead_mean = _flag(builder, a["flags"], LEAD_MEAN)
    trail = _flag(builder, a["flags"], TRAIL_COPY)
    w = ir.Constant(_I64, width)

    def stores(stream):
        for m in range(mr):
            whole = _shuffle(builder, acc[m][0], acc[m][1], range(TILE_OUTPUTS))
            rows = [_shuffle(builder, whole, whole, range(t * width, (t + 1) * width))
                    for t in range(kept_rows)]
            bias, base = _channel(builder, a, m)

            def put(value, at, bias=bias):
                _store(builder, _finish(builder, value, bias, relu), a["out"], at, stream)

            carry_at = ir.Constant(_I64, m * width)
            with builder.if_then(builder.or_(lead_copy, lead_mean)):
                previous = _load(builder, a["carry"], carry_at, width)
                put(builder.select(lead_copy, rows[0], _mean(builder, previous, rows[0])),
                    builder.sub(base, w))
            for t in range(kept_rows):
                at = builder.add(base, ir.Constant(_I64, 2 * t * width))
                put(rows[t], at)
                if t + 1 < kept_rows:
                    put(_mean(builder, rows[t], rows[t + 1]), builder.add(at, w))
            with builder.if_then(trail):
                put(rows[-1], builder.add(base, ir.Constant(_I64, (2 * kept_rows - 1) * width)))
            _store(builder, rows[-1], a["carry"], carry_at)

    _epilogue(builder, a["flags"], stores)


def _make_cols_tile(mr: int, offset: int):
    parity = 1 - offset  # offset 0 skips the even columns and keeps the odd ones
    positions = 2 * TILE_OUTPUTS
    # output position p: its kept value (q) and, for a skipped one, its other neighbour
    # (a copy takes ``first``: the right neighbour at a row's left edge, offset 0, the left
    # one at its right edge, offset 1)
    if offset == 0:
        first = [(p - 1) // 2 if p % 2 else p // 2 for p in range(positions)]
        second = [(p - 1) // 2 if p % 2 else max(p // 2 - 1, 0) for p in range(positions)]
    else:
        first = [p // 2 for p in range(positions)]
        second = [p // 2 if p % 2 == 0 else min(p // 2 + 1, TILE_OUTPUTS - 1)
                  for p in range(positions)]
    kept = [p % 2 == parity for p in range(positions)]

    def codegen(context, builder, sig, args):
        a = _unpack(context, builder, sig, args)

        # the kept columns, packed (:func:`pack_columns`): half the plane offsets
        offs = [builder.lshr(builder.load(builder.gep(a["voff"], [ir.Constant(_I64, v)])),
                             ir.Constant(_I64, 1)) for v in range(2)]

        def at(c):
            base = builder.add(a["x0"], builder.mul(c, a["ldx"]))
            return [_load(builder, a["x"], builder.add(base, o), LANES) for o in offs]

        acc = _accumulate(builder, a["w"], a["w0"], a["ldw"], at, a["nc"], mr)
        relu = _flag(builder, a["flags"], RELU)
        edge_bits = builder.bitcast(a["edges"], ir.VectorType(_I1, 64))

        def stores(stream):
            for m in range(mr):
                bias, base = _channel(builder, a, m)
                for j in range(positions // LANES):
                    lanes = range(j * LANES, (j + 1) * LANES)
                    one = _shuffle(builder, acc[m][0], acc[m][1], [first[p] for p in lanes])
                    two = _shuffle(builder, acc[m][0], acc[m][1], [second[p] for p in lanes])
                    copy = builder.or_(
                        _shuffle(builder, edge_bits, edge_bits, lanes),
                        ir.Constant(ir.VectorType(_I1, LANES), [int(kept[p]) for p in lanes]))
                    value = builder.select(copy, one, _mean(builder, one, two))
                    _store(builder, _finish(builder, value, bias, relu), a["out"],
                           builder.add(base, ir.Constant(_I64, j * LANES)), stream)

        _epilogue(builder, a["flags"], stores)
        return context.get_dummy_value()

    return _tile_intrinsic(codegen)


def _make_dense_tile(mr: int):
    """A tile of ``mr`` output channels x 32 consecutive outputs of one plane, no fill: the
    two vectors' input at ``x[x0 + voff[v] + c*ldx]``, their output at ``out[d0 + m*ldo +
    voff[v]]`` (a 1x1 conv's output pixel is its input pixel)."""

    def codegen(context, builder, sig, args):
        a = _unpack(context, builder, sig, args)
        offs = [builder.load(builder.gep(a["voff"], [ir.Constant(_I64, v)])) for v in range(2)]

        def at(c):
            base = builder.add(a["x0"], builder.mul(c, a["ldx"]))
            return [_load(builder, a["x"], builder.add(base, o), LANES) for o in offs]

        acc = _accumulate(builder, a["w"], a["w0"], a["ldw"], at, a["nc"], mr)
        relu = _flag(builder, a["flags"], RELU)

        def stores(stream):
            for m in range(mr):
                bias, base = _channel(builder, a, m)
                for v in range(2):
                    _store(builder, _finish(builder, acc[m][v], bias, relu), a["out"],
                           builder.add(base, offs[v]), stream)

        _epilogue(builder, a["flags"], stores)
        return context.get_dummy_value()

    return _tile_intrinsic(codegen)


def plane_lanes(h: int, w: int, axis: str, offset: int, stride: int = 2
                ) -> tuple[list, list, list]:
    """Perforation (stride 2 unless told) of an ``h x w`` plane along ``axis``: the kept
    positions (row-major), and for every output position the two kept values it is the mean
    of (indices into the kept ones; equal for a kept or copied output)."""
    rows = axis_plan(h, stride if axis == "row" else 1, offset if axis == "row" else 0)
    cols = axis_plan(w, stride if axis == "col" else 1, offset if axis == "col" else 0)
    wk = cols[0].size
    kept = [int(r) * w + int(c) for r in rows[0] for c in cols[0]]
    first = [int(rows[1][r]) * wk + int(cols[1][c]) for r in range(h) for c in range(w)]
    second = [int(rows[2][r]) * wk + int(cols[2][c]) for r in range(h) for c in range(w)]
    return kept, first, second


def _make_plane_tile(h: int, w: int, axis: str, offset: int):
    """A tile of ``TILE_OUTPUTS // kept`` whole ``h x w`` planes (``h*w <= LANES``) of
    consecutive samples: input plane ``g`` at ``x[x0 + g*xs + c*ldx]``, output plane ``g``
    of channel ``m`` at ``out[d0 + g*ds + m*ldo]``; ``mr`` (12, 4 or 1) chosen at run
    time."""
    kept, first, second = plane_lanes(h, w, axis, offset)
    plane, k = h * w, len(kept)
    group = TILE_OUTPUTS // k

    def emit(builder, a, mr):
        def at(c):
            base = builder.add(a["x0"], builder.mul(c, a["ldx"]))
            pieces = []
            for g in range(group):
                start = builder.add(base, builder.mul(ir.Constant(_I64, g), a["xs"]))
                whole = _load(builder, a["x"], start, plane)
                pieces.append(_shuffle(builder, whole, whole, kept))
            while pieces[0].type.count < LANES:
                n = pieces[0].type.count
                pieces = [_shuffle(builder, pieces[i], pieces[i + 1], range(2 * n))
                          for i in range(0, len(pieces), 2)]
            return pieces

        acc = _accumulate(builder, a["w"], a["w0"], a["ldw"], at, a["nc"], mr)
        relu = _flag(builder, a["flags"], RELU)
        copy = ir.Constant(ir.VectorType(_I1, plane),
                           [int(i == j) for i, j in zip(first, second, strict=True)])
        for m in range(mr):
            both = _shuffle(builder, acc[m][0], acc[m][1], range(TILE_OUTPUTS))
            bias, base = _channel(builder, a, m)
            for g in range(group):
                one = _shuffle(builder, both, both, [g * k + i for i in first])
                two = _shuffle(builder, both, both, [g * k + i for i in second])
                value = builder.select(copy, one, _mean(builder, one, two))
                at_g = builder.add(base, builder.mul(ir.Constant(_I64, g), a["ds"]))
                _store(builder, _finish(builder, value, bias, relu), a["out"], at_g)

    codegen = _codegen_per_mr(_PLANE_ARGS, emit)

    @intrinsic
    def tile(typingctx, w, w0, ldw, x, x0, xs, ldx, nc, out, d0, ds, ldo, bias, b0, flags, mr):
        if not _typed((w, x, out, bias), (w0, ldw, x0, xs, ldx, nc, d0, ds, ldo, b0, flags, mr)):
            return None
        return types.void(w, w0, ldw, x, x0, xs, ldx, nc, out, d0, ds, ldo, bias, b0, flags,
                          mr), codegen

    return tile


_PHASE_ARGS = ("w", "w0", "ldw", "x", "x0", "toff", "rs", "nc", "out", "d0", "ldo", "bias",
               "b0", "flags", "wo", "mr")
PHASE_WIDTHS = {0: (TILE_OUTPUTS, TILE_OUTPUTS + 1), 1: (TILE_OUTPUTS,)}  # offset -> widths


def _make_phase_tile(offset: int):
    """A phase tile (module doc) under stride-2 column perforation with ``offset``: ``mr``
    (12, 4 or 1, chosen at run time) output channels x two output rows of ``wo`` outputs
    (:data:`PHASE_WIDTHS`), 16 kept a row; reduction step ``c`` loads row 0's kept inputs at
    ``x[x0 + toff[c]]``, row 1's ``rs`` further on; output channel ``m``'s row 0 at
    ``out[d0 + m*ldo]``, its row 1 ``wo`` further on (not written with :data:`ONE_ROW`)."""
    # the first 32 positions of a row are the same for both widths at offset 0 (position 31
    # is kept); position 32 of a 33-wide row copies kept value 15 (TRAIL_COPY)
    _, first, second = axis_plan(TILE_OUTPUTS + 1 - offset, 2, offset)
    copy = [int(i == j) for i, j in zip(first, second, strict=True)]

    def emit(builder, a, mr):
        acc = _accumulate(builder, a["w"], a["w0"], a["ldw"], _table_loads(builder, a, a["rs"]),
                          a["nc"], mr)
        relu = _flag(builder, a["flags"], RELU)
        trail = _flag(builder, a["flags"], TRAIL_COPY)
        two_rows = builder.not_(_flag(builder, a["flags"], ONE_ROW))

        def row(kept, bias, start):
            def put(value, at):
                _store(builder, _finish(builder, value, bias, relu), a["out"], at)

            for j in range(TILE_OUTPUTS // LANES):
                lanes = range(j * LANES, (j + 1) * LANES)
                one = _shuffle(builder, kept, kept, [int(first[p]) for p in lanes])
                two = _shuffle(builder, kept, kept, [int(second[p]) for p in lanes])
                mask = ir.Constant(ir.VectorType(_I1, LANES), [copy[p] for p in lanes])
                put(builder.select(mask, one, _mean(builder, one, two)),
                    builder.add(start, ir.Constant(_I64, j * LANES)))
            with builder.if_then(trail):
                put(_shuffle(builder, kept, kept, [LANES - 1]),
                    builder.add(start, ir.Constant(_I64, TILE_OUTPUTS)))

        for m in range(mr):
            bias, base = _channel(builder, a, m)
            row(acc[m][0], bias, base)
            with builder.if_then(two_rows):
                row(acc[m][1], bias, builder.add(base, a["wo"]))

    codegen = _codegen_per_mr(_PHASE_ARGS, emit)

    @intrinsic
    def tile(typingctx, w, w0, ldw, x, x0, toff, rs, nc, out, d0, ldo, bias, b0, flags, wo,
             mr):
        if not _typed((w, x, out, bias), (w0, ldw, x0, rs, nc, d0, ldo, b0, flags, wo, mr),
                      (toff,)):
            return None
        return types.void(w, w0, ldw, x, x0, toff, rs, nc, out, d0, ldo, bias, b0, flags, wo,
                          mr), codegen

    return tile


_TAP_ARGS = ("w", "w0", "ldw", "x", "x0", "toff", "nc", "out", "d0", "ldo", "bias", "b0",
             "carry", "flags", "mr")


def _make_tap_tile(rows: bool):
    """A tap tile (module doc): ``mr`` (12, 4 or 1, chosen at run time) output channels x
    one 32-wide output row, reduction step ``c`` loading the row's 32 inputs at ``x[x0 +
    toff[c]]``; without ``rows`` the row is stored at ``out[d0 + m*ldo]`` (exact, sampled),
    with ``rows`` it is a kept row of stride-2 row perforation, stored with the skipped rows
    around it as a row tile 32 wide stores them (``carry``, ``flags``)."""

    def emit(builder, a, mr):
        at = _table_loads(builder, a, ir.Constant(_I64, LANES))
        acc = _accumulate(builder, a["w"], a["w0"], a["ldw"], at, a["nc"], mr)
        if rows:
            _rows_epilogue(builder, a, acc, mr, TILE_OUTPUTS)
            return
        relu = _flag(builder, a["flags"], RELU)
        for m in range(mr):
            bias, base = _channel(builder, a, m)
            for v in range(2):
                _store(builder, _finish(builder, acc[m][v], bias, relu), a["out"],
                       builder.add(base, ir.Constant(_I64, v * LANES)))

    codegen = _codegen_per_mr(_TAP_ARGS, emit)

    @intrinsic
    def tile(typingctx, w, w0, ldw, x, x0, toff, nc, out, d0, ldo, bias, b0, carry, flags, mr):
        if not _typed((w, x, out, bias, carry), (w0, ldw, x0, nc, d0, ldo, b0, flags, mr),
                      (toff,)):
            return None
        return types.void(w, w0, ldw, x, x0, toff, nc, out, d0, ldo, bias, b0, carry, flags,
                          mr), codegen

    return tile


def _make_channel_tile(pixels: int, vectors: int):
    """A tile of ``pixels`` inputs x ``16 * vectors`` output channels, the roles of the other
    tiles swapped: the output channels fill the vector lanes, the pixels are broadcast.
    ``res[r0 + p*ldr + j] = sum_c x[c*pixels + p] * w[w0 + c*ldw + j]`` for ``j`` in
    ``[0, 16 * vectors)`` (``x``: the pixels side by side, ``w``: transposed weights)."""

    def codegen(context, builder, sig, args):
        x, w, res = (_data(context, builder, sig.args[i], args[i]) for i in (0, 1, 5))
        w0, ldw, nc, r0, ldr = (context.cast(builder, args[i], sig.args[i], types.int64)
                                for i in (2, 3, 4, 6, 7))

        def at(c):
            base = builder.add(w0, builder.mul(c, ldw))
            return [_load(builder, w, builder.add(base, ir.Constant(_I64, LANES * v)), LANES)
                    for v in range(vectors)]

        acc = _accumulate(builder, x, ir.Constant(_I64, 0), ir.Constant(_I64, pixels), at, nc,
                          pixels, vectors)
        for p in range(pixels):
            row = builder.add(r0, builder.mul(ir.Constant(_I64, p), ldr))
            for v in range(vectors):
                _store(builder, acc[p][v], res, builder.add(row, ir.Constant(_I64, LANES * v)))
        return context.get_dummy_value()

    @intrinsic
    def tile(typingctx, x, w, w0, ldw, nc, res, r0, ldr):
        arrays, ints = (x, w, res), (w0, ldw, nc, r0, ldr)
        if not all(isinstance(v, types.Array) and v.dtype == types.float32 for v in arrays) \
                or not all(isinstance(v, types.Integer) for v in ints):
            return None
        return types.void(x, w, w0, ldw, nc, res, r0, ldr), codegen

    return tile


# (kept) pixels of a map the channel tiles take. A whole 4x4 map (16) stayed with BLAS while
# the tiles read their weights out of rows of all K (23 against 38 us, 256 -> 256 at batch 1,
# one thread); from panels (``_pointwise.channel_panels``) the tiles took 24.8 against 27.9
# us with the weights in cache, 43 against 58 us out of L2 (as in a model), and at batch 2
# 42 and 56 us against the plane tiles' 42 and 74 (one thread, CPU time)
CHANNEL_PIXELS = (16, 8, 4, 2)


def channel_vectors(pixels: int) -> int:
    """Vectors of 16 output channels in the main channel tile of ``pixels`` pixels: 16
    accumulators."""
    return LANES // pixels


@njit(cache=True, nogil=True, inline="always")
def channel_tile_width(pixels):
    """Output channels of the main channel tile of ``pixels`` pixels (``16 *
    channel_vectors(pixels)``): the tiles' step, their weight panels' width, and what a
    task's block of channels is a multiple of."""
    return LANES * (LANES // pixels)


_CHANNEL = {(p, v): _make_channel_tile(p, v) for p in CHANNEL_PIXELS
            for v in {channel_vectors(p), 1}}
_ch16, _ch8, _ch8t, _ch4, _ch4t, _ch2, _ch2t = (
    _CHANNEL[16, 1], _CHANNEL[8, 2], _CHANNEL[8, 1], _CHANNEL[4, 4], _CHANNEL[4, 1],
    _CHANNEL[2, 8], _CHANNEL[2, 1])


@njit(cache=True, nogil=True, inline="always")
def channel_tile(pixels, tail, x, w, w0, ldw, nc, res, r0, ldr):
    """One channel tile of ``pixels`` (16, 8, 4 or 2) pixels x ``16 *
    channel_vectors(pixels)`` output channels, or 16 with ``tail``: ``res[r0 + p*ldr + j] =
    sum_c x[c*pixels + p] * w[w0 + c*ldw + j]`` over ``c < nc`` (``w``: transposed weights,
    a row of ``ldw`` a input channel)."""
    a = (x, w, w0, ldw, nc, res, r0, ldr)
    if pixels == 16:  # one vector of channels: main and tail are the same tile
        _ch16(*a)
    elif pixels == 8:
        if tail:
            _ch8t(*a)
        else:
            _ch8(*a)
    elif pixels == 4:
        if tail:
            _ch4t(*a)
        else:
            _ch4(*a)
    elif tail:
        _ch2t(*a)
    else:
        _ch2(*a)


MR_SIZES = (12, 4, 1)  # output channels per tile: the main size, then the tails


@njit(cache=True, nogil=True, inline="always")
def tile_channels(left):
    """Output channels of the next tile when ``left`` remain: ``MR_SIZES`` greedily."""
    if left >= MR_SIZES[0]:
        return MR_SIZES[0]
    return MR_SIZES[1] if left >= MR_SIZES[1] else 1


_ROWS = {(w, mr): _make_rows_tile(mr, w) for w in ROW_WIDTHS for mr in MR_SIZES}
_COLS = {(o, mr): _make_cols_tile(mr, o) for o in (0, 1) for mr in MR_SIZES}
_dense12, _dense4, _dense1 = (_make_dense_tile(mr) for mr in MR_SIZES)
_rows8_12, _rows8_4, _rows8_1 = (_ROWS[8, mr] for mr in MR_SIZES)
_rows16_12, _rows16_4, _rows16_1 = (_ROWS[16, mr] for mr in MR_SIZES)
_rows32_12, _rows32_4, _rows32_1 = (_ROWS[32, mr] for mr in MR_SIZES)
_cols0_12, _cols0_4, _cols0_1 = (_COLS[0, mr] for mr in MR_SIZES)
_cols1_12, _cols1_4, _cols1_1 = (_COLS[1, mr] for mr in MR_SIZES)


@njit(cache=True, nogil=True, inline="always")
def rows_tile(width, mr, w, w0, ldw, x, x0, voff, ldx, nc, out, d0, ldo, bias, b0, carry,
              flags):
    """One row tile (module doc) of ``mr`` (12, 4 or 1) output channels, rows ``width``
    wide (8, 16 or 32): weights ``w[w0 + c*ldw + m]`` (transposed: input channel ``c``'s
    row of ``ldw`` floats), input vectors from ``x[x0 + voff[i] + c*ldx]`` (``voff``: the
    starts of the tile's kept rows, two 16-float halves for 32-wide rows), output channel
    ``m`` at ``out[d0 + m*ldo]`` with ``bias[b0 + m]``; ``carry``: ``mr * width`` floats,
    the previous tile's last kept row of each channel."""
    a = (w, w0, ldw, x, x0, voff, ldx, nc, out, d0, ldo, bias, b0, carry, flags, 0)
    if width == 8:
        if mr == 12:
            _rows8_12(*a)
        elif mr == 4:
            _rows8_4(*a)
        else:
            _rows8_1(*a)
    elif width == 16:
        if mr == 12:
            _rows16_12(*a)
        elif mr == 4:
            _rows16_4(*a)
        else:
            _rows16_1(*a)
    elif mr == 12:
        _rows32_12(*a)
    elif mr == 4:
        _rows32_4(*a)
    else:
        _rows32_1(*a)


@njit(cache=True, nogil=True, inline="always")
def dense_tile(mr, w, w0, ldw, x, x0, voff, ldx, nc, out, d0, ldo, bias, b0, flags):
    """One dense tile (no perforation: exact, or sampled channels) of ``mr`` (12, 4 or 1)
    output channels x 32 consecutive outputs at plane offsets ``voff[0]``, ``voff[0] + 16``
    (``voff[1]``); arguments as :func:`rows_tile`, the reduction ``c`` over ``x[x0 +
    voff[v] + c*ldx]`` (``ldx``: the plane, or ``s`` planes for one class of sampled
    channels)."""
    a = (w, w0, ldw, x, x0, voff, ldx, nc, out, d0, ldo, bias, b0, bias, flags, 0)
    if mr == 12:
        _dense12(*a)
    elif mr == 4:
        _dense4(*a)
    else:
        _dense1(*a)


@njit(cache=True, nogil=True, inline="always")
def cols_tile(offset, mr, w, w0, ldw, x, x0, voff, ldx, nc, out, d0, ldo, bias, b0, flags,
              edges):
    """One column tile (module doc) of ``mr`` (12, 4 or 1) output channels under stride-2
    column perforation with ``offset``: arguments as :func:`rows_tile`, but ``x`` holds the
    kept columns packed (:func:`pack_columns`, planes of ``ldx`` = half the output plane);
    ``voff``: the plane offsets of the tile's two 32-output runs (their 16 kept inputs each
    at half those offsets), ``edges``: the row-edge bits."""
    a = (w, w0, ldw, x, x0, voff, ldx, nc, out, d0, ldo, bias, b0, bias, flags, edges)  # no carry
    if offset == 0:
        if mr == 12:
            _cols0_12(*a)
        elif mr == 4:
            _cols0_4(*a)
        else:
            _cols0_1(*a)
    elif mr == 12:
        _cols1_12(*a)
    elif mr == 4:
        _cols1_4(*a)
    else:
        _cols1_1(*a)


@intrinsic
def _store_fence(typingctx):
    def codegen(context, builder, sig, args):
        import llvmlite.binding as llvm

        if llvm.get_process_triple().startswith(("x86_64", "i686")):
            # x86 orders non-temporal stores only by sfence / mfence (LLVM lowers a
            # seq_cst fence to a locked instruction, which need not order them)
            name = "llvm.x86.sse.sfence"
            fn = builder.module.globals.get(name) or ir.Function(
                builder.module, ir.FunctionType(ir.VoidType(), []), name=name)
            builder.call(fn, [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@njit(cache=True, nogil=True, inline="always")
def stream_fence():
    """A store fence: this thread's non-temporal stores (:data:`STREAM`), which x86 does not
    order with its other stores, are visible before any later store, such as the one that
    tells other threads the task is done."""
    _store_fence()


def _check_axis(axis: str) -> None:
    if axis not in ("row", "col"):
        raise ValueError(f"axis: expected 'row' or 'col', got {axis!r}")


def _make_column_pack(parity: int):
    """``out[o0 + i] = x[x0 + 2*i + parity]`` for ``i < n`` (a multiple of 16): every other
    float of a run, 32 loaded and 16 stored at a time."""

    def codegen(context, builder, sig, args):
        x, out = (_data(context, builder, sig.args[i], args[i]) for i in (0, 3))
        x0, n, o0 = (context.cast(builder, args[i], sig.args[i], types.int64) for i in (1, 2, 4))
        zero = ir.Constant(_I64, 0)
        entry = builder.block
        loop = builder.append_basic_block("pack.loop")
        done = builder.append_basic_block("pack.done")
        builder.cbranch(builder.icmp_signed(">", n, zero), loop, done)
        builder.position_at_end(loop)
        i = builder.phi(_I64)
        i.add_incoming(zero, entry)
        both = _load(builder, x, builder.add(x0, builder.add(i, i)), TILE_OUTPUTS)
        _store(builder, _shuffle(builder, both, both, [2 * j + parity for j in range(LANES)]),
               out, builder.add(o0, i))
        i_next = builder.add(i, ir.Constant(_I64, LANES))
        i.add_incoming(i_next, builder.block)
        builder.cbranch(builder.icmp_signed("<", i_next, n), loop, done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    @intrinsic
    def pack(typingctx, x, x0, n, out, o0):
        if not all(isinstance(v, types.Array) and v.dtype == types.float32 for v in (x, out)) \
                or not all(isinstance(v, types.Integer) for v in (x0, n, o0)):
            return None
        return types.void(x, x0, n, out, o0), codegen

    return pack


_pack_even, _pack_odd = _make_column_pack(0), _make_column_pack(1)


@njit(cache=True, nogil=True, inline="always")
def pack_columns(offset, x, x0, n, out, o0):
    """The input :func:`cols_tile` reads under stride-2 column perforation with ``offset``:
    the ``n`` kept values (a multiple of 16) of the run ``x[x0 : x0 + 2*n]`` of planes of
    even width (the odd positions for offset 0, the even ones for 1) to ``out[o0 : o0 + n]``."""
    if offset == 0:
        _pack_odd(x, x0, n, out, o0)
    else:
        _pack_even(x, x0, n, out, o0)


@lru_cache(maxsize=256)
def tile_plan(axis: str, offset: int, ho: int, wo: int) -> tuple | None:
    """The tiles of one ``ho x wo`` output plane under stride-2 perforation along ``axis``
    ("row" | "col", as ``knobs.Knob.axis``) with ``offset``, or None where they do not
    apply (rows: width 8, 16 or 32 and a whole number of tiles of kept rows; columns: an
    even width dividing 64 and a plane of whole 64-output tiles).

    Returns ``(voff, d0, flags, edges)``, one row per tile, offsets within a plane:
    ``voff`` (T, 4) int64 the input starts of the tile's vectors, ``d0`` (T,) its first
    output, ``flags`` (T,) its ``LEAD_*`` / ``TRAIL_COPY`` bits, ``edges`` (T,) its
    row-edge bits (columns; 0 for rows). Cached, the arrays read-only: every call of a
    layer asks for its plan (building it took ~35 us, more than a 1x1 layer of HAR's
    MobileNet computes at batch 1)."""
    _check_axis(axis)
    plan = _tile_plan(axis, offset, ho, wo)
    for a in plan or ():
        a.flags.writeable = False
    return plan


def _tile_plan(axis: str, offset: int, ho: int, wo: int) -> tuple | None:
    """:func:`tile_plan`, built."""
    if axis == "row":
        if wo not in ROW_WIDTHS:
            return None
        per_tile = TILE_OUTPUTS // wo
        kept = np.array([r for r in range(ho) if not (r >= offset and (r - offset) % 2 == 0)],
                        np.int64)
        if kept.size == 0 or kept.size % per_tile:
            return None
        n = kept.size // per_tile
        voff = np.zeros((n, 4), np.int64)
        d0 = np.zeros(n, np.int64)
        flags = np.zeros(n, np.int64)
        for j in range(n):
            rows = kept[j * per_tile:(j + 1) * per_tile]
            starts = rows * wo
            voff[j, :starts.size] = starts
            if wo == 32:
                voff[j, 1] = starts[0] + LANES
            d0[j] = starts[0]
            if j:
                flags[j] |= LEAD_MEAN
            elif rows[0] == 1:  # row 0 skipped: a copy of row 1
                flags[j] |= LEAD_COPY
            if j == n - 1 and rows[-1] == ho - 2:  # the last row skipped: a copy
                flags[j] |= TRAIL_COPY
        return voff, d0, flags, np.zeros(n, np.int64)
    positions = 2 * TILE_OUTPUTS
    if wo % 2 or positions % wo or (ho * wo) % positions:
        return None
    n = ho * wo // positions
    d0 = np.arange(n, dtype=np.int64) * positions
    voff = np.zeros((n, 4), np.int64)
    voff[:, 0], voff[:, 1] = d0, d0 + TILE_OUTPUTS
    edge_column = 0 if offset == 0 else wo - 1  # offset 0 skips column 0, 1 the last one
    bits = sum(1 << p for p in range(positions) if p % wo == edge_column)
    edges = np.full(n, np.uint64(bits).view(np.int64), np.int64)
    return voff, d0, np.zeros(n, np.int64), edges


# the maps the plane tiles cover, whole planes a tile. 2x2 maps (16 samples a tile, 16
# loads of 4 floats per input channel) measured slower than the packed GEMM (one thread,
# batch 64, 1024 -> 1024 channels: 1.26x over exact against 1.52x), so they keep it.
PLANE_SHAPES = ((4, 4),)
_PLANES = {(h, w, axis, o): _make_plane_tile(h, w, axis, o) for h, w in PLANE_SHAPES
           for axis in ("row", "col") for o in (0, 1)}
_p44r0, _p44r1, _p44c0, _p44c1 = (_PLANES[4, 4, a, o] for a in ("row", "col") for o in (0, 1))
_p44 = _make_plane_tile(4, 4, None, 0)  # whole planes, nothing skipped
_phase0, _phase1 = _make_phase_tile(0), _make_phase_tile(1)
_tap_dense, _tap_rows = _make_tap_tile(False), _make_tap_tile(True)


@njit(cache=True, nogil=True, inline="always")
def tap_tile(rows, mr, w, w0, ldw, x, x0, toff, nc, out, d0, ldo, bias, b0, carry, flags):
    """One tap tile (module doc) of ``mr`` (12, 4 or 1) output channels x one 32-wide output
    row: weights ``w[w0 + c*ldw + m]`` (transposed, (R, K)), the row's inputs of reduction
    step ``c`` at ``x[x0 + toff[c]]`` (32 floats of a padded input row); output channel
    ``m``'s row at ``out[d0 + m*ldo]`` with ``bias[b0 + m]``. ``rows``: a kept row of
    stride-2 row perforation, ``carry`` and ``flags`` as :func:`rows_tile` 32 wide; else
    ``flags``: :data:`RELU` only."""
    if rows:
        _tap_rows(w, w0, ldw, x, x0, toff, nc, out, d0, ldo, bias, b0, carry, flags, mr)
    else:
        _tap_dense(w, w0, ldw, x, x0, toff, nc, out, d0, ldo, bias, b0, carry, flags, mr)


def phase_tile_applies(offset: int, ho: int, wo: int) -> bool:
    """Whether phase tiles cover an ``ho x wo`` output under stride-2 column perforation with
    ``offset``: rows of 16 kept outputs (:data:`PHASE_WIDTHS`)."""
    return ho >= 1 and wo in PHASE_WIDTHS.get(offset, ())


@njit(cache=True, nogil=True, inline="always")
def phase_tile(offset, mr, w, w0, ldw, x, x0, toff, rs, nc, out, d0, ldo, bias, b0, flags, wo):
    """One phase tile (module doc) of ``mr`` (12, 4 or 1) output channels under stride-2
    column perforation with ``offset``: weights ``w[w0 + c*ldw + m]`` (transposed, (R, K)),
    the kept inputs of output row 0 and reduction step ``c`` at ``x[x0 + toff[c]]`` (16
    floats of one column phase), those of row 1 ``rs`` further on (0 with :data:`ONE_ROW`
    in ``flags``); output channel ``m``'s rows at ``out[d0 + m*ldo]``, ``wo`` apart, with
    ``bias[b0 + m]``; ``flags``: :data:`RELU`, :data:`ONE_ROW`, :data:`TRAIL_COPY` (``wo``
    = 33)."""
    if offset == 0:
        _phase0(w, w0, ldw, x, x0, toff, rs, nc, out, d0, ldo, bias, b0, flags, wo, mr)
    else:
        _phase1(w, w0, ldw, x, x0, toff, rs, nc, out, d0, ldo, bias, b0, flags, wo, mr)


def plane_code(axis: str | None, offset: int, ho: int, wo: int) -> int:
    """The plane tile of stride-2 perforation along ``axis`` ("row" | "col") with
    ``offset`` on ``ho x wo`` maps, or of whole planes (``axis`` None: exact, sampled), an
    index for :func:`plane_tile`; -1 if none covers them."""
    if axis is not None:
        _check_axis(axis)
    if (ho, wo) not in PLANE_SHAPES:
        return -1
    shape = PLANE_SHAPES.index((ho, wo))
    if axis is None:
        return 4 * len(PLANE_SHAPES) + shape
    return 4 * shape + 2 * (axis == "col") + offset


def plane_group(ho: int, wo: int, whole: bool = False) -> int:
    """Samples one plane tile covers on ``ho x wo`` maps: stride 2 keeps half of a plane,
    ``whole`` planes (exact, sampled) keep all of it."""
    return (1 if whole else 2) * TILE_OUTPUTS // (ho * wo)


@njit(cache=True, nogil=True, inline="always")
def plane_tile(code, mr, w, w0, ldw, x, x0, xs, ldx, nc, out, d0, ds, ldo, bias, b0, flags):
    """One plane tile (:func:`plane_code`) of ``mr`` (12, 4 or 1) output channels over
    :func:`plane_group` consecutive samples: sample ``g``'s input at ``x[x0 + g*xs]``, its
    output at ``out[d0 + g*ds]``; other arguments as :func:`rows_tile`."""
    a = (w, w0, ldw, x, x0, xs, ldx, nc, out, d0, ds, ldo, bias, b0, flags, mr)
    if code == 0:
        _p44r0(*a)
    elif code == 1:
        _p44r1(*a)
    elif code == 2:
        _p44c0(*a)
    elif code == 3:
        _p44c1(*a)
    else:
        _p44(*a)
