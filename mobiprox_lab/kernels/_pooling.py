"""Max / average pooling of NCHW float32 maps in one pass (Numba), tasks over samples; global
pooling (one value per plane) by a plain loop over each contiguous plane."""

from __future__ import annotations

from math import ceil

import numpy as np
from numba import njit, uint64

from . import _threads
from ._validate import conv_output_hw


@njit(cache=True, nogil=True)
def _pool_planes(x, out, n0, n1, kh, kw, sh, sw, ph, pw, is_max, include_pad):
    """``out[n0:n1]`` = pooling of ``x[n0:n1]``; max ignores padding (as if -inf) and keeps
    NaN, average divides by the window area (``include_pad``) or by the pixels inside the
    image. Tap by tap over a whole output row (branch-free, vectorised), the row in L1."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    ho_n, wo_n = out.shape[2], out.shape[3]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    area = np.float32(1.0 / (kh * kw))
    usw = uint64(sw)
    cnt = np.empty(wo_n, np.float32)
    for t in range(n0 * c_, n1 * c_):
        src = t * h_ * w_
        dst = t * ho_n * wo_n
        for ho in range(ho_n):
            d = uint64(dst + ho * wo_n)
            fill = -np.inf if is_max else 0.0
            for wo in range(uint64(wo_n)):
                of[d + wo] = fill
                cnt[wo] = 0.0
            for i in range(max(ho * sh - ph, 0), min(ho * sh - ph + kh, h_)):
                for j in range(kw):
                    # output columns whose input column wo*sw - pw + j is inside the image
                    wa = max(0, (pw - j + sw - 1) // sw)
                    wb = min(wo_n, (w_ - 1 + pw - j) // sw + 1)
                    if wb <= wa:
                        continue
                    s0 = uint64(src + i * w_ + wa * sw - pw + j)
                    dd = d + uint64(wa)
                    if is_max:
                        for q in range(uint64(wb - wa)):
                            v = xf[s0 + q * usw]
                            o = of[dd + q]
                            of[dd + q] = v if (v > o or v != v) else o
                    else:
                        for q in range(uint64(wb - wa)):
                            of[dd + q] += xf[s0 + q * usw]
                        if not include_pad:
                            for q in range(wa, wb):
                                cnt[q] += 1.0
            if not is_max:
                if include_pad:
                    for wo in range(uint64(wo_n)):
                        of[d + wo] *= area
                else:
                    for wo in range(wo_n):
                        of[d + uint64(wo)] /= cnt[wo]


@njit(cache=True, nogil=True)
def _global_planes(xf, out, t0, t1, plane, is_max):
    """``out[t]`` = max / mean of ``xf[t*plane : (t+1)*plane]`` for planes ``t0 .. t1-1``;
    the mean is summed in float64 (as torch's CPU kernel accumulates), max keeps NaN."""
    for t in range(t0, t1):
        s0 = uint64(t * plane)
        if is_max:
            m = xf[s0]
            for j in range(uint64(1), uint64(plane)):
                v = xf[s0 + j]
                if v != v:  # NaN wins, as in torch
                    m = v
                    break
                if v > m:
                    m = v
            out[t] = m
        else:
            acc = 0.0
            for j in range(uint64(plane)):
                acc += np.float64(xf[s0 + j])
            out[t] = np.float32(acc / plane)


def _check_input(x, mode) -> None:
    if mode not in ("max", "avg"):
        raise ValueError(f"mode: expected 'max' or 'avg', got {mode!r}")
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4:
        raise ValueError(f"x: expected a float32 array (N, C, H, W), got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")


def global_pool2d(x: np.ndarray, mode: str) -> np.ndarray:
    """Max (``mode="max"``) or average (``"avg"``) of each whole (H, W) plane, like torch's
    ``adaptive_*_pool2d(x, 1)``: x float32 (N, C, H, W) -> float32 (N, C, 1, 1).

    NumPy's ``mean(axis=(2, 3))`` pays a per-plane overhead: HAR's last map (64, 512, 2, 2)
    took 0.54 ms with it, 0.05-0.09 ms with this loop, about as long as torch's 0.08 ms.
    """
    _check_input(x, mode)
    n, c, h, w = x.shape
    if h * w == 0:
        raise ValueError(f"x: expected non-empty planes, got {h}x{w}")
    xf = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(n * c, np.float32)
    planes = n * c
    if planes == 0:
        return out.reshape(n, c, 1, 1)
    workers = _threads.get_num_threads() if x.size >= 1 << 20 else 1
    per = ceil(planes / (4 * workers))

    def task(i: int, scratch: dict) -> None:
        _global_planes(xf, out, i * per, min(planes, (i + 1) * per), h * w, mode == "max")

    _threads.run(task, ceil(planes / per), workers, limit_blas=False)
    return out.reshape(n, c, 1, 1)


def pool2d(x: np.ndarray, mode: str, kernel, stride, padding=(0, 0), *,
           count_include_pad: bool = True) -> np.ndarray:
    """Max (``mode="max"``) or average (``"avg"``) pooling, like torch's ``max_pool2d`` /
    ``avg_pool2d`` (floor mode): x float32 (N, C, H, W) -> float32 (N, C, Ho, Wo).

    ``kernel`` / ``stride`` / ``padding``: (h, w) int pairs; padding at most half the kernel.
    """
    _check_input(x, mode)
    (kh, kw), (sh, sw), (ph, pw) = (tuple(int(v) for v in a) for a in (kernel, stride, padding))
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0 or 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"kernel / stride / padding: expected kernel, stride >= 1 and "
                         f"0 <= padding <= kernel / 2, got {kernel}, {stride}, {padding}")
    n, c, h, w = x.shape
    ho, wo = conv_output_hw((h, w), (kh, kw), (sh, sw), (ph, pw))
    if ho < 1 or wo < 1:
        raise ValueError(f"x: a {h}x{w} map is smaller than the {kh}x{kw} window")
    x = np.ascontiguousarray(x)
    out = np.empty((n, c, ho, wo), np.float32)
    workers = _threads.get_num_threads() if x.size >= 1 << 18 else 1
    nb = max(1, ceil(n / (4 * workers))) if workers > 1 else n

    def task(i: int, scratch: dict) -> None:
        _pool_planes(x, out, i * nb, min(n, (i + 1) * nb), kh, kw, sh, sw, ph, pw,
                     mode == "max", count_include_pad)

    _threads.run(task, ceil(n / nb), workers, limit_blas=False)
    return out
