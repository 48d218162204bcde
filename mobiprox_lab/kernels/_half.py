"""IEEE half-precision rounding of float32 values, inside Numba kernels.

Numba has no CPU float16 type, so :func:`f16` rounds a float32 scalar to the
nearest half-representable value (round half to even, subnormals, overflow to
inf, NaN kept) and returns it as float32: bit-for-bit what
``np.float32(np.float16(v))`` gives.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._memory import aligned_empty

_HALF_OVERFLOW = 65520.0  # smallest magnitude that rounds to inf (65504 + half an ulp)
_HALF_MIN_NORMAL = 2.0**-14
_HALF_SUBNORMAL_SCALE = 2.0**24  # half subnormals are multiples of 2**-24


@njit(cache=True, inline="always")
def f16(v):
    """float32 -> nearest half-precision value, as float32."""
    a = abs(np.float64(v))
    if not a < _HALF_OVERFLOW:  # NaN, inf or overflow
        if a != a:
            return v
        return np.float32(math.copysign(math.inf, v))
    if a < _HALF_MIN_NORMAL:
        r = np.rint(a * _HALF_SUBNORMAL_SCALE) / _HALF_SUBNORMAL_SCALE
    else:
        mant, exp = math.frexp(a)  # a = mant * 2**exp, 0.5 <= mant < 1: keep 11 bits
        r = math.ldexp(np.rint(math.ldexp(mant, 11)), exp - 11)
    return np.float32(math.copysign(r, v))


@njit(cache=True, nogil=True)
def round_half_inplace(a):
    """Round every element of a float32 1-D array to half precision, in place."""
    for i in range(a.shape[0]):
        a[i] = f16(a[i])


def to_half(a: np.ndarray) -> np.ndarray:
    """A float32 copy of ``a`` rounded to half precision (NumPy's own cast), C-contiguous on a
    64-byte boundary like every kernel output (``_memory.aligned_empty``): the next layer's
    register tiles read it faster so (see ``kernels.aligned_empty``)."""
    out = aligned_empty(np.shape(a))
    np.copyto(out, np.asarray(a).astype(np.float16))
    return out
