"""PyTorch "simulation" of every knob: exact convolution, then mask / interpolate.

This is the independent oracle for :mod:`mobiprox_lab.kernels` and the fast path
for accuracy evaluation. It follows the identities of the reference page:

* perforation = exact convolution (no bias) with the skipped output rows
  (columns) overwritten by the interpolation rule, plus bias;
* sampling = exact convolution with the skipped weights zeroed and the kept ones
  scaled by ``s / (s - 1)``;
* fp16 = operands rounded to half, fp32 accumulation, result rounded to half;
  the bias is rounded to half, added, and the sum rounded to half again.

It shares no code with :mod:`mobiprox_lab.kernels`. Inputs may be NumPy arrays
(returned as NumPy float32) or torch tensors (returned as torch float32).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import knobs


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    try:
        a, b = value
        return int(a), int(b)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}") from None


def _tensor(a, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        t = a
    elif isinstance(a, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(a))
    else:
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(a).__name__}")
    if t.dtype != torch.float32:
        raise ValueError(f"{name}: expected dtype float32, got {t.dtype}")
    return t


def _half(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float16).to(torch.float32)


def _skipped(n: int, stride: int, offset: int) -> torch.Tensor:
    idx = torch.arange(n)
    return (idx >= offset) & ((idx - offset) % stride == 0)


def _interpolate(y: torch.Tensor, knob: knobs.Knob) -> torch.Tensor:
    """Overwrite skipped rows (dim 2) or columns (dim 3) of ``y`` by the fill rule."""
    dim = 2 if knob.axis == "row" else 3
    n = y.shape[dim]
    skip = _skipped(n, knob.stride, knob.offset)
    out = y.clone()
    for r in torch.nonzero(skip).flatten().tolist():
        if r == 0:
            fill = y.select(dim, 1)
        elif r == n - 1:
            fill = y.select(dim, n - 2)
        else:
            fill = 0.5 * (y.select(dim, r - 1) + y.select(dim, r + 1))
        out.select(dim, r).copy_(fill)
    return out


def sampling_mask(weight_shape: tuple[int, ...], stride: int, offset: int) -> torch.Tensor:
    """Boolean (C, KH, KW) mask of the filter elements a sampling knob *keeps*."""
    _, c, kh, kw = weight_shape
    area = kh * kw
    if area % stride:
        flat = torch.arange(c * area)
        skip = (flat >= offset) & ((flat - offset) % stride == 0)
    else:
        k = torch.arange(area).expand(c, area)
        o_c = ((offset + torch.arange(c)) % stride).unsqueeze(1)
        skip = (k >= o_c) & ((k - o_c) % stride == 0)
    return (~skip).reshape(c, kh, kw)


def conv2d(x, w, b=None, *, stride=1, padding=0, groups=1, knob=11):
    """Simulated approximate convolution; same contract as :func:`mobiprox_lab.kernels.conv2d`.

    x: float32 (N, C, H, W); w: float32 (K, C // groups, KH, KW); b: (K,) or None.
    Returns float32 (N, K, Ho, Wo), as NumPy if ``x`` was NumPy else as torch.
    """
    as_numpy = not isinstance(x, torch.Tensor)
    xt, wt = _tensor(x, "x"), _tensor(w, "w")
    bt = None if b is None else _tensor(b, "b")
    k = knobs.get(knob)
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    if xt.dim() != 4 or wt.dim() != 4:
        raise ValueError(f"x, w: expected 4-D tensors, got x.ndim={xt.dim()}, w.ndim={wt.dim()}")
    if groups != 1 and k.technique != "exact":
        raise ValueError(f"knob: grouped/depthwise convolution accepts only 11 and 12, got {knob}")
    if k.technique == "sampling":
        keep = sampling_mask(tuple(wt.shape), k.stride, k.offset)
        wt = wt * keep.to(wt.dtype) * (k.stride / (k.stride - 1))
    if k.is_fp16:
        xt, wt = _half(xt), _half(wt)
    with torch.no_grad():
        y = F.conv2d(xt, wt, None, stride=stride, padding=padding, groups=groups)
        if k.technique == "perforation":
            if not knobs.applicable(k.id, "conv", tuple(y.shape[2:])):
                raise ValueError(
                    f"knob: {knob} is not applicable to an output of {tuple(y.shape[2:])}")
            if k.is_fp16:
                y = _half(y)
            y = _interpolate(y, k)
        if k.is_fp16:
            y = _half(y)
            if bt is not None:
                y = _half(y + _half(bt).view(1, -1, 1, 1))
        elif bt is not None:
            y = y + bt.view(1, -1, 1, 1)
    return y.numpy() if as_numpy else y


def linear(x, w, b=None, *, knob=11):
    """Simulated linear layer: x float32 (N, F), w (O, F), b (O,) or None -> (N, O)."""
    as_numpy = not isinstance(x, torch.Tensor)
    xt, wt = _tensor(x, "x"), _tensor(w, "w")
    bt = None if b is None else _tensor(b, "b")
    k = knobs.get(knob)
    if k.technique != "exact":
        raise ValueError(f"knob: linear layers accept only 11 and 12, got {knob}")
    with torch.no_grad():
        if k.is_fp16:
            y = _half(_half(xt) @ _half(wt).T)
            if bt is not None:
                y = _half(y + _half(bt))
        else:
            y = xt @ wt.T
            if bt is not None:
                y = y + bt
    return y.numpy() if as_numpy else y
