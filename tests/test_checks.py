"""The shared argument checks name the argument and the expectation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mobiprox_lab import checks


def test_integer_accepts_numpy_ints_and_enforces_bounds():
    assert checks.integer("n", np.int64(3), 1, 5) == 3
    with pytest.raises(ValueError, match=r"^n: expected an int in \[1, 5\], got 6"):
        checks.integer("n", 6, 1, 5)
    with pytest.raises(ValueError, match=r"^n: expected an int >= 1, got 0"):
        checks.integer("n", 0, 1)


@pytest.mark.parametrize("bad", [True, 2.5, "3", None, np.bool_(False)])
def test_integer_refuses_other_types_as_both_type_and_value_error(bad):
    with pytest.raises(TypeError, match="^count: expected an int"):
        checks.integer("count", bad, 0)
    with pytest.raises(ValueError, match="^count: expected an int"):
        checks.integer("count", bad, 0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.1, 1.5])
def test_number_refuses_non_finite_and_out_of_range(bad):
    with pytest.raises(ValueError, match=r"^p: expected a finite number in \[0.0, 1.0\]"):
        checks.number("p", bad, 0.0, 1.0)
    assert checks.number("p", np.float32(0.25), 0.0, 1.0) == 0.25
    with pytest.raises(TypeError, match="^p: expected a number"):
        checks.number("p", "x")


def test_float_array_shape_and_finiteness():
    a = checks.float_array("x", [[1, 2], [3, 4]], ndim=2, finite=True)
    assert a.dtype == np.float64 and a.shape == (2, 2)
    with pytest.raises(ValueError, match=r"^x: expected a 1-d array, got shape \(2, 2\)"):
        checks.float_array("x", a, ndim=1)
    with pytest.raises(ValueError, match="^x: expected finite values, got 1 NaN"):
        checks.float_array("x", [1.0, np.nan], finite=True)
    with pytest.raises(ValueError, match="^x: expected a numeric array"):
        checks.float_array("x", ["a", "b"])
    src = np.zeros(3)
    assert checks.float_array("x", src, copy=True) is not src


def test_choice():
    assert checks.choice("mode", "b", ("a", "b")) == "b"
    with pytest.raises(ValueError, match=r"^mode: expected one of \('a', 'b'\), got 'c'"):
        checks.choice("mode", "c", ("a", "b"))
    with pytest.raises(ValueError, match="^mode: expected one of"):
        checks.choice("mode", [1], {"a", "b"})
