"""Argument checks shared by every public entry point.

Each helper returns the value in its checked form or raises an error whose message starts
with the argument's name and says what was expected, e.g.
``ValueError("n_configs: expected an int >= 1, got 0")``. A value of the wrong type raises
:class:`ArgumentTypeError`, which is both a ``TypeError`` and a ``ValueError`` so callers
may catch either.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable

import numpy as np

__all__ = ["ArgumentTypeError", "choice", "float_array", "integer", "number"]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (catchable as TypeError or ValueError)."""


def _range_text(lo, hi) -> str:
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f" >= {lo}"
    if lo is None:
        return f" <= {hi}"
    return f" in [{lo}, {hi}]"


def integer(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as a Python int in ``[lo, hi]`` (either bound may be None); bools refused."""
    if isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name}: expected an int{_range_text(lo, hi)}, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ArgumentTypeError(f"{name}: expected an int{_range_text(lo, hi)}, got "
                                f"{type(value).__name__} {value!r}") from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name}: expected an int{_range_text(lo, hi)}, got {v}")
    return int(v)


def number(name: str, value, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``value`` as a finite float in ``[lo, hi]``; bools and non-numbers refused."""
    if isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name}: expected a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"{name}: expected a number, got {value!r}") from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"{name}: expected a finite number in [{lo}, {hi}], got {value!r}")
    return v


def float_array(name: str, value, *, ndim: int | None = None, finite: bool = False,
                copy: bool = False) -> np.ndarray:
    """``value`` as a float64 array, optionally of ``ndim`` dimensions and all finite."""
    try:
        a = np.array(value, dtype=np.float64, copy=True if copy else None)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a numeric array, got {type(value).__name__} "
                         f"({exc})") from None
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {a.shape}")
    if finite and not np.isfinite(a).all():
        raise ValueError(f"{name}: expected finite values, got {int((~np.isfinite(a)).sum())} "
                         f"NaN or infinite entries")
    return a


def choice(name: str, value, options: Iterable):
    """``value`` if it is one of ``options``."""
    options = tuple(options)
    try:
        ok = value in options
    except TypeError:  # an unhashable value against a set-like container
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected one of {options}, got {value!r}")
    return value
