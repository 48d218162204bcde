"""The register tiles of stride-2 perforated 1x1 convolutions (``_microkernel``) against the
reference simulation: their plan, their path, and their values on shapes that reach every
tile (row widths 8 / 16 / 32, column tiles of 1 to 32 rows, 4x4 planes four samples a tile,
both offsets, output-channel tails of 4 and 1, one sample and many, one thread and two,
bias, ReLU, NaN, timed and untimed)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from numba import njit
from test_kernels_paths import SETTINGS, _data, _spy, assert_close, forced_paths, kernel_setting

from mobiprox_lab import kernels, knobs
from mobiprox_lab.kernels import _conv, _microkernel, _plan, _pointwise
from mobiprox_lab.kernels._validate import conv_spec


@njit(cache=False)
def _pack_columns(offset, x, x0, n, out, o0):
    _microkernel.pack_columns(offset, x, x0, n, out, o0)

reference = pytest.importorskip("mobiprox_lab.reference")

ROW_KNOBS, COLUMN_KNOBS = (123, 124), (121, 122)


def test_row_plan_of_an_8x8_map_is_one_tile_with_its_edges():
    # offset 1 keeps rows 0, 2, 4, 6: one tile of four 8-wide rows, the last row a copy
    voff, d0, flags, edges = _microkernel.tile_plan("row", 1, 8, 8)
    np.testing.assert_array_equal(voff, [[0, 16, 32, 48]])
    np.testing.assert_array_equal(d0, [0])
    assert flags.tolist() == [_microkernel.TRAIL_COPY] and edges.tolist() == [0]
    # offset 0 keeps rows 1, 3, ..., 15 of a 16x16 map: two rows a tile, row 0 a copy
    voff, d0, flags, _ = _microkernel.tile_plan("row", 0, 16, 16)
    np.testing.assert_array_equal(voff[:, :2], [[16, 48], [80, 112], [144, 176],
                                                [208, 240]])
    np.testing.assert_array_equal(d0, [16, 80, 144, 208])
    assert flags.tolist() == [_microkernel.LEAD_COPY] + [_microkernel.LEAD_MEAN] * 3
    # 32-wide rows: one row a tile, in two 16-float halves
    voff, d0, _, _ = _microkernel.tile_plan("row", 1, 4, 32)
    np.testing.assert_array_equal(voff[:, :2], [[0, 16], [64, 80]])


def test_column_plan_marks_the_row_edges():
    voff, d0, flags, edges = _microkernel.tile_plan("col", 0, 16, 8)
    np.testing.assert_array_equal(d0, [0, 64])
    np.testing.assert_array_equal(voff[:, :2], [[0, 32], [64, 96]])
    assert not flags.any()
    assert np.uint64(edges[0].view(np.uint64)) == np.uint64(0x0101010101010101)  # column 0
    _, _, _, edges = _microkernel.tile_plan("col", 1, 16, 8)
    assert np.uint64(edges[0].view(np.uint64)) == np.uint64(0x8080808080808080)  # column 7


@pytest.mark.parametrize("axis,ho,wo", [
    ("row", 8, 4), ("row", 8, 64), ("row", 5, 8), ("row", 2, 16), ("row", 1, 32),
    ("col", 8, 7), ("col", 4, 4), ("col", 2, 2), ("col", 1, 1), ("col", 3, 8),
    ("col", 1, 128)])
def test_no_plan_where_tiles_do_not_fit(axis, ho, wo):
    """Rows of other widths, too few kept rows for a tile, odd widths, planes that are not
    whole tiles, and the smallest maps go to the other kernels."""
    assert _microkernel.tile_plan(axis, 0, ho, wo) is None


@pytest.mark.parametrize("offset", [0, 1])
@given(n=st.integers(0, 4).map(lambda v: 16 * v), x0=st.integers(0, 5), o0=st.integers(0, 5))
@SETTINGS
def test_column_pack_takes_every_other_value_and_writes_nothing_else(offset, n, x0, o0):
    """The column tiles' input: offset 0 keeps the odd positions of a run, 1 the even."""
    x = np.arange(x0 + 2 * n + 7, dtype=np.float32)
    out = np.full(o0 + n + 3, -1.0, np.float32)
    _pack_columns(offset, x, x0, n, out, o0)
    np.testing.assert_array_equal(out[o0:o0 + n], x[x0 + 1 - offset:x0 + 2 * n:2])
    assert (out[:o0] == -1).all() and (out[o0 + n:] == -1).all()


@pytest.mark.parametrize("kid,path", [(123, "pointwise_s2_tiles"), (121, "pointwise_s2_tiles"),
                                      (123, "pointwise_gathered"), (129, "pointwise_gathered")])
def test_perforated_pointwise_takes_the_tiles_where_they_fit(kid, path):
    """8x8 maps take the tiles at stride 2; 8x4 rows (no tile) and stride 3 do not."""
    width = 4 if path == "pointwise_gathered" and kid == 123 else 8
    x, wt, b = _data(3, 2, 12, 8, width, 20, 12, 1, 1, True)
    with _spy(path) as calls, _spy(f"{path}_whole") if path == "pointwise_s2_tiles" else \
            contextlib.nullcontext([]) as whole, forced_paths(1):
        got = kernels.conv2d(x, wt, b, knob=kid)
    assert calls or whole  # one thread: the whole call in one kernel call (direct calls)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))


@pytest.mark.parametrize("kid,old", [(123, "pointwise_gathered"), (11, "pointwise_exact"),
                                     (231, "pointwise_sampled")])
@pytest.mark.parametrize("hw,n", [(8, 2), (4, 4)])
def test_without_wide_vectors_the_tiles_step_aside(kid, old, hw, n, monkeypatch):
    """Off AVX-512 (``REGISTER_TILES`` False) the GEMM paths run, as before the tiles, with
    the same values."""
    x, wt, b = _data(4, n, 12, hw, hw, 20, 12, 1, 1, True)
    with forced_paths(1):
        monkeypatch.setattr(_conv, "REGISTER_TILES", False)
        with _spy("pointwise_s2_tiles") as tiles, _spy("pointwise_plane_tiles") as planes, \
                _spy("pointwise_dense_tiles") as dense, _spy(old) as before, \
                _spy("pointwise_s2_tiles_whole") as whole:
            got = kernels.conv2d(x, wt, b, knob=kid)
    assert not tiles and not planes and not dense and not whole
    assert before or (hw == 4 and kid != 123)  # 4x4 exact / sampled: the packed GEMM
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))


@SETTINGS
@given(kid=st.sampled_from([11, 231, 232]), n=st.integers(1, 4), c=st.integers(1, 30),
       k=st.sampled_from([1, 3, 4, 5, 12, 13, 25]), hw=st.sampled_from([(8, 4), (4, 8), (8, 8),
                                                                       (16, 2), (6, 16)]),
       bias=st.booleans(), threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_dense_tiles_match_reference(kid, n, c, k, hw, bias, threads, seed):
    """Exact and stride-2 sampled 1x1 convs on planes of whole 32-output tiles; one input
    channel under offset 0 keeps none (the conv is the bias) and takes the old kernel."""
    x, wt, b = _data(seed, n, c, *hw, k, c, 1, 1, bias)
    with forced_paths(threads, POINTWISE_MIN_PLANE=1):
        with _spy("pointwise_dense_tiles") as calls:
            got = kernels.conv2d(x, wt, b, knob=kid)
            relu = kernels.conv2d(x, wt, b, knob=kid, relu=True)
    if threads == 1:
        assert bool(calls) == (kid != 231 or c > 1)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))
    np.testing.assert_array_equal(relu, np.maximum(got, 0))


@st.composite
def _tiled_shapes(draw):
    """(kid, h, w) of a map the tiles cover."""
    kid = draw(st.sampled_from(ROW_KNOBS + COLUMN_KNOBS))
    if kid in ROW_KNOBS:
        w = draw(st.sampled_from(_microkernel.ROW_WIDTHS))
        h = draw(st.integers(2, 72 // w))
    else:
        w = draw(st.sampled_from([2, 4, 8, 16, 32, 64]))
        h = (64 // w) * draw(st.integers(1, 3))
    return kid, h, w


@SETTINGS
@given(shape=_tiled_shapes(), n=st.integers(1, 4), c=st.integers(1, 24),
       k=st.sampled_from([1, 3, 4, 7, 12, 13, 17, 29]), bias=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_tiles_match_reference(shape, n, c, k, bias, threads, seed):
    kid, h, w = shape
    kn = knobs.get(kid)
    assume(_microkernel.tile_plan(kn.axis, kn.offset, h, w) is not None)  # whole tiles
    x, wt, b = _data(seed, n, c, h, w, k, c, 1, 1, bias)
    with forced_paths(threads, POINTWISE_MIN_PLANE=1):
        assert _conv._strided_pointwise(conv_spec(x, wt, b, 1, 0, 1, kid)) == "tiles"
        got = kernels.conv2d(x, wt, b, knob=kid)
        relu = kernels.conv2d(x, wt, b, knob=kid, relu=True)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))
    np.testing.assert_array_equal(relu, np.maximum(got, 0))


@pytest.mark.parametrize("kid", ROW_KNOBS + COLUMN_KNOBS)
def test_tiles_keep_nan_through_relu(kid):
    """A NaN input reaches every output of its sample's planes that depend on it, ReLU
    keeps it, as the other kernels do (``_scatter.act``); finite outputs stay close."""
    x, wt, _ = _data(11, 2, 4, 8, 16, 13, 4, 1, 1, False)
    x[1, 2, 3, 5] = np.nan
    with forced_paths(1):
        got = kernels.conv2d(x, wt, None, knob=kid, relu=True)
    want = np.maximum(reference.conv2d(x, wt, None, knob=kid), 0)
    want[np.isnan(reference.conv2d(x, wt, None, knob=kid))] = np.nan
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)


PLANE_KNOBS = ROW_KNOBS + COLUMN_KNOBS + (11, 231, 232)  # perforated, exact, sampled


@pytest.mark.parametrize("kid", PLANE_KNOBS)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 8])
def test_4x4_maps_take_the_plane_tiles_from_one_tile_of_samples(kid, n):
    """4x4 maps: four samples a tile under perforation, two exact or sampled (whole planes);
    the samples left over (7 = 4 + 3 = 3 * 2 + 1) and batches of fewer take the other
    kernels (writable weights: never the channel tiles)."""
    group = 4 if kid in ROW_KNOBS + COLUMN_KNOBS else 2
    x, wt, b = _data(5, n, 24, 4, 4, 17, 24, 1, 1, True)
    with _spy("pointwise_plane_tiles") as calls, forced_paths(1):
        got = kernels.conv2d(x, wt, b, knob=kid)
    assert bool(calls) == (n >= group)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))


@SETTINGS
@given(kid=st.sampled_from(PLANE_KNOBS), n=st.integers(4, 13),
       c=st.integers(1, 40), k=st.sampled_from([1, 3, 4, 5, 12, 16, 25]), bias=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_plane_tiles_match_reference(kid, n, c, k, bias, threads, seed):
    assume(kid != 231 or c > 1)  # sampling with offset 0 keeps no channel of one
    x, wt, b = _data(seed, n, c, 4, 4, k, c, 1, 1, bias)
    with forced_paths(threads):
        assert _conv._strided_pointwise(conv_spec(x, wt, b, 1, 0, 1, kid)) == "plane_tiles"
        got = kernels.conv2d(x, wt, b, knob=kid)
        relu = kernels.conv2d(x, wt, b, knob=kid, relu=True)
        timed, phases = kernels.conv2d_breakdown(x, wt, b, knob=kid, relu=True)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))
    np.testing.assert_array_equal(relu, np.maximum(got, 0))
    np.testing.assert_array_equal(timed, relu)
    assert phases["gemm"] > 0


def test_register_tiles_switch_is_checked_and_keys_the_timings():
    from mobiprox_lab import profiler

    before = kernels.get_register_tiles()
    try:
        with pytest.raises(ValueError, match="enabled: expected a bool"):
            kernels.set_register_tiles("yes")
        kernels.set_register_tiles(False)
        assert not kernels.get_register_tiles()
        assert profiler.machine_key()["register_tiles"] is False
        kernels.set_register_tiles(True)
        assert profiler.machine_key()["register_tiles"] is True
    finally:
        kernels.set_register_tiles(before)


CHANNEL_KNOBS = (11, 231, 232, *ROW_KNOBS, *COLUMN_KNOBS)


def _frozen(a):
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("hw,n", [(8, 2), (4, 4)])
def test_read_only_weights_keep_one_tile_packing_per_channel_class(hw, n):
    """Read-only weights are transposed for the tiles once and kept: exact and every
    stride-2 knob, called in turn on the same weights (twice, so the second round reads the
    kept packings), agree with the reference; the sampled offsets' packings stay apart."""
    x, wt, b = _data(11, n, 24, hw, hw, 28, 24, 1, 1, True)
    _frozen(wt)
    with forced_paths(1):
        for _ in range(2):
            for kid in CHANNEL_KNOBS:
                assert_close(kernels.conv2d(x, wt, b, knob=kid),
                             reference.conv2d(x, wt, b, knob=kid))


@pytest.mark.parametrize("kid", CHANNEL_KNOBS)
@pytest.mark.parametrize("hw,n,k,frozen,tiled", [
    ((4, 4), 1, 32, True, True), ((2, 2), 1, 48, True, True),
    ((2, 2), 2, 32, True, True),
    ((2, 2), 5, 32, True, True),    # any number of samples on 2x2 maps
    ((2, 4), 3, 32, True, False),   # more samples than CHANNEL_TILES_MAX_SAMPLES (2x4: on
                                    # 4x4 the plane tiles leave one to the channel tiles)
    ((2, 2), 1, 40, True, False),   # output channels not a multiple of 16
    ((3, 3), 1, 32, True, False),   # 9 pixels (exact) fill no channel tile
    ((4, 8), 1, 32, True, True),    # 32 pixels (exact, sampled) neither; 16 perforated do
    ((4, 4), 1, 32, False, False),  # writable weights: transposed on every call, not taken
])
def test_small_maps_of_one_sample_take_the_channel_tiles(kid, hw, n, k, frozen, tiled):
    x, wt, b = _data(6, n, 20, *hw, k, 20, 1, 1, True)
    if frozen:
        _frozen(wt)
    with _spy("pointwise_channel_tiles") as calls, forced_paths(1):
        got = kernels.conv2d(x, wt, b, knob=kid)
    pixels = hw[0] * hw[1] // (2 if kid in ROW_KNOBS + COLUMN_KNOBS else 1)
    assert bool(calls) == (tiled and pixels in _microkernel.CHANNEL_PIXELS)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))


@SETTINGS
@given(kid=st.sampled_from(CHANNEL_KNOBS), hw=st.sampled_from(
           [(4, 4), (2, 2), (4, 2), (2, 4), (1, 2), (2, 1), (1, 4), (4, 1), (1, 1)]),
       c=st.integers(1, 40), k=st.sampled_from([16, 32, 48, 112, 144, 272]),
       bias=st.booleans(), threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_channel_tiles_match_reference(kid, hw, c, k, bias, threads, seed):
    """Every channel-tile width (8, 4, 2 pixels) with its 16-channel tails, the maps'
    edges (copies) and one input channel under sampling offset 0 (none kept: the old
    kernel); timed calls give the same values as untimed ones."""
    assume(knobs.applicable(kid, "conv", hw))
    x, wt, b = _data(seed, 1, c, *hw, k, c, 1, 1, bias)
    _frozen(wt)
    with forced_paths(threads):
        kind = _conv._strided_pointwise(conv_spec(x, wt, b, 1, 0, 1, kid))
        got = kernels.conv2d(x, wt, b, knob=kid)
        relu = kernels.conv2d(x, wt, b, knob=kid, relu=True)
        timed, _ = kernels.conv2d_breakdown(x, wt, b, knob=kid, relu=True)
    pixels = hw[0] * hw[1] // (2 if kid in ROW_KNOBS + COLUMN_KNOBS else 1)
    assert (kind == "channel_tiles") == (pixels in _microkernel.CHANNEL_PIXELS
                                         and not (kid == 231 and c == 1))
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))
    np.testing.assert_array_equal(relu, np.maximum(got, 0))
    np.testing.assert_array_equal(timed, relu)


@pytest.mark.parametrize("pixels", _microkernel.CHANNEL_PIXELS)
@pytest.mark.parametrize("k", [16, 48, 144, 272])
def test_channel_panels_hold_each_tile_s_weights_in_order(pixels, k):
    """A tile of ``width`` output channels from ``m0`` reads ``width`` weights per input
    channel from ``m0 * C`` on: main tiles while that many channels are left, then 16."""
    w2 = np.random.default_rng(k).standard_normal((k, 7)).astype(np.float32)
    panels = _pointwise.channel_panels(w2, pixels)
    main = _microkernel.LANES * _microkernel.channel_vectors(pixels)
    m0 = 0
    while m0 < k:
        width = main if k - m0 >= main else _microkernel.LANES
        np.testing.assert_array_equal(panels[m0 * 7:(m0 + width) * 7].reshape(7, width),
                                      w2[m0:m0 + width].T)
        m0 += width
    assert panels.size == w2.size


@pytest.mark.parametrize("kid,hw", [(11, (2, 2)), (231, (2, 2)), (123, (2, 2)),
                                    (121, (4, 4)), (124, (4, 4)), (11, (2, 4))])
@pytest.mark.parametrize("n,k", [(1, 272), (2, 144), (1, 48)])
def test_channel_tiles_split_over_threads_start_on_panels(kid, hw, n, k):
    """Tasks of whole main tiles (their blocks of output channels rounded up to the main
    tile's width), the last one with the 16-channel tails: the same values as the
    reference, on one thread and two, timed and not."""
    x, wt, b = _data(n * k, n, 24, *hw, k, 24, 1, 1, True)
    _frozen(wt)
    want = reference.conv2d(x, wt, b, knob=kid)
    for threads in (1, 2):
        with _spy("pointwise_channel_tiles") as calls, forced_paths(threads):
            got = kernels.conv2d(x, wt, b, knob=kid)
            timed, _ = kernels.conv2d_breakdown(x, wt, b, knob=kid)
        assert calls
        assert_close(got, want)
        np.testing.assert_array_equal(timed, got)


@pytest.mark.parametrize("kid", [125, 127, 128, 130, 131, 134, 135, 138])
@pytest.mark.parametrize("hw", [(4, 4), (2, 2), (4, 2), (3, 4), (4, 3)])
@pytest.mark.parametrize("n", [1, 2, 5])
def test_channel_tiles_perforate_at_strides_3_and_4(kid, hw, n):
    """Stride-3 and -4 perforation of small maps: channel tiles where the kept pixels fill
    one (8, 4 or 2 of them; 2x2 maps at any batch), with the reference's fill (copies at
    the edges, means between kept rows or columns); the same values on two threads."""
    if not knobs.applicable(kid, "conv", hw):
        pytest.skip("the knob does not apply to this map")
    x, wt, b = _data(kid * 7 + n, n, 20, *hw, 32, 20, 1, 1, True)
    _frozen(wt)
    want = reference.conv2d(x, wt, b, knob=kid)
    kn = knobs.get(kid)
    kept = (len(_plan.axis_plan(hw[0], kn.stride, kn.offset)[0]) * hw[1] if kn.axis == "row"
            else hw[0] * len(_plan.axis_plan(hw[1], kn.stride, kn.offset)[0]))
    tiled = kept in _microkernel.CHANNEL_PIXELS and (n <= 2 or hw[0] * hw[1] <= 4)
    for threads in (1, 2):
        with _spy("pointwise_channel_tiles") as calls, forced_paths(threads):
            timed, _ = kernels.conv2d_breakdown(x, wt, b, knob=kid, relu=True)
            got = kernels.conv2d(x, wt, b, knob=kid, relu=True)
        assert bool(calls) == tiled
        assert_close(got, np.maximum(want, 0))
        np.testing.assert_array_equal(timed, got)


def test_channel_tiles_keep_nan_through_relu():
    """A NaN in input channel 2 reaches the outputs that read it; sampling offset 0 (231)
    skips channel 2, which the kernels never read (the reference multiplies it by a zero
    weight, NaN), so it is left out."""
    x, wt, _ = _data(12, 1, 6, 4, 4, 32, 6, 1, 1, False)
    x[0, 2, 1, 3] = np.nan
    _frozen(wt)
    for kid in (11, 232, *ROW_KNOBS, *COLUMN_KNOBS):
        with forced_paths(1):
            got = kernels.conv2d(x, wt, None, knob=kid, relu=True)
        want = reference.conv2d(x, wt, None, knob=kid)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        finite = ~np.isnan(want)
        np.testing.assert_allclose(got[finite], np.maximum(want, 0)[finite], rtol=1e-4,
                                   atol=1e-4)


def _streaming(min_bytes):
    return kernel_setting(kernels.get_streaming_stores, kernels.set_streaming_stores,
                          min_bytes)


def _stream_flags(mp) -> list:
    """Monkeypatch (``mp``) the tile runners of ``_conv`` to record the ``stream`` argument
    of each call (single-threaded calls run them from Python, untimed ones directly)."""
    seen = []

    def recorder(real, at):
        def wrapper(*args):
            seen.append(bool(args[at]))
            return real(*args)
        return wrapper

    for name, at in (("pointwise_dense_tiles", -1), ("pointwise_s2_tiles", -2),
                     ("pointwise_s2_tiles_whole", -1)):
        mp.setattr(_conv, name, recorder(getattr(_conv, name), at))
    return seen


@st.composite
def _streamed_shapes(draw):
    """(kid, h, w) of a map the dense or the stride-2 tiles cover."""
    if draw(st.booleans()):
        return draw(st.sampled_from([11, 231, 232])), *draw(st.sampled_from(
            [(8, 4), (4, 8), (8, 8), (16, 2), (6, 16), (3, 32)]))
    return draw(_tiled_shapes())


@SETTINGS
@given(shape=_streamed_shapes(), n=st.integers(1, 4), c=st.integers(1, 24),
       k=st.sampled_from([1, 4, 5, 12, 13, 29]), bias=st.booleans(), relu=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_streaming_stores_write_the_same_outputs(shape, n, c, k, bias, relu, threads, seed):
    """Non-temporal stores (``kernels.set_streaming_stores``) change where the tiles' outputs
    go through the memory system, not their values: bit for bit those of ordinary stores,
    on every tile, on the maps that stream (planes of whole 16-float lines, each line
    written by one tile) and those that do not, one thread and two."""
    kid, h, w = shape
    kn = knobs.get(kid)
    if kn.technique == "perforation":
        assume(_microkernel.tile_plan(kn.axis, kn.offset, h, w) is not None)
    x, wt, b = _data(seed, n, c, h, w, k, c, 1, 1, bias)
    with forced_paths(threads, POINTWISE_MIN_PLANE=1):
        with _streaming(None):
            cached = kernels.conv2d(x, wt, b, knob=kid, relu=relu)
        with _streaming(0), pytest.MonkeyPatch.context() as mp:
            flags = _stream_flags(mp)
            streamed = kernels.conv2d(x, wt, b, knob=kid, relu=relu)
    np.testing.assert_array_equal(streamed, cached)
    if threads == 1:  # a single-threaded call runs its tiles from Python, where flags sees it
        split_lines = kn.axis == "row" and w == 8 and kn.offset == 1
        assert flags or (kid == 231 and c == 1)  # one channel, offset 0: nothing to reduce
        assert all(flags) == ((h * w) % _microkernel.LANES == 0 and not split_lines)
    want = reference.conv2d(x, wt, b, knob=kid)
    assert_close(streamed, np.maximum(want, 0) if relu else want)


def test_streaming_needs_aligned_whole_lines_each_written_by_one_tile():
    """Misaligned outputs (a non-temporal vector store there faults), planes that are not
    whole 16-float lines and 8-wide rows at offset 1 (lines written by two tiles) are not
    streamed; the timed call with a ReLU pass after it is not either."""
    x, wt, b = _data(7, 2, 8, 16, 16, 12, 8, 1, 1, True)
    exact, row1 = knobs.get(11), knobs.get(124)
    with _streaming(0):
        out = kernels.conv2d(x, wt, b)
        assert _conv._streams(out, "dense", exact)
        shifted = np.empty(out.size + 1, np.float32)[1:].reshape(out.shape)
        assert shifted.ctypes.data % 64 and not _conv._streams(shifted, "dense", exact)
        assert not _conv._streams(out, "gathered", exact)
        assert not _conv._streams(kernels.conv2d(x[:, :, :3, :8], wt), "tiles", row1)
        assert not _conv._streams(kernels.conv2d(x[:, :, :, :8], wt), "tiles", row1)
        assert _conv._streams(kernels.conv2d(x[:, :, :, :8], wt), "tiles", knobs.get(123))
        with forced_paths(1), pytest.MonkeyPatch.context() as mp:
            flags = _stream_flags(mp)
            kernels.conv2d_breakdown(x, wt, b, knob=11, relu=True)
            kernels.conv2d_breakdown(x, wt, b, knob=11)
    assert flags == [False, True]


@pytest.mark.parametrize("min_bytes,streams", [(None, False), (0, True),
                                               (4 * 2 * 12 * 256, True),
                                               (4 * 2 * 12 * 256 + 1, False)])
def test_streaming_starts_at_the_output_size_set(min_bytes, streams):
    """From ``min_bytes`` written by a call on (here 2 x 12 x 16 x 16 floats), not below."""
    x, wt, b = _data(3, 2, 8, 16, 16, 12, 8, 1, 1, True)
    with forced_paths(1), _streaming(min_bytes), pytest.MonkeyPatch.context() as mp:
        flags = _stream_flags(mp)
        kernels.conv2d(x, wt, b, knob=11)
        kernels.conv2d(x, wt, b, knob=123)
    assert len(flags) == 2 and flags == [streams] * 2


def test_streaming_switch_is_checked_and_keys_the_timings():
    from mobiprox_lab import profiler

    for bad in ("8M", -1, 2.5, True):
        with pytest.raises(ValueError, match="min_bytes: expected an int >= 0 or None"):
            kernels.set_streaming_stores(bad)
    with _streaming(1 << 20):
        assert kernels.get_streaming_stores() == 1 << 20
        assert profiler.machine_key()["streaming_stores"] == 1 << 20
    with _streaming(None):
        assert profiler.machine_key()["streaming_stores"] is None


@pytest.mark.parametrize("shape", [(0,), (1,), (3, 5), (2, 3, 4, 5)])
def test_aligned_empty_starts_on_the_boundary(shape):
    for align in (4, 64, 256):
        a = kernels.aligned_empty(shape, align)
        assert a.shape == shape and a.dtype == np.float32 and a.flags.c_contiguous
        assert a.ctypes.data % align == 0 or a.size == 0
    with pytest.raises(ValueError, match="align: expected a power of two >= 4"):
        kernels.aligned_empty((3,), 48)


@pytest.mark.parametrize("n", [0, 1, 17, 16384, 65536])
def test_numba_side_buffers_start_on_a_cache_line(n):
    """The column tiles' packed input and the row tiles' carry (Numba's own ``np.empty`` is
    32-byte aligned)."""
    from mobiprox_lab.kernels._memory import aligned_buffer

    a = aligned_buffer(n)
    assert a.shape == (n,) and a.dtype == np.float32 and a.flags.c_contiguous
    assert a.ctypes.data % 64 == 0


@pytest.mark.parametrize("shape", [(0,), (7,), (3, 5), (2, 3, 4, 5)])
def test_half_rounded_copies_are_aligned_and_equal_numpys_cast(shape):
    """The runtime's fp16 rounding between layers: NumPy's values, on a 64-byte boundary."""
    a = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 1e4
    a[...] = np.where(np.arange(a.size).reshape(shape) % 5 == 0, np.nan, a)
    got = kernels.to_half(a[..., ::-1])  # a non-contiguous input too
    want = a[..., ::-1].astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert got.ctypes.data % 64 == 0 or got.size == 0
