"""The perforation fast paths against the reference simulation: 1x1 convolutions by one GEMM
per kept row with the skipped rows filled in place, the batched gather for the rest, and the
stride-2 fills of the scatter (whole-plane column interleave, row pairs), on shapes that
reach them: odd sizes, the smallest outputs (2x2, 2x1, 1x2), batch 1 and several, offsets,
bias or none, one and two threads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_kernels_paths import assert_close, forced_paths, spy_row_gemms  # tests folder on sys.path

from mobiprox_lab import kernels, knobs
from mobiprox_lab.kernels import _conv, _plan, _scatter

reference = pytest.importorskip("mobiprox_lab.reference")

PERF_KNOBS = [k for k in knobs.CONV_KNOB_IDS
              if knobs.get(k).technique == "perforation" and not knobs.get(k).is_fp16]
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def _data(seed, n, c, h, w, k, kh, kw, bias):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = rng.standard_normal((k, c, kh, kw), dtype=np.float32)
    return x, wt, (rng.standard_normal(k, dtype=np.float32) if bias else None)


@pytest.mark.parametrize("row_gemm_macs", [0, 10**12], ids=["row-gemms", "gathered"])
@SETTINGS
@given(n=st.integers(1, 5), c=st.integers(1, 9), k=st.integers(1, 20), h=st.integers(1, 11),
       w=st.integers(1, 11), kid=st.sampled_from(PERF_KNOBS), bias=st.booleans(),
       threads=st.sampled_from([1, 2]), width=st.sampled_from([1, 7, 128]),
       seed=st.integers(0, 2**31 - 1))
def test_pointwise_perforation_matches_reference(row_gemm_macs, n, c, k, h, w, kid, bias,
                                                 threads, width, seed):
    """Both 1x1 perforation kernels, and one or several samples per gathered GEMM."""
    assume(knobs.applicable(kid, "conv", (h, w)))
    x, wt, b = _data(seed, n, c, h, w, k, 1, 1, bias)
    with forced_paths(threads, POINTWISE_MIN_PLANE=1, POINTWISE_ROW_GEMM_MIN_MACS=row_gemm_macs,
                 POINTWISE_GEMM_WIDTH=width):
        got = kernels.conv2d(x, wt, b, knob=kid)
        relu = kernels.conv2d(x, wt, b, knob=kid, relu=True)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))
    np.testing.assert_array_equal(relu, np.maximum(got, 0))


@pytest.mark.parametrize("kid", [121, 122, 123, 124])
@pytest.mark.parametrize("hw", [(2, 2), (2, 1), (1, 2), (2, 3), (3, 2), (8, 8), (9, 7)])
@pytest.mark.parametrize("row_gemm_macs", [0, 10**12])
def test_pointwise_stride2_smallest_and_odd(kid, hw, row_gemm_macs):
    x, wt, b = _data(7, 3, 5, *hw, 6, 1, 1, True)
    with forced_paths(1, POINTWISE_MIN_PLANE=1, POINTWISE_ROW_GEMM_MIN_MACS=row_gemm_macs):
        if not knobs.applicable(kid, "conv", hw):  # e.g. columns of a 1-wide output
            with pytest.raises(ValueError, match=f"knob: {kid} .* is not applicable"):
                kernels.conv2d(x, wt, b, knob=kid)
            return
        got = kernels.conv2d(x, wt, b, knob=kid)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))


def test_har_pointwise_layer_takes_the_row_gemms():
    """A HAR-sized pointwise layer (128 -> 256 channels, 8x8) runs stride-3 row perforation
    as row GEMMs, stride-3 column perforation through the gather (on one thread, whose
    tasks hold all output channels); stride 2 takes the register tiles
    (``test_kernels_microkernel``)."""
    x, wt, b = _data(1, 2, 128, 8, 8, 256, 1, 1, True)
    with pytest.MonkeyPatch.context() as mp, forced_paths(1):  # one thread: all channels a task
        seen = spy_row_gemms(mp)
        for kid in (128, 125):
            got = kernels.conv2d(x, wt, b, knob=kid)
            assert_close(got, reference.conv2d(x, wt, b, knob=kid))
    assert seen == [True, False]


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 4), k=st.integers(1, 6), kh=st.integers(1, 3),
       kw=st.integers(1, 3), ho=st.integers(1, 9), wo=st.integers(1, 9), pad=st.integers(0, 1),
       kid=st.sampled_from(PERF_KNOBS), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_chunked_perforation_matches_reference(n, c, k, kh, kw, ho, wo, pad, kid, bias, seed):
    """The im2col -> GEMM -> scatter path (the scatter's stride-2 row and column fills)."""
    assume(knobs.applicable(kid, "conv", (ho, wo)))
    h, w = ho + kh - 1 - 2 * pad, wo + kw - 1 - 2 * pad
    assume(h >= 1 and w >= 1)
    x, wt, b = _data(seed, n, c, h, w, k, kh, kw, bias)
    with forced_paths(1, POINTWISE_MIN_PLANE=10**9, POINTWISE_SMALL_MIN_PLANE=10**9,
                      REGISTER_TILES=False,
                      POINTWISE_BATCHED_MIN_SAMPLES=10**9):
        got = kernels.conv2d(x, wt, b, padding=pad, knob=kid)
    assert_close(got, reference.conv2d(x, wt, b, padding=pad, knob=kid))


def test_stride2_plan_detection():
    """The scatter's stride-2 row fill is taken exactly for plans equal to a stride-2 one."""
    for ho in range(2, 14):
        for stride in (2, 3, 4):
            for off in range(min(stride, ho)):
                kept, a, b = _plan.axis_plan(ho, stride, off)
                if not 0 < kept.size < ho or not knobs.applicable(
                        {2: 123, 3: 128, 4: 135}[stride] + off, "conv", (ho, 3)):
                    continue
                same = set()  # stride-2 offsets with the same plan (both, for 2 rows)
                for o in (0, 1):
                    if knobs.applicable(123 + o, "conv", (ho, 3)):
                        _, a2, b2 = _plan.axis_plan(ho, 2, o)
                        if np.array_equal(a, a2) and np.array_equal(b, b2):
                            same.add(o)
                got = _scatter._stride2_offset(a, b, ho)
                assert got in same if same else got == -1, (ho, stride, off)


COL_KNOBS = [k for k in PERF_KNOBS if knobs.get(k).axis == "col"]


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 4), k=st.integers(1, 6), kh=st.integers(1, 3),
       kw=st.integers(1, 3), sh=st.integers(1, 2), sw=st.integers(1, 2), ho=st.integers(1, 9),
       wo=st.integers(1, 9), data=st.data(), bias=st.booleans(),
       threads=st.sampled_from([1, 2]), block=st.sampled_from([1, 3, 1024]),
       seed=st.integers(0, 2**31 - 1))
def test_column_perforation_by_row_blocks(n, c, k, kh, kw, sh, sw, ho, wo, data, bias, threads,
                                          block, seed):
    """Column perforation by blocks of output rows (im2col of the kept columns -> GEMM ->
    the rows filled), one or several blocks per sample, timed and untimed."""
    kid = data.draw(st.sampled_from(COL_KNOBS))
    assume(knobs.applicable(kid, "conv", (ho, wo)))
    ph = data.draw(st.integers(0, kh - 1))
    pw = data.draw(st.integers(0, kw - 1))
    h = max(1, (ho - 1) * sh + kh - 2 * ph)
    w = max(1, (wo - 1) * sw + kw - 2 * pw)
    x, wt, b = _data(seed, n, c, h, w, k, kh, kw, bias)
    args = {"stride": (sh, sw), "padding": (ph, pw), "knob": kid}
    with forced_paths(threads, ROWBLOCK_MIN_PLANE=1, WIDE_MIN_REDUCTION=10**9,
                 POINTWISE_MIN_PLANE=10**9, POINTWISE_SMALL_MIN_PLANE=10**9, REGISTER_TILES=False,
                 POINTWISE_BATCHED_MIN_SAMPLES=10**9, COLUMN_BLOCK_COLUMNS=block):
        got = kernels.conv2d(x, wt, b, **args)
        timed, phases = kernels.conv2d_breakdown(x, wt, b, **args)
    want = reference.conv2d(x, wt, b, **args)
    assert_close(got, want)
    np.testing.assert_array_equal(timed, got)
    assert phases["interp"] > 0


def test_har_first_layer_column_perforation_takes_row_blocks():
    x, wt, b = _data(2, 2, 3, 32, 32, 8, 3, 3, True)
    calls = []
    real = _conv.rowblock_columns_chunk

    def spy(*args):
        calls.append(1)
        return real(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_conv, "rowblock_columns_chunk", spy)
        for kid in (121, 122, 125):
            assert_close(kernels.conv2d(x, wt, b, padding=1, knob=kid),
                   reference.conv2d(x, wt, b, padding=1, knob=kid))
    assert calls


@pytest.mark.parametrize("kid", [121, 122])
@pytest.mark.parametrize("k", [8, 80])  # 8 x 16x8 kept values a sample: one loop; 80 x: per plane
def test_pointwise_stride2_columns_both_fills(kid, k):
    x, wt, b = _data(9, 3, 5, 16, 16, k, 1, 1, True)
    with forced_paths(1):
        got = kernels.conv2d(x, wt, b, knob=kid)
        relu = kernels.conv2d(x, wt, b, knob=kid, relu=True)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))
    np.testing.assert_array_equal(relu, np.maximum(got, 0))
