"""Single-precision GEMM on strided sub-matrices, callable from nogil Numba code.

Numba's ``np.dot`` only takes whole contiguous arrays; the convolution paths
here multiply *views* (every s-th input channel, the kept rows of a map, a
block of an output plane) in place. :func:`sgemm` calls a BLAS ``sgemm`` with
explicit leading dimensions. Never call it inside ``prange``: OpenMP regions
nested in OpenBLAS can hang.

Which BLAS (:func:`blas_library`): NumPy's own OpenBLAS where NumPy's wheel
bundles one (``scipy-openblas64``: its ``cblas_sgemm``, 64-bit integers), else
the BLAS of Numba's ``np.dot`` (SciPy's, through Numba's helper library). Both
need no compiler. On this project's pins NumPy's is the newer OpenBLAS, and on
the convolutions' GEMM shapes, one thread, it measured 1.0-1.3x faster (KWS's
im2col GEMMs 1.2-1.3x); ``benchmarks/blas.py`` prints the two side by side.
The choice is fixed per process, at import. Numba caches the callers' machine code
with a reference to the symbol below, so the NumPy BLAS's address is registered
under that name before anything that calls :func:`sgemm` is compiled or loaded.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types
from numba.np.linalg import _BLAS

__all__ = ["blas_library", "matmul_into", "numpy_openblas_path", "sgemm", "sgemm_numba"]

_CBLAS_SYMBOL = "scipy_cblas_sgemm64_"  # scipy-openblas64's name for cblas_sgemm (ILP64)
_LINKED_NAME = "mobiprox_numpy_cblas_sgemm"
_ROW_MAJOR, _NO_TRANS = 101, 111  # CBLAS enum values

_XXGEMM = _BLAS().numba_xxgemm(types.float32)
_KIND, _NOTRANS = ord("s"), ord("n")


def numpy_openblas_path() -> Path | None:
    """NumPy's bundled OpenBLAS (Linux / macOS wheels), if it exports the 64-bit-integer
    ``cblas_sgemm``; None otherwise (e.g. a NumPy built against MKL or a system BLAS)."""
    root = Path(np.__file__).resolve().parent
    candidates = [*sorted((root.parent / "numpy.libs").glob("libscipy_openblas64_*.so*")),
                  *sorted((root / ".dylibs").glob("libscipy_openblas64_*.dylib"))]
    for path in candidates:
        try:
            if hasattr(ctypes.CDLL(str(path)), _CBLAS_SYMBOL):
                return path
        except OSError:
            continue
    return None


_NUMPY_BLAS = numpy_openblas_path()
if _NUMPY_BLAS is not None:
    _address = ctypes.cast(getattr(ctypes.CDLL(str(_NUMPY_BLAS)), _CBLAS_SYMBOL),
                           ctypes.c_void_p).value
    llvm.add_symbol(_LINKED_NAME, _address)

_i32, _i64 = types.int32, types.int64
_cblas_sgemm = types.ExternalFunction(_LINKED_NAME, types.void(
    _i32, _i32, _i32, _i64, _i64, _i64, types.float32, types.voidptr, _i64, types.voidptr,
    _i64, types.float32, types.voidptr, _i64))


def blas_library() -> str:
    """Which BLAS :func:`sgemm` calls: the file name of NumPy's OpenBLAS, or
    ``"numba np.dot BLAS (SciPy)"``."""
    return _NUMPY_BLAS.name if _NUMPY_BLAS is not None else "numba np.dot BLAS (SciPy)"


@njit(cache=True, nogil=True)
def _without_blas(c, ldc, m, n, k, beta):
    """True if ``C = A @ B + beta * C`` needs no BLAS call, done here: nothing to write
    (``m`` or ``n`` <= 0), or ``k`` <= 0, where ``C = beta * C`` as BLAS defines it (zeros
    when ``beta`` is 0)."""
    if m <= 0 or n <= 0:
        return True
    if k > 0:
        return False
    for i in range(m):
        for j in range(n):
            c[i * ldc + j] = beta * c[i * ldc + j] if beta != 0.0 else np.float32(0.0)
    return True


@njit(cache=True, nogil=True)
def sgemm_numba(a, lda, b, ldb, c, ldc, m, n, k, beta):
    """:func:`sgemm` through the BLAS of Numba's ``np.dot`` (SciPy's)."""
    if _without_blas(c, ldc, m, n, k, beta):
        return
    sc = np.empty(2, np.float32)
    sc[0] = 1.0
    sc[1] = beta
    # column-major BLAS: C^T (n, m) = B^T (n, k) @ A^T (k, m)
    _XXGEMM(_KIND, _NOTRANS, _NOTRANS, n, m, k, sc[0:].ctypes, b.ctypes, ldb, a.ctypes, lda,
            sc[1:].ctypes, c.ctypes, ldc)


@njit(cache=True, nogil=True)
def _sgemm_numpy(a, lda, b, ldb, c, ldc, m, n, k, beta):
    """:func:`sgemm` through NumPy's OpenBLAS (row-major CBLAS)."""
    if _without_blas(c, ldc, m, n, k, beta):
        return
    _cblas_sgemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, np.float32(1.0), a.ctypes, lda,
                 b.ctypes, ldb, np.float32(beta), c.ctypes, ldc)


# Row-major ``C = A @ B + beta * C`` with ``A`` (m, k), ``B`` (k, n), ``C`` (m, n): ``a``,
# ``b``, ``c`` are flat float32 arrays whose first element is the matrix's top-left one
# (slice a flat view to offset it); ``lda`` / ``ldb`` / ``ldc`` are the elements between
# consecutive rows; ``beta`` 0 overwrites ``C``.
sgemm = _sgemm_numpy if _NUMPY_BLAS is not None else sgemm_numba


@njit(cache=True, nogil=True)
def matmul_into(a, b, out):
    """``out = a @ b`` for C-contiguous float32 matrices ``a`` (m, k), ``b`` (k, n), ``out``
    (m, n), through :func:`sgemm` (Numba's ``np.dot`` would call SciPy's BLAS)."""
    m, k = a.shape
    n = b.shape[1]
    sgemm(a.reshape(-1), k, b.reshape(-1), n, out.reshape(-1), n, m, n, k, np.float32(0.0))
