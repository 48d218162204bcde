"""Weight packing of the approximation knobs: the kept filter elements of filter sampling
gathered and rescaled in one pass (NumPy's ``take`` then ``*=`` made two), and a cache of
packed weights for weights that cannot change (read-only arrays).

At batch 1 the packing costs as much as the convolution: a 256 x 256 1x1 layer's sampled
weights took 14 us to gather against 25 us for the whole exact layer, so HAR's sampled
configurations ran barely faster than exact. The runtime hands the kernels read-only
weights, and :func:`packed` builds each (weights, packing) once. Held for every knob of
every layer (``ApproxModel.run`` with each), the packings took 39 MB for the HAR MobileNet
(3.1 MB of weights) and 9.9 MB for the KWS CNN (1.9 MB); at most ``PACKED_CACHE_BYTES``
are kept.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np
from numba import njit

PACKED_CACHE_BYTES = 256 << 20  # packings kept, least recently used dropped first
_packed: OrderedDict = OrderedDict()  # (id(w), key) -> (weakref to w, packed array)
_held = [0]  # bytes of the packings in _packed


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


def immutable(a: np.ndarray) -> bool:
    """Whether no one can write ``a``'s values through NumPy without first making an array
    writeable again: ``a`` and every array it views are read-only."""
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        a = a.base
    return a is None


def packed(w: np.ndarray, key: Hashable, build: Callable[[], np.ndarray]) -> np.ndarray:
    """``build()``, the packing ``key`` of the weights ``w``; built once and kept while ``w``
    lives when ``w`` is :func:`immutable` (and the packing is a copy), else built on every
    call. The result is shared: callers must not write to it."""
    if not immutable(w):
        return build()
    k = (id(w), key)
    hit = _packed.get(k)
    if hit is not None and hit[0]() is w:
        _packed.move_to_end(k)
        return hit[1]
    value = build()
    if np.may_share_memory(value, w):  # a view of w: nothing was packed, and keeping it
        return value                    # would keep w alive
    _forget(k)
    _packed[k] = (weakref.ref(w, lambda _ref, k=k: _forget(k)), value)
    _held[0] += value.nbytes
    while _held[0] > PACKED_CACHE_BYTES and len(_packed) > 1:
        _forget(next(iter(_packed)))
    return value


def _forget(k) -> None:
    entry = _packed.pop(k, None)
    if entry is not None:
        _held[0] -= entry[1].nbytes
