"""Single-sample calls (the runtime at batch 1) on the paths that have their own one-sample
code: perforated small planes (tables of one plane for every channel), the stride-2 column
fill of 1x1 layers, and sampled weights packed in one pass; against the reference and, per
sample, against the same call on a batch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from test_kernels_paths import FP32_KNOBS, SETTINGS, _data, assert_close, forced_paths

from mobiprox_lab import kernels, knobs
from mobiprox_lab.kernels import _plan, _weights

reference = pytest.importorskip("mobiprox_lab.reference")


@SETTINGS
@given(c=st.integers(1, 40), k=st.integers(1, 40), h=st.integers(1, 4), w=st.integers(1, 4),
       kh=st.sampled_from([1, 3]), kid=st.sampled_from(FP32_KNOBS), bias=st.booleans(),
       relu=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_small_planes_one_sample_match_reference(c, k, h, w, kh, kid, bias, relu, seed):
    pad = kh // 2
    assume(knobs.applicable(kid, "conv", (h, w)))
    x, wt, b = _data(seed, 3, c, h, w, k, c, kh, kh, bias)
    got = kernels.conv2d(x[1:2], wt, b, padding=pad, knob=kid, relu=relu)
    want = reference.conv2d(x[1:2], wt, b, padding=pad, knob=kid)
    assert_close(got, np.maximum(want, 0) if relu else want)
    assert_close(got, kernels.conv2d(x, wt, b, padding=pad, knob=kid, relu=relu)[1:2])


@SETTINGS
@given(c=st.integers(1, 12), k=st.integers(1, 24), h=st.integers(1, 9),
       w=st.sampled_from([2, 4, 6, 8, 16]), kid=st.sampled_from([121, 122]),
       bias=st.booleans(), threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_pointwise_columns_s2_one_sample_match_reference(c, k, h, w, kid, bias, threads, seed):
    x, wt, b = _data(seed, 1, c, h, w, k, c, 1, 1, bias)
    with forced_paths(threads, POINTWISE_MIN_PLANE=1):
        got = kernels.conv2d(x, wt, b, knob=kid)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))


@pytest.mark.parametrize("c,stride,offset", [(1, 2, 0), (1, 2, 1), (7, 3, 2), (8, 4, 0)])
def test_sampled_weights_packed_as_numpy_does(c, stride, offset):
    rng = np.random.default_rng(c)
    w2 = rng.standard_normal((5, c), dtype=np.float32)
    scale = np.float32(stride / (stride - 1))
    cols = _plan.channel_classes(c, stride, offset)
    want = np.concatenate([w2[:, r::stride] for r in range(stride) if r != offset and r < c]
                          or [w2[:, :0]], axis=1) * scale
    got = _weights.gather_columns(w2, cols, scale)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    kept = _plan.sampling_kept(c, 1, 1, stride, offset)
    np.testing.assert_array_equal(_weights.gather_columns(w2, kept, scale),
                                  np.take(w2, kept, axis=1) * scale)
