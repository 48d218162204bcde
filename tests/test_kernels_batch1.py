"""Single-sample calls (the runtime at batch 1) on the paths that have their own one-sample
code: perforated small planes (tables of one plane for every channel), the stride-2 column
fill of 1x1 layers, and sampled weights packed in one pass (and once, for read-only
weights); against the reference and, per sample, against the same call on a batch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from test_kernels_paths import (
    FP32_KNOBS,
    SETTINGS,
    _data,
    assert_close,
    forced_paths,
    kernel_setting,
)

from mobiprox_lab import kernels, knobs
from mobiprox_lab.kernels import _conv, _plan, _weights

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


# ---- packed weights kept for read-only weights -------------------------------------------

def _frozen(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def test_packing_is_built_once_for_read_only_weights():
    w = _frozen(np.arange(12, dtype=np.float32).reshape(3, 4))
    builds = []

    def build():
        builds.append(1)
        return w * 2

    first = _weights.packed(w, "k", build)
    assert _weights.packed(w, "k", build) is first and len(builds) == 1
    _weights.packed(w, "other", build)
    assert len(builds) == 2  # another key, another packing
    np.testing.assert_array_equal(first, w * 2)


@pytest.mark.parametrize("make", [
    lambda a: a,  # writable
    lambda a: _frozen(a)[:, :2],  # a read-only view of a read-only array: cached ...
])
def test_packing_cache_rules(make):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    w = make(a)
    builds = []
    _weights.packed(w, "k", lambda: builds.append(1) or w + 1)
    _weights.packed(w, "k", lambda: builds.append(1) or w + 1)
    assert len(builds) == (2 if w.flags.writeable else 1)


def test_packing_is_not_kept_for_views_nor_for_writable_bases():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    view = base[:, :2]
    view.flags.writeable = False  # read-only view, but its base can still change
    assert not _weights.immutable(view)
    w = _frozen(base)
    builds = []
    for _ in range(2):  # a packing that is a view of w is not kept (it would keep w alive)
        _weights.packed(w, "view", lambda: builds.append(1) or w.reshape(4, 3))
    assert len(builds) == 2


def test_packings_beyond_the_byte_cap_are_dropped_oldest_first(monkeypatch):
    monkeypatch.setattr(_weights, "PACKED_CACHE_BYTES", 2 * 64 * 4)  # two packings of 64
    ws = [_frozen(np.full(64, i, np.float32)) for i in range(3)]
    builds = []
    for w in ws + ws[1:]:  # the third packing pushes out the first only
        _weights.packed(w, "cap", lambda w=w: builds.append(1) or w + 1)
    assert len(builds) == 3
    _weights.packed(ws[0], "cap", lambda: builds.append(1) or ws[0] + 1)
    assert len(builds) == 4


def test_packing_does_not_keep_its_weights_alive():
    import gc
    import weakref

    w = _frozen(np.ones((4, 4), np.float32))
    _weights.packed(w, "drop", lambda a=w: a * 3)
    alive = weakref.ref(w)
    del w
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("shape,kid,path", [
    ((2, 16, 8, 8), 231, "_run_pointwise"),  # sampled 1x1 on strided views
    ((2, 16, 2, 2), 233, "_run_batched_pointwise"),  # sampled 1x1, packed batch
    ((1, 16, 6, 6), 262, "_run_reduced"),  # sampled 3x3 via reduced im2col
    ((2, 16, 6, 6), 12, "_run_reduced"),  # fp16
])
def test_read_only_weights_give_the_same_result_and_pack_once(monkeypatch, shape, kid, path):
    from mobiprox_lab.kernels import _conv

    kh = 1 if path != "_run_reduced" else 3
    x, wt, b = _data(7, *shape, 12, shape[1], kh, kh, True)
    want = kernels.conv2d(x, wt, b, padding=kh // 2, knob=kid)
    calls = []  # weight packings: gathers of weight columns, half rounding of the weights
    real_gather, real_half = _conv.gather_columns, _conv.to_half
    monkeypatch.setattr(_conv, "gather_columns", lambda *a: calls.append(1) or real_gather(*a))
    monkeypatch.setattr(_conv, "to_half", lambda a: (
        calls.append(1) if a.size == wt.size else None) or real_half(a))
    frozen = _frozen(wt)
    for _ in range(3):
        got = kernels.conv2d(x, frozen, b, padding=kh // 2, knob=kid)
        np.testing.assert_array_equal(got, want)
    assert len(calls) == 1
    kernels.conv2d(x, wt, b, padding=kh // 2, knob=kid)  # writable: packed on every call
    kernels.conv2d(x, wt, b, padding=kh // 2, knob=kid)
    assert len(calls) == 3
    assert_close(want, reference.conv2d(x, wt, b, padding=kh // 2, knob=kid))


def _direct_calls(enabled: bool):
    return kernel_setting(kernels.get_direct_calls, kernels.set_direct_calls, enabled)


# (c, k, h, w, kh, groups, knobs): one case per direct kernel, at batch 1 and several
DIRECT_CASES = {
    "dense tiles": (16, 32, 8, 8, 1, 1, [11, 231, 232]),
    "row / column tiles": (8, 16, 16, 16, 1, 1, [121, 122, 123, 124]),
    "channel tiles": (24, 32, 2, 2, 1, 1, [11, 121, 123, 231]),
    "GEMMs on strided views": (24, 20, 4, 6, 1, 1, [11, 231, 235]),
    "plane tiles": (16, 16, 4, 4, 1, 1, [121, 122, 123, 124, 11, 231, 232]),
    "depthwise phases": (6, 6, 9, 7, 3, 6, [11]),
    "depthwise NHWC": (5, 5, 4, 3, 3, 5, [11]),
}


@SETTINGS
@given(case=st.sampled_from(sorted(DIRECT_CASES)), n=st.sampled_from([1, 2, 3, 4, 5]),
       bias=st.booleans(), relu=st.booleans(), frozen=st.booleans(),
       stride=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_direct_calls_equal_the_task_machinery_bit_for_bit(case, n, bias, relu, frozen, stride,
                                                           seed, data):
    """Untimed one-thread calls run their kernel directly (``set_direct_calls``) where the
    path has one kernel, and compute what one task of the task machinery computes, bit for
    bit, on both sides of the paths' limits (batch sizes, read-only weights or not)."""
    c, k, h, w, kh, groups, kids = DIRECT_CASES[case]
    kid = data.draw(st.sampled_from(kids))
    stride = stride if groups > 1 else 1
    x, wt, b = _data(seed, n, c, h, w, k, c // groups, kh, kh, bias)
    if frozen:
        wt.flags.writeable = False
    kw = dict(stride=stride, padding=kh // 2, groups=groups, knob=kid, relu=relu)
    calls = []
    real = _conv.run_tasks
    with kernels.using_threads(1), pytest.MonkeyPatch.context() as mp:
        mp.setattr(_conv, "run_tasks", lambda *a: calls.append(1) or real(*a))
        with _direct_calls(False):
            by_tasks = kernels.conv2d(x, wt, b, **kw)
        assert calls
        calls.clear()
        with _direct_calls(True):
            direct = kernels.conv2d(x, wt, b, **kw)
    np.testing.assert_array_equal(direct, by_tasks)
    want = reference.conv2d(x, wt, b, stride=stride, padding=kh // 2, groups=groups, knob=kid)
    assert_close(direct, np.maximum(want, 0) if relu else want)
    # 2x2 maps take channel tiles with read-only weights (any number of samples), else a
    # path of several kernels (reduced im2col, a batch's packed GEMM); 4x4 maps take plane
    # tiles from a tile's samples on (four perforated, two exact or sampled), and tasks when
    # samples are left over (fewer: the paths of one or two samples, not asserted here)
    if case == "channel tiles":
        assert (not calls) == frozen
    elif case == "plane tiles":
        group = 4 if knobs.get(kid).technique == "perforation" else 2
        assert n < group or (not calls) == (n % group == 0)
    else:
        assert not calls


def test_direct_calls_setting_checks_its_argument():
    with pytest.raises(ValueError, match="enabled"):
        kernels.set_direct_calls(1)
