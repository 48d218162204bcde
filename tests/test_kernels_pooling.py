"""kernels.pool2d against torch's max_pool2d / avg_pool2d (floor mode), NaN and padding;
kernels.global_pool2d against adaptive_max_pool2d / adaptive_avg_pool2d."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mobiprox_lab import kernels


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ho=st.integers(1, 7), wo=st.integers(1, 7),
       data=st.data(), mode=st.sampled_from(["max", "avg"]), include_pad=st.booleans(),
       nan=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_pool2d_matches_torch(n, c, kh, kw, sh, sw, ho, wo, data, mode, include_pad, nan, seed):
    ph, pw = data.draw(st.integers(0, kh // 2)), data.draw(st.integers(0, kw // 2))
    h = max(kh - 2 * ph, (ho - 1) * sh + kh - 2 * ph + data.draw(st.integers(0, sh - 1)), 1)
    w = max(kw - 2 * pw, (wo - 1) * sw + kw - 2 * pw + data.draw(st.integers(0, sw - 1)), 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    if nan:
        x[rng.integers(n), rng.integers(c), rng.integers(h), rng.integers(w)] = np.nan
    got = kernels.pool2d(x, mode, (kh, kw), (sh, sw), (ph, pw), count_include_pad=include_pad)
    xt = torch.from_numpy(x)
    want = (F.max_pool2d(xt, (kh, kw), (sh, sw), (ph, pw)) if mode == "max" else
            F.avg_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), count_include_pad=include_pad))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6, equal_nan=True)


def test_pool2d_parallel_batch_matches_torch():
    x = np.random.default_rng(0).standard_normal((9, 8, 82, 33), dtype=np.float32)
    want = F.max_pool2d(torch.from_numpy(x), 2).numpy()
    np.testing.assert_array_equal(kernels.pool2d(x, "max", (2, 2), (2, 2)), want)


@pytest.mark.parametrize("args,match", [
    (("min", (2, 2), (2, 2)), "mode"),
    (("max", (2, 2), (0, 2)), "stride"),
    (("max", (2, 2), (1, 1), (2, 0)), "padding"),
    (("max", (9, 9), (1, 1)), "smaller"),
])
def test_pool2d_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        kernels.pool2d(np.zeros((1, 1, 4, 4), np.float32), *args)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 3), c=st.integers(1, 5), h=st.integers(1, 9), w=st.integers(1, 9),
       mode=st.sampled_from(["max", "avg"]), nan=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_global_pool2d_matches_torch(n, c, h, w, mode, nan, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32) * 10
    if nan and n:
        x[rng.integers(n), rng.integers(c), rng.integers(h), rng.integers(w)] = np.nan
    got = kernels.global_pool2d(x, mode)
    xt = torch.from_numpy(x)
    want = F.adaptive_max_pool2d(xt, 1) if mode == "max" else F.adaptive_avg_pool2d(xt, 1)
    assert got.shape == (n, c, 1, 1) and got.dtype == np.float32
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6, equal_nan=True)


def test_global_pool2d_parallel_batch_matches_torch():
    x = np.random.default_rng(1).standard_normal((64, 512, 8, 8), dtype=np.float32)
    x[5, 7, 3, 2] = np.nan  # one NaN plane among many tasks
    want = F.adaptive_avg_pool2d(torch.from_numpy(x), 1).numpy()
    np.testing.assert_allclose(kernels.global_pool2d(x, "avg"), want, rtol=1e-6, atol=1e-7,
                               equal_nan=True)
    want = F.adaptive_max_pool2d(torch.from_numpy(x), 1).numpy()
    np.testing.assert_array_equal(kernels.global_pool2d(x, "max"), want)


@pytest.mark.parametrize("x,mode,match", [
    (np.zeros((1, 1, 2, 2), np.float32), "sum", "mode"),
    (np.zeros((1, 1, 2, 2), np.float64), "avg", "x: expected a float32"),
    (np.zeros((1, 2, 2), np.float32), "avg", "x: expected a float32"),
    (np.zeros((1, 1, 0, 2), np.float32), "avg", "non-empty"),
])
def test_global_pool2d_rejects_bad_arguments(x, mode, match):
    with pytest.raises(ValueError, match=match):
        kernels.global_pool2d(x, mode)
