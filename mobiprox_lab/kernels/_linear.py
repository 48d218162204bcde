"""Fully connected layer (exact fp32 or fp16 emulation)."""

from __future__ import annotations

import numpy as np

from ._half import to_half
from ._validate import linear_spec
from ._weights import packed


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *,
           knob: int = 11) -> np.ndarray:
    """``x @ w.T + b``: x float32 (N, F), w float32 (O, F), b (O,) or None -> float32 (N, O).

    Only knobs 11 (fp32) and 12 (fp16: operands rounded to half, fp32
    accumulation, result rounded to half, then the half bias add) apply.
    """
    spec = linear_spec(x, w, b, knob)
    if spec.is_fp16:
        out = to_half(np.dot(to_half(x), packed(w, "half", lambda: to_half(w)).T))
        if b is not None:
            out = to_half(out + to_half(b))
        return out
    out = np.dot(x, w.T)
    if b is not None:
        out += b
    return out
