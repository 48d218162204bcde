"""Execution steps: a fused group of operators (a convolution or linear layer with its
folded batch norm and ReLU, or one other operator) as a closure ``fn(*inputs, kv)`` that
reads its knobs from the configuration tuple ``kv`` at call time, on either backend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import knobs
from .graph import Op

__all__ = ["POOL_KERNEL_MIN_SIZE", "Step", "bn_affine", "make_step"]

POOL_KERNEL_MIN_SIZE = 1 << 20  # pooling inputs of at least this many values: kernels.pool2d
_FP16 = knobs.FP16


@dataclass
class Step:
    """One execution step of a plan (runtime-internal)."""

    fn: Callable  # fn(*inputs, kv) -> output
    inputs: tuple[int, ...]  # env slots
    out: int
    free: tuple[int, ...]  # slots released after this step
    ops: tuple[int, ...]  # op indices executed by this step
    label: str


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else np.ascontiguousarray(t.detach().cpu().numpy(), np.float32)


def _frozen(t: torch.Tensor | None) -> np.ndarray | None:
    """A read-only float32 copy of ``t`` (so that the kernels keep its packings)."""
    if t is None:
        return None
    a = np.array(t.detach().cpu().numpy(), dtype=np.float32, order="C", copy=True)
    a.flags.writeable = False
    return a


def _half_t(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float16).to(torch.float32)


def _pool_np(x: np.ndarray, mode: str, k, s, p, include_pad: bool = True) -> np.ndarray:
    """Max / average pooling of x (N, C, H, W) by strided slices (kernel area passes)."""
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    n, c, h, w = x.shape
    if (ph or pw) and mode == "max":
        xp = np.full((n, c, h + 2 * ph, w + 2 * pw), -np.inf, np.float32)
        xp[:, :, ph:ph + h, pw:pw + w] = x
        x = xp
    elif ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (x.shape[2] - kh) // sh + 1
    wo = (x.shape[3] - kw) // sw + 1
    out = None
    for i in range(kh):
        for j in range(kw):
            v = x[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            if out is None:
                out = v.copy()
            elif mode == "max":
                np.maximum(out, v, out=out)
            else:
                out += v
    if mode != "max":
        if include_pad or not (ph or pw):
            out *= np.float32(1.0 / (kh * kw))
        else:
            ones = np.pad(np.ones((1, 1, h, w), np.float32), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
            cnt = _pool_np(ones, "sum", k, s, (0, 0))
            out /= cnt
    return out


def _flatten_shape(shape: tuple[int, ...], start: int, end: int) -> tuple[int, ...]:
    nd = len(shape)
    start, end = start % nd, end % nd
    return (*shape[:start], int(np.prod(shape[start:end + 1])), *shape[end + 1:])


def bn_affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) of an eval-mode batch norm: y = x * scale + shift."""
    g = 1.0 / torch.sqrt(bn.running_var.detach().float() + bn.eps)
    if bn.affine:
        g = g * bn.weight.detach().float()
    sh = -bn.running_mean.detach().float() * g
    if bn.affine:
        sh = sh + bn.bias.detach().float()
    return g, sh


def make_step(backend: str, members: list[Op], idx: list[int], inplace: bool) -> Callable:
    """A closure ``fn(*inputs, kv)`` executing a fused group of ops on ``backend``.

    members : the group's ops (head first), idx : their indices in ``kv``. inplace : the
    head's input is used by this step alone (a ReLU may overwrite it).
    """
    head, ih = members[0], idx[0]
    rest = list(zip(members[1:], idx[1:], strict=True))
    bn = next(((m, j) for m, j in rest if m.kind == "batchnorm"), None)
    relu = next((j for m, j in rest if m.kind == "relu"), None)
    ref = backend == "reference"
    if ref:
        half = _half_t
    else:
        from .. import kernels

        half = kernels.to_half  # 64-byte aligned, as the next layer's tiles read fastest
    rnd = tuple(j for m, j in rest)  # ops whose fp16 knob rounds the step's output

    if head.kind in ("conv", "group_conv", "linear"):
        core, relu = _weighted_core(head, bn, relu, ref)
        fresh = True
    elif head.kind == "batchnorm":
        core, fresh = _bn_core(head, ref, half), True
    elif head.kind == "relu":
        core, fresh = _relu_core(ref, inplace), False
    elif head.kind == "pool":
        core, fresh = _pool_core(head, ref), True
    elif head.kind == "flatten":
        core, fresh = _flatten_core(head, ref), False
    elif head.kind == "add":
        def core(x, y, k):
            return x + y
        fresh = True
    else:  # pragma: no cover - trace only emits the kinds above
        raise ValueError(f"module: operator {head.name!r} of kind {head.kind!r}")
    return _wrap(head, core, ih, rest, rnd, relu, ref, half, fresh)


def _wrap(head: Op, core: Callable, ih: int, rest: list, rnd: tuple[int, ...], relu: int | None,
          ref: bool, half: Callable, fresh: bool) -> Callable:
    """The step around ``core``: fp16 rounding of its inputs / output where a knob asks for
    it, and the fused ReLU (``fresh``: the core's output is a new array, safe to overwrite)."""
    round_head = head.kind not in ("conv", "group_conv", "linear", "batchnorm", "flatten")
    if head.kind == "add":
        def step(x, y, kv, _c=core, _i=ih, _h=half):
            if kv[_i] == _FP16:
                return _h(_c(_h(x), _h(y), kv[_i]))
            return _c(x, y, kv[_i])
        return step
    if not rest:
        if round_head:
            def step(x, kv, _c=core, _i=ih, _h=half):
                return _h(_c(_h(x), kv[_i])) if kv[_i] == _FP16 else _c(x, kv[_i])
            return step

        def step(x, kv, _c=core, _i=ih):
            return _c(x, kv[_i])
        return step
    if ref:
        def step(x, kv, _c=core, _i=ih, _r=rnd, _relu=relu):
            y = _c(x, kv[_i])
            if any(kv[j] == _FP16 for j in _r):
                y = _half_t(y)
            return torch.relu_(y) if _relu is not None else y
        return step

    def step(x, kv, _c=core, _i=ih, _r=rnd, _relu=relu, _fresh=fresh, _h=half):
        y = _c(x, kv[_i])
        for j in _r:
            if kv[j] == _FP16:
                y = _h(y)
                break
        if _relu is not None:
            y = np.maximum(y, 0, out=y) if _fresh else np.maximum(y, np.float32(0))
        return y
    return step


def _weighted_core(head: Op, bn: tuple[Op, int] | None, relu: int | None,
                   ref: bool) -> tuple[Callable, int | None]:
    """The core of a conv / linear step with its batch norm folded in, and the ReLU left for
    the step to apply (None when the numba conv kernel applies it)."""
    w = head.params["w"].detach().to(torch.float32)
    b = head.params["b"]
    b = None if b is None else b.detach().to(torch.float32)
    if bn is not None:  # (conv(x) + b) * g + sh = conv_{w * g}(x) + (b * g + sh)
        g, sh = bn_affine(bn[0].params["bn"])
        b = sh if b is None else b * g + sh
        w = w * g.view((-1,) + (1,) * (w.dim() - 1))
    if ref:
        from .. import reference as lib

        w_, b_ = w.contiguous(), None if b is None else b.contiguous()
    else:
        from .. import kernels as lib

        # read-only copies: the kernels then pack each knob's weights once (see kernels)
        w_, b_ = _frozen(w), _frozen(b)
        head.params["exec"] = (w_, b_)
    if head.kind == "linear":
        def core(x, k, _f=lib.linear, _w=w_, _b=b_):
            return _f(x, _w, _b, knob=k)
        return core, relu
    st, pd_, gr = head.params["stride"], head.params["padding"], head.params["groups"]
    if not ref:
        # the kernel applies the ReLU on each chunk while it is in cache; the
        # step's fp16 rounding after it commutes with it (rounding keeps signs); each
        # (input shape, knob) is resolved once (kernels.PreparedConv2d)
        return lib.PreparedConv2d(w_, b_, stride=st, padding=pd_, groups=gr,
                                  relu=relu is not None), None

    def core(x, k, _f=lib.conv2d, _w=w_, _b=b_, _s=st, _p=pd_, _g=gr):
        return _f(x, _w, _b, stride=_s, padding=_p, groups=_g, knob=k)
    return core, relu


def _bn_core(head: Op, ref: bool, half: Callable) -> Callable:
    """A batch norm that could not be folded: a per-channel affine map."""
    g, sh = bn_affine(head.params["bn"])
    nd = len(head.in_shape)
    shape = (1, -1) + (1,) * (nd - 1)
    g_, sh_ = (g.view(shape), sh.view(shape)) if ref else \
        (_np(g).reshape(shape), _np(sh).reshape(shape))

    def core(x, k, _g=g_, _s=sh_, _h=half):
        if k == _FP16:
            return _h(_h(x) * _h(_g) + _h(_s))
        return x * _g + _s
    return core


def _relu_core(ref: bool, inplace: bool) -> Callable:
    if ref:
        def core(x, k):
            return torch.relu(x)
    elif inplace:
        def core(x, k):
            return np.maximum(x, 0, out=x)
    else:
        def core(x, k):
            return np.maximum(x, np.float32(0))
    return core


def _pool_core(head: Op, ref: bool) -> Callable:
    p = head.params
    if ref:
        if p["mode"] == "max":
            def core(x, k, _p=p):
                return F.max_pool2d(x, _p["k"], _p["s"], _p["p"])
        else:
            def core(x, k, _p=p):
                return F.avg_pool2d(x, _p["k"], _p["s"], _p["p"],
                                    count_include_pad=_p.get("count_include_pad", True))
        return core
    from .. import kernels

    mode = "max" if p["mode"] == "max" else "avg"
    glob = tuple(p["k"]) == tuple(head.in_shape[1:]) and tuple(p["p"]) == (0, 0)

    def core(x, k, _p=p, _m=mode, _g=glob):
        if _g:  # one value per plane (HAR's last pool at batch 64: 0.54 -> 0.05-0.09 ms)
            return kernels.global_pool2d(x, _m)
        # one Numba pass for large inputs (KWS max pool at batch 64: 12 vs 30 ms);
        # strided NumPy slices while the input is in cache (measured faster)
        if x.size >= POOL_KERNEL_MIN_SIZE:
            return kernels.pool2d(x, _m, _p["k"], _p["s"], _p["p"],
                                  count_include_pad=_p.get("count_include_pad", True))
        return _pool_np(x, _m, _p["k"], _p["s"], _p["p"], _p.get("count_include_pad", True))
    return core


def _flatten_core(head: Op, ref: bool) -> Callable:
    s0, e0 = head.params["start_dim"], head.params["end_dim"]
    full = _flatten_shape((1, *head.in_shape), s0, e0)
    if full[0] != 1:
        raise ValueError(f"module: operator {head.name!r}: flatten must keep the batch "
                         "dimension (start_dim >= 1)")
    tail = full[1:]
    if ref:
        def core(x, k, _t=tail):
            return x.reshape(x.shape[0], *_t)
    else:
        def core(x, k, _t=tail):
            return np.ascontiguousarray(x).reshape(x.shape[0], *_t)
    return core
