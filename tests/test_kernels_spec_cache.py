"""conv2d's memo of validated calls must not let a bad call through after a good one."""

import numpy as np
import pytest

from mobiprox_lab import kernels


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 6, 6), dtype=np.float32)
    w = rng.standard_normal((3, 4, 3, 3), dtype=np.float32)
    return x, w, rng.standard_normal(3, dtype=np.float32)


@pytest.mark.parametrize("bad", [
    {"stride": True}, {"stride": (1, True)}, {"padding": -1}, {"stride": 1.0},
    {"groups": True}, {"knob": 999}, {"knob": "11x"}, {"b": "wrong shape"},
    {"x": "float64"}, {"w": "float64"}, {"b": "float64"}, {"x": "list"},
])
def test_a_bad_call_still_fails_after_an_equal_shaped_good_one(bad):
    x, w, b = _data()
    good = dict(stride=1, padding=1, groups=1, knob=11)
    want = kernels.conv2d(x, w, b, **good)
    kernels.conv2d(x, w, b, **good)  # now remembered
    args = {"x": x, "w": w, "b": b, **good}
    for key, value in bad.items():
        if value == "float64":
            args[key] = args[key].astype(np.float64)
        elif value == "wrong shape":
            args[key] = np.zeros(4, np.float32)
        elif value == "list":
            args[key] = args[key].tolist()
        else:
            args[key] = value
    with pytest.raises(ValueError, match=next(iter(bad))):
        kernels.conv2d(args.pop("x"), args.pop("w"), args.pop("b"), **args)
    np.testing.assert_array_equal(kernels.conv2d(x, w, b, **good), want)


def test_equal_shapes_other_arguments_other_spec():
    x, w, b = _data()
    a = kernels.conv2d(x, w, b, stride=1, padding=1)
    c = kernels.conv2d(x, w, b, stride=(2, 1), padding=(1, 0))
    assert a.shape == (2, 3, 6, 6) and c.shape == (2, 3, 3, 4)
    with pytest.raises(ValueError, match="knob"):  # 6 output rows: 6 perforated, none kept
        kernels.conv2d(x[:, :, :3], w, b, padding=(0, 1), knob=138)
    kernels.conv2d(x, w, b, padding=(1, 1), knob=138)
    with pytest.raises(ValueError, match="knob"):
        kernels.conv2d(x[:, :, :3], w, b, padding=(0, 1), knob=138)
