"""Register tiles of stride-1 convolutions larger than 1x1 against the reference simulation:
tap tiles (``_tap_tiles``: exact, filter sampling and stride-2 row perforation of 32-wide
output rows) and phase tiles (``_phase_tiles``: stride-2 column perforation of 32- and
33-wide rows). The inputs they read (a padded sample, its column phases, the tap offsets),
which calls take them, and their values on every shape they cover: kernels from 1x2 to 5x8,
padding, one output row to many, odd row counts, every sampling stride and offset, both
perforation offsets, output-channel tails of 4 and 1, one sample and many, one thread and
two, task loops in Numba and in Python, bias, ReLU, NaN, timed and untimed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from test_kernels_paths import SETTINGS, _data, _routes, assert_close, forced_paths, kernel_setting

from mobiprox_lab import kernels, knobs
from mobiprox_lab.kernels import _conv, _microkernel
from mobiprox_lab.kernels._im2col import split_padded_column_phases
from mobiprox_lab.kernels._phase_tiles import phase_buffer_size, phase_half, phase_offsets
from mobiprox_lab.kernels._tap_tiles import pad_sample, tap_offsets
from mobiprox_lab.kernels._validate import conv_spec

reference = pytest.importorskip("mobiprox_lab.reference")

TAP_KNOBS = (11, 123, 124, 231, 232, 233, 234, 236, 239)  # exact, row s2, sampling s2-s4
PHASE_KNOBS = (121, 122)  # column s2


# ---- what the tiles read ----------------------------------------------------------------

@pytest.mark.parametrize("h,w,ph,pw", [(3, 8, 0, 0), (4, 7, 1, 2), (1, 1, 2, 1)])
def test_padded_sample_holds_the_zero_padded_input(h, w, ph, pw):
    x = np.arange(2 * 3 * h * w, dtype=np.float32).reshape(2, 3, h, w) + 1
    want = np.pad(x[1], ((0, 0), (ph, ph), (pw, pw)))
    xpad = np.full(want.size, -7.0, np.float32)
    pad_sample(x, 1, ph, pw, xpad)
    np.testing.assert_array_equal(xpad.reshape(want.shape), want)


@pytest.mark.parametrize("h,w,ph,pw", [(3, 8, 0, 0), (4, 7, 1, 2), (2, 5, 2, 1), (1, 1, 1, 3)])
def test_padded_column_phases_hold_the_padded_input_split_by_column_parity(h, w, ph, pw):
    x = np.arange(2 * 3 * h * w, dtype=np.float32).reshape(2, 3, h, w) + 1
    half = phase_half(w, pw)
    padded = np.pad(x[1], ((0, 0), (ph, ph), (pw, pw + (w + 2 * pw) % 2)))
    want = np.stack([padded[:, :, 0::2], padded[:, :, 1::2]], axis=2)  # (C, Hp, 2, half)
    xph = np.full(phase_buffer_size(3, h, w, ph, pw), -7.0, np.float32)
    assert xph.size == want.size
    split_padded_column_phases(x, 1, ph, pw, 0, h + 2 * ph, half, xph)
    np.testing.assert_array_equal(xph.reshape(want.shape), want)
    xph[:] = -7.0  # rows 1 .. 1: only those written
    split_padded_column_phases(x, 1, ph, pw, 1, 2, half, xph)
    got = xph.reshape(want.shape)
    np.testing.assert_array_equal(got[:, 1], want[:, 1])
    assert (np.delete(got, 1, axis=1) == -7.0).all()


def test_tap_offsets_point_at_each_kept_taps_first_input():
    """HAR's first layer (3 channels, 3x3, padding 1: 34 x 34 padded): tap ``(c, i, j)``
    reads padded row ``i``, column ``j`` of channel ``c`` first; sampling keeps its taps."""
    offs = tap_offsets(3, 3, 3, 34, 34)
    assert offs.shape == (27,) and offs.dtype == np.int64 and not offs.flags.writeable
    assert offs[0] == 0 and offs[5] == 1 * 34 + 2 and offs[26] == (2 * 34 + 2) * 34 + 2
    sampled = tap_offsets(3, 3, 3, 34, 34, 2, 0)
    assert set(sampled) < set(offs) and sampled.size < offs.size


def test_phase_offsets_point_at_each_taps_first_kept_input():
    """KWS's first layer at offset 0 keeps output columns 1, 3, ..., 31: tap ``(0, i, t)``
    reads padded column ``1 + t`` first, slot ``(1 + t) // 2`` of phase ``(1 + t) % 2``."""
    half = phase_half(40, 0)
    offs = phase_offsets(1, 20, 8, 101, half, 33, 0)
    assert offs.shape == (160,) and offs.dtype == np.int64 and not offs.flags.writeable
    for i, t in [(0, 0), (0, 1), (0, 7), (5, 2), (19, 7)]:
        col = 1 + t
        assert offs[i * 8 + t] == (i * 2 + col % 2) * half + col // 2
    assert phase_offsets(2, 1, 2, 9, 5, 32, 1)[2] == (9 * 2 + 0) * 5  # channel 1, offset 1


# ---- which calls take them --------------------------------------------------------------

@pytest.mark.parametrize("kid,w,kh,kw,pad,path", [
    (11, 32, 3, 3, 1, "taps"),      # the HAR MobileNet's first layer: exact
    (123, 32, 3, 3, 1, "taps"),     # ... row perforation at stride 2
    (124, 32, 3, 3, 1, "taps"),
    (232, 32, 3, 3, 1, "taps"),     # ... filter sampling
    (121, 32, 3, 3, 1, "phases"),   # ... column perforation at stride 2
    (122, 32, 3, 3, 1, "phases"),
    (125, 32, 3, 3, 1, None),       # stride-3 perforation
    (151, 32, 3, 3, 1, None),       # fp16
    (11, 33, 3, 3, 1, None),        # 33 wide: column perforation only
    (121, 16, 3, 3, 1, None),       # 16 wide: 8 kept a row
    (121, 40, 20, 8, 0, "phases"),  # the KWS CNN's first layer, offset 0: 33 wide
    (122, 40, 20, 8, 0, None),      # ... offset 1 keeps 17 a row: row blocks
    (11, 40, 20, 8, 0, None),
    (11, 32, 1, 1, 0, None),        # 1x1: the pointwise tiles
    (121, 32, 1, 1, 0, None),
])
def test_which_calls_take_the_tap_and_phase_tiles(kid, w, kh, kw, pad, path):
    c = 1 if kh > 3 else 3
    x, wt, b = _data(3, 1, c, 2 * kh + 1, w, 8, c, kh, kw, True)
    with forced_paths(1):
        got = _conv._route(conv_spec(x, wt, b, 1, pad, 1, kid), wt)[0]
        assert got == path if path else got not in ("taps", "phases")
        with kernel_setting(kernels.get_register_tiles, kernels.set_register_tiles, False):
            assert _conv._route(conv_spec(x, wt, b, 1, pad, 1, kid), wt)[0] not in (
                "taps", "phases")


# ---- their values -----------------------------------------------------------------------

@st.composite
def _tile_shapes(draw):
    """(path, kid, h, w, kh, kw, (ph, pw)): a stride-1 conv with 1 to 9 output rows that
    ``path`` ("taps" | "phases") covers: 32 wide, or 33 under column perforation at
    offset 0."""
    path = draw(st.sampled_from(["taps", "phases"]))
    kid = draw(st.sampled_from(TAP_KNOBS if path == "taps" else PHASE_KNOBS))
    wo = 32 if path == "taps" else draw(st.sampled_from(_microkernel.PHASE_WIDTHS[kid - 121]))
    kh, kw = draw(st.sampled_from([(1, 2), (2, 1), (3, 3), (2, 5), (5, 8), (4, 3)]))
    ph, pw = draw(st.integers(0, (kh - 1) // 2 + 1)), draw(st.integers(0, (kw - 1) // 2 + 1))
    ho = draw(st.integers(1, 9))
    h = ho + kh - 1 - 2 * ph
    assume(h >= 1 and knobs.applicable(kid, "conv", (ho, wo)))  # a row perforated: 2 rows
    return path, kid, h, wo + kw - 1 - 2 * pw, kh, kw, (ph, pw)


@SETTINGS
@given(shape=_tile_shapes(), n=st.integers(1, 4), c=st.integers(1, 6),
       k=st.sampled_from([1, 3, 4, 7, 12, 13, 17, 29]), bias=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_tiles_match_reference(shape, n, c, k, bias, threads, seed):
    path, kid, h, w, kh, kw, pad = shape
    x, wt, b = _data(seed, n, c, h, w, k, c, kh, kw, bias)
    want = reference.conv2d(x, wt, b, padding=pad, knob=kid)
    with forced_paths(threads), _routes() as seen:
        got = kernels.conv2d(x, wt, b, padding=pad, knob=kid)
        relu = kernels.conv2d(x, wt, b, padding=pad, knob=kid, relu=True)
        timed, phases = kernels.conv2d_breakdown(x, wt, b, padding=pad, knob=kid, relu=True)
    assert {route for route, _ in seen} == {path}
    assert_close(got, want)
    np.testing.assert_array_equal(relu, np.maximum(got, 0))
    np.testing.assert_array_equal(timed, relu)
    assert phases["gemm"] > 0 and phases["im2col"] == 0


@pytest.mark.parametrize("kid", [11, 123, 232, 121, 122])
@pytest.mark.parametrize("n", [1, 3, 9])
def test_numba_and_python_task_loops_and_one_call_give_the_same_bits(kid, n):
    """Two threads by loop jobs and by Python tasks (one sample: blocks of output channels,
    or of rows under the phase tiles), one thread by one kernel call, read-only weights as
    the runtime passes them."""
    x, wt, b = _data(5, n, 2, 34, 34, 29, 2, 4, 3, True)
    wt.flags.writeable = False
    kw = {"padding": (1, 0), "knob": kid, "relu": True}
    with forced_paths(1):
        one_call = kernels.conv2d(x, wt, b, **kw)
        with kernel_setting(kernels.get_direct_calls, kernels.set_direct_calls, False):
            one_task = kernels.conv2d(x, wt, b, **kw)
    with forced_paths(2):
        in_numba = kernels.conv2d(x, wt, b, **kw)
        with kernel_setting(kernels.get_numba_task_loops, kernels.set_numba_task_loops, False):
            in_python = kernels.conv2d(x, wt, b, **kw)
    for got in (one_task, in_numba, in_python):
        np.testing.assert_array_equal(got, one_call)
    assert_close(one_call, np.maximum(reference.conv2d(x, wt, b, padding=(1, 0), knob=kid), 0))


@pytest.mark.parametrize("kid", [11, 123, 124, 121, 122])
def test_tiles_keep_nan_through_relu(kid):
    """A NaN input reaches every output that reads it, and the outputs filled from those,
    ReLU keeping it; finite outputs stay close. (Filter sampling is left out: it skips the
    dropped taps, as every sampled path does, where the reference multiplies them by 0 and
    so spreads NaN through them.)"""
    x, wt, _ = _data(11, 2, 3, 12, 34, 13, 3, 3, 3, False)
    x[1, 2, 4, 9] = np.nan
    with forced_paths(1):
        got = kernels.conv2d(x, wt, None, knob=kid, relu=True)
    ref = reference.conv2d(x, wt, None, knob=kid)
    want = np.maximum(ref, 0)
    want[np.isnan(ref)] = np.nan
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)
