"""Weight packing of the filter-sampling knobs: the kept filter elements gathered and
rescaled in one pass (NumPy's ``take`` then ``*=`` made two, and at batch 1 the packing
of a 256 x 256 1x1 layer cost about as much as its whole convolution)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def gather_columns(w2, cols, scale):
    """float32 ``(K, len(cols))`` = ``w2[:, cols] * scale``: ``w2`` (K, R) float32, ``cols``
    int64 indices into R, ``scale`` float32 (the product rounds as NumPy's does)."""
    k_, n = w2.shape[0], cols.shape[0]
    out = np.empty((k_, n), np.float32)
    for k in range(k_):
        for j in range(n):
            out[k, j] = w2[k, cols[j]] * scale
    return out
