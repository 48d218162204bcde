"""``kernels.PreparedConv2d``: the same values as ``conv2d`` bit for bit, on every path
(those it resolves once and those it hands to ``conv2d``), each call resolved once per
input shape, knob, thread count and routing setting, and ``conv2d``'s errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_kernels_batch1 import DIRECT_CASES
from test_kernels_paths import SETTINGS, _data

from mobiprox_lab import kernels
from mobiprox_lab.kernels import _prepared

# beyond the direct cases: fp16, a 3x3 conv (row blocks / reduced im2col), perforated 4x4
# maps of several samples (plane tiles), a grouped conv of 2 channels per group
OTHER_CASES = {
    "fp16 1x1": (16, 32, 8, 8, 1, 1, [12]),
    "3x3": (3, 8, 12, 10, 3, 1, [11, 121, 123, 231, 12]),
    "perforated 4x4": (16, 16, 4, 4, 1, 1, [121, 123]),
    "grouped": (8, 8, 6, 6, 3, 4, [11, 12]),
}
CASES = {**DIRECT_CASES, **OTHER_CASES}


def _frozen(*arrays):
    for a in arrays:
        if a is not None:
            a.flags.writeable = False


@SETTINGS
@given(case=st.sampled_from(sorted(CASES)), n=st.sampled_from([1, 2, 5]),
       bias=st.booleans(), relu=st.booleans(), frozen=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_prepared_layer_equals_conv2d_bit_for_bit(case, n, bias, relu, frozen, threads, seed,
                                                  data):
    c, k, h, w, kh, groups, kids = CASES[case]
    x, wt, b = _data(seed, n, c, h, w, k, c // groups, kh, kh, bias)
    if frozen:
        _frozen(wt, b)
    layer = kernels.PreparedConv2d(wt, b, padding=kh // 2, groups=groups, relu=relu)
    with kernels.using_threads(threads):
        for kid in data.draw(st.lists(st.sampled_from(kids), min_size=1, max_size=4)):
            want = kernels.conv2d(x, wt, b, padding=kh // 2, groups=groups, knob=kid,
                                  relu=relu)
            for _ in range(2):  # resolving, then resolved
                got = layer(x, kid)
                assert got.dtype == np.float32 and got.ctypes.data % 64 == 0
                np.testing.assert_array_equal(got, want)
    got = layer(x[:, :, ::-1][:, :, ::-1])  # a non-contiguous view of the same values
    np.testing.assert_array_equal(got, layer(x))


def test_each_call_is_resolved_once_per_shape_knob_threads_and_setting(monkeypatch):
    x, wt, b = _data(1, 1, 16, 8, 8, 32, 16, 1, 1, True)
    _frozen(wt, b)
    layer = kernels.PreparedConv2d(wt, b, relu=True)
    resolved = []
    real = _prepared.direct_call
    monkeypatch.setattr(_prepared, "direct_call",
                        lambda *a: resolved.append(a[0].shape) or real(*a))
    tiles = kernels.get_register_tiles()
    with kernels.using_threads(1):
        for _ in range(3):
            layer(x, 11)
            layer(x, 123)
            layer(np.concatenate([x, x]), 11)
        assert len(resolved) == 3
        kernels.set_register_tiles(not tiles)
        try:
            np.testing.assert_array_equal(
                layer(x, 11), kernels.conv2d(x, wt, b, knob=11, relu=True))
        finally:
            kernels.set_register_tiles(tiles)
        assert len(resolved) == 4
    with kernels.using_threads(2):
        layer(x, 11)
    assert len(resolved) == 5


def test_writable_weights_are_read_on_every_call():
    """Unfrozen weights go through ``conv2d`` each call, so a write to them is seen."""
    x, wt, b = _data(2, 1, 16, 8, 8, 32, 16, 1, 1, True)
    layer = kernels.PreparedConv2d(wt, b)
    before = layer(x, 231)
    wt *= 2
    np.testing.assert_array_equal(layer(x, 231), kernels.conv2d(x, wt, b, knob=231))
    assert not np.array_equal(layer(x, 231), before)


def test_resolved_calls_are_bounded(monkeypatch):
    monkeypatch.setattr(_prepared, "MAX_RESOLVED_CALLS", 3)
    x, wt, b = _data(3, 6, 16, 8, 8, 32, 16, 1, 1, False)
    _frozen(wt)
    layer = kernels.PreparedConv2d(wt)
    with kernels.using_threads(1):
        for n in range(1, 7):
            np.testing.assert_array_equal(layer(x[:n], 11), kernels.conv2d(x[:n], wt, knob=11))


@pytest.mark.parametrize("call,match", [
    (lambda layer, x: layer(x.astype(np.float64)), "x"),
    (lambda layer, x: layer(x[:, :3]), "C"),
    (lambda layer, x: layer(x, 99), "knob"),
    (lambda layer, x: layer(x, [11]), "knob"),
    (lambda layer, x: layer(x.tolist()), "x"),
])
def test_bad_input_gets_conv2ds_errors(call, match):
    x, wt, b = _data(4, 1, 16, 8, 8, 32, 16, 1, 1, True)
    _frozen(wt, b)
    layer = kernels.PreparedConv2d(wt, b)
    with kernels.using_threads(1), pytest.raises(ValueError, match=match):
        call(layer, x)


def test_relu_must_be_a_bool():
    x, wt, b = _data(5, 1, 4, 4, 4, 8, 4, 1, 1, False)
    with pytest.raises(ValueError, match="relu"):
        kernels.PreparedConv2d(wt, relu=1)


def test_a_pickled_layer_keeps_its_read_only_weights_and_values():
    """Worker processes get the runtime's steps by (cloud)pickle: the copy starts with no
    resolved calls and read-only weights again (NumPy's pickles drop the flag)."""
    import pickle

    x, wt, b = _data(6, 1, 16, 8, 8, 32, 16, 1, 1, True)
    _frozen(wt, b)
    layer = kernels.PreparedConv2d(wt, b, relu=True)
    with kernels.using_threads(1):
        want = layer(x, 123)
        copy = pickle.loads(pickle.dumps(layer))
        assert not copy.w.flags.writeable and not copy.b.flags.writeable
        np.testing.assert_array_equal(copy(x, 123), want)
