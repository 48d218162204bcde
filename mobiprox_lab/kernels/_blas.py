"""Single-precision GEMM on strided sub-matrices, callable from nogil Numba code.

Numba's ``np.dot`` only takes whole contiguous arrays; the convolution paths
here multiply *views* (every s-th input channel, the kept rows of a map, a
block of an output plane) in place. :func:`sgemm` calls the BLAS that Numba's
``np.dot`` uses (SciPy's, through Numba's helper library, so it is cacheable
and needs no compiler) with explicit leading dimensions. Never call it inside
``prange``: OpenMP regions nested in OpenBLAS can hang.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.np.linalg import _BLAS

_XXGEMM = _BLAS().numba_xxgemm(types.float32)
_KIND, _NOTRANS = ord("s"), ord("n")


@njit(cache=True, nogil=True)
def sgemm(a, lda, b, ldb, c, ldc, m, n, k, beta):
    """Row-major ``C = A @ B + beta * C`` with ``A`` (m, k), ``B`` (k, n), ``C`` (m, n).

    ``a``, ``b``, ``c``: flat float32 arrays whose first element is the matrix's
    top-left one (slice a flat view to offset it); ``lda`` / ``ldb`` / ``ldc``:
    elements between consecutive rows. ``beta`` 0 overwrites ``C``.
    """
    if m <= 0 or n <= 0:
        return
    if k <= 0:  # BLAS would scale C by beta; keep the contract "C = beta * C"
        for i in range(m):
            for j in range(n):
                c[i * ldc + j] = beta * c[i * ldc + j] if beta != 0.0 else np.float32(0.0)
        return
    sc = np.empty(2, np.float32)
    sc[0] = 1.0
    sc[1] = beta
    # column-major BLAS: C^T (n, m) = B^T (n, k) @ A^T (k, m)
    _XXGEMM(_KIND, _NOTRANS, _NOTRANS, n, m, k, sc[0:].ctypes, b.ctypes, ldb, a.ctypes, lda,
            sc[1:].ctypes, c.ctypes, ldc)
