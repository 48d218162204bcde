"""Stride-2 column perforation by phase tiles (``_phase_tiles``, ``_microkernel.phase_tile``)
against the reference simulation: the padded column phases and tap offsets they read,
which calls take them, and their values on every shape they cover (32- and 33-wide rows,
both offsets, kernels from 1x2 to 5x8, padding, one output row to many, odd row counts,
output-channel tails of 4 and 1, one sample and many, one thread and two, task loops in
Numba and in Python, bias, ReLU, NaN, timed and untimed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from test_kernels_paths import SETTINGS, _data, _routes, assert_close, forced_paths, kernel_setting

from mobiprox_lab import kernels
from mobiprox_lab.kernels import _conv, _microkernel
from mobiprox_lab.kernels._im2col import split_padded_column_phases
from mobiprox_lab.kernels._phase_tiles import (
    phase_buffer_size,
    phase_half,
    phase_offsets,
)
from mobiprox_lab.kernels._validate import conv_spec

reference = pytest.importorskip("mobiprox_lab.reference")


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


def test_phase_offsets_point_at_each_taps_first_kept_input():
    """KWS's first layer at offset 0 keeps output columns 1, 3, ..., 31: tap ``(0, i, t)``
    reads padded column ``1 + t`` first, slot ``(1 + t) // 2`` of phase ``(1 + t) % 2``."""
    hp, half = 101, phase_half(40, 0)
    offs = phase_offsets(1, 20, 8, hp, half, 33, 0)
    assert offs.shape == (160,) and offs.dtype == np.int64 and not offs.flags.writeable
    for i, t in [(0, 0), (0, 1), (0, 7), (5, 2), (19, 7)]:
        col = 1 + t
        assert offs[i * 8 + t] == (i * 2 + col % 2) * half + col // 2
    assert phase_offsets(2, 1, 2, 9, 5, 32, 1)[2] == (9 * 2 + 0) * 5  # channel 1, offset 1


@pytest.mark.parametrize("kid,h,w,kh,kw,pad,phases", [
    (121, 101, 40, 20, 8, 0, True),   # the KWS CNN's first layer, offset 0: 33 wide
    (122, 101, 40, 20, 8, 0, False),  # ... offset 1 keeps 17 a row: row blocks
    (121, 32, 32, 3, 3, 1, True),     # the HAR MobileNet's first layer
    (122, 32, 32, 3, 3, 1, True),
    (121, 16, 16, 3, 3, 1, False),    # 16 wide: 8 kept a row
    (123, 32, 32, 3, 3, 1, False),    # rows perforated
    (231, 32, 32, 3, 3, 1, False),    # filter sampling
    (151, 32, 32, 3, 3, 1, False),    # fp16
    (121, 32, 32, 1, 1, 0, False),    # 1x1: the pointwise tiles
])
def test_stride_2_column_perforation_of_32_and_33_wide_maps_takes_the_phase_tiles(
        kid, h, w, kh, kw, pad, phases):
    x, wt, b = _data(3, 1, 1 if kh > 3 else 3, h, w, 8, 1 if kh > 3 else 3, kh, kw, True)
    with forced_paths(1):
        assert (_conv._route(conv_spec(x, wt, b, 1, pad, 1, kid), wt)[0] == "phases") == phases
        with kernel_setting(kernels.get_register_tiles, kernels.set_register_tiles, False):
            assert _conv._route(conv_spec(x, wt, b, 1, pad, 1, kid), wt)[0] != "phases"


@st.composite
def _phase_shapes(draw):
    """(kid, h, w, kh, kw, (ph, pw)): a stride-1 conv whose 1 to 9 output rows are 32 or 33
    wide with 16 kept under the knob."""
    kid = draw(st.sampled_from([121, 122]))
    wo = draw(st.sampled_from(_microkernel.PHASE_WIDTHS[kid - 121]))
    kh, kw = draw(st.sampled_from([(1, 2), (2, 1), (3, 3), (2, 5), (5, 8), (4, 3)]))
    ph, pw = draw(st.integers(0, (kh - 1) // 2 + 1)), draw(st.integers(0, (kw - 1) // 2 + 1))
    h = draw(st.integers(1, 9)) + kh - 1 - 2 * ph
    assume(h >= 1)
    return kid, h, wo + kw - 1 - 2 * pw, kh, kw, (ph, pw)


@SETTINGS
@given(shape=_phase_shapes(), n=st.integers(1, 4), c=st.integers(1, 6),
       k=st.sampled_from([1, 3, 4, 7, 12, 13, 17, 29]), bias=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_phase_tiles_match_reference(shape, n, c, k, bias, threads, seed):
    kid, h, w, kh, kw, pad = shape
    x, wt, b = _data(seed, n, c, h, w, k, c, kh, kw, bias)
    want = reference.conv2d(x, wt, b, padding=pad, knob=kid)
    with forced_paths(threads), _routes() as seen:
        got = kernels.conv2d(x, wt, b, padding=pad, knob=kid)
        relu = kernels.conv2d(x, wt, b, padding=pad, knob=kid, relu=True)
        timed, phases = kernels.conv2d_breakdown(x, wt, b, padding=pad, knob=kid, relu=True)
    assert {path for path, _ in seen} == {"phases"}
    assert_close(got, want)
    np.testing.assert_array_equal(relu, np.maximum(got, 0))
    np.testing.assert_array_equal(timed, relu)
    assert phases["gemm"] > 0 and phases["im2col"] == 0


@pytest.mark.parametrize("n", [1, 3, 9])
def test_numba_and_python_task_loops_and_one_call_give_the_same_bits(n):
    """Two threads by loop jobs and by Python tasks (a batch of one: blocks of rows, each
    splitting its own input rows), and one thread by one kernel call."""
    x, wt, b = _data(5, n, 2, 35, 35, 13, 2, 4, 3, True)
    kw = {"padding": (1, 0), "knob": 121, "relu": True}
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
    assert_close(one_call, np.maximum(reference.conv2d(x, wt, b, padding=(1, 0), knob=121), 0))


@pytest.mark.parametrize("kid", [121, 122])
def test_phase_tiles_keep_nan_through_relu(kid):
    """A NaN input reaches every output that reads it, and the outputs filled from those,
    ReLU keeping it; finite outputs stay close."""
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
