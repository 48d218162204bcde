"""``ApproxModel``: run a trained torch CNN layer by layer under a per-operator knob configuration.

The network is read generically with ``torch.fx``: any module built of ``Conv2d`` (any
groups), ``Linear``, ``BatchNorm1d/2d``, ``ReLU``, ``MaxPool2d``, ``AvgPool2d``,
``AdaptiveAvgPool2d``, ``Flatten`` and residual ``add`` (modules or their functional forms)
is supported; ``Dropout`` / ``Identity`` are dropped (identity at inference). Anything else
raises ``ValueError`` naming the operator.

Operators, knobs and what is tunable
    ``am.ops`` has one row per operator in execution order (see :class:`ApproxModel`).
    Regular convolutions accept every applicable knob (``knobs.applicable``); depthwise /
    grouped convolutions, linear layers, batch norm, ReLU, pooling and add accept 11 / 12
    (fp16, as in ApproxTuner). ``flatten`` moves no arithmetic, so it accepts only 11.
    ``am.tunable_ops`` therefore lists every op that computes (ApproxTuner's choice); tuners
    that want a smaller space can restrict themselves to ``am.op_names(kind="conv")``.

Batch-norm folding (done once, in ``__init__``)
    A batch norm whose input is a convolution (or linear layer) used by nothing else is
    folded into it: ``w' = w * g``, ``b' = (b - mean) * g + beta`` with
    ``g = gamma / sqrt(var + eps)``, per output channel. This is exact under every knob:
    perforation fills a skipped row with a copy or the mean of its neighbours (weights
    summing to 1), which commutes with a per-channel affine map; filter sampling zeroes and
    rescales weights of each filter, which commutes with scaling the filter by ``g``; bias
    is added after interpolation either way. The BN row stays in ``ops`` (``folded=True``,
    ``fused_into`` = the conv) for the cost model; knob 12 on a folded BN rounds the
    conv+BN output to half. (Knob 12 on the conv itself rounds the *folded* weights and
    the conv+BN output: the runtime's fp16 semantics are those of the folded network.)
    A ReLU right after such a step is fused into it as well (``fused_into``); knob 12 on
    a ReLU rounds its output to half (identical to rounding its input).

Backends
    ``"numba"``: :mod:`mobiprox_lab.kernels` for convolutions / linear layers, NumPy for
    the rest; arrays end to end. ``"reference"``: :mod:`mobiprox_lab.reference` (PyTorch
    simulation) on torch tensors, for fast accuracy evaluation on large batches.

Switching configuration
    A configuration is held as a tuple of knob ids, one per op. ``set_config`` validates a
    mapping (measured ~10 us for a few entries, ~40 us for all 84 ops of the HAR MobileNet)
    or takes a knob tuple from ``prepare_config`` as is (measured 0.4-0.8 us); nothing is
    rebuilt or recompiled: each execution step is a closure prepared at construction that
    reads its knobs from the tuple at call time. Knobs not used before are JIT-warmed on a
    tiny input the first time a configuration using them is set or prepared.
"""

from __future__ import annotations

import contextlib
import copy
import operator
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import fx, nn

from . import knobs

BACKENDS = ("numba", "reference")
POOL_KERNEL_MIN_SIZE = 1 << 20  # pooling inputs of at least this many values: kernels.pool2d
_EXACT, _FP16 = knobs.EXACT, knobs.FP16


# ------------------------------------------------------------------------------ graph IR

@dataclass
class _Op:
    """One operator of the traced graph (internal)."""

    name: str
    kind: str  # conv | group_conv | linear | batchnorm | relu | pool | flatten | add
    node: str  # fx node name
    inputs: list[str]  # fx node names feeding it
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: dict = field(default_factory=dict)
    flops: int = 0
    layer_kind: str = "other"
    knobs: list[int] = field(default_factory=list)
    folded: bool = False
    fused_into: str | None = None


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    return int(v[0]), int(v[1])


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else np.ascontiguousarray(t.detach().cpu().numpy(), np.float32)


def _half_np(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float16).astype(np.float32)


def _half_t(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float16).to(torch.float32)


_RELU_FUNCS = {F.relu, torch.relu}
_ADD_FUNCS = {operator.add, operator.iadd, torch.add}
_DROP_FUNCS = {F.dropout, F.dropout2d}


def _trace(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[list[_Op], dict, str, str]:
    """Trace ``module`` into a list of :class:`_Op` (execution order), an alias map
    (identity nodes -> their input), the input node name and the output node name."""
    try:
        gm = fx.symbolic_trace(module)
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        raise ValueError(f"module: torch.fx could not trace {type(module).__name__} "
                         f"({type(exc).__name__}: {exc}); build it from supported layers "
                         "without data-dependent control flow") from exc
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros((1, *input_shape), dtype=torch.float32))
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"input_shape: the module does not run on an input of shape "
                         f"(1, {', '.join(map(str, input_shape))}) ({exc})") from exc
    mods = dict(gm.named_modules())
    ops: list[_Op] = []
    alias: dict[str, str] = {}
    used_names: dict[str, int] = {}
    in_node = out_node = None

    def shape(n) -> tuple[int, ...]:
        meta = n.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise ValueError(f"module: operator {n.name!r} does not produce a single tensor")
        return tuple(int(s) for s in meta.shape[1:])

    def src(a) -> str:
        if not isinstance(a, fx.Node):
            raise ValueError(f"module: expected a tensor argument, got {a!r}")
        return alias.get(a.name, a.name)

    def unique(name: str) -> str:
        k = used_names.get(name, 0)
        used_names[name] = k + 1
        return name if k == 0 else f"{name}#{k}"

    def add(name, kind, n, inputs, params=None) -> None:
        ins = [src(a) for a in inputs]
        in_shape = tuple(ops_by_node[ins[0]].out_shape) if ins[0] in ops_by_node else input_shape
        ops.append(_Op(unique(name), kind, n.name, ins, in_shape, shape(n), params or {}))
        ops_by_node[n.name] = ops[-1]

    ops_by_node: dict[str, _Op] = {}
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            if in_node is not None:
                raise ValueError("module: expected exactly one input tensor")
            in_node = n.name
            continue
        if n.op == "output":
            out_node = src(n.args[0])
            continue
        if n.op == "call_module":
            m = mods[n.target]
            if isinstance(m, (nn.Dropout, nn.Dropout2d, nn.Identity)):
                alias[n.name] = src(n.args[0])
            elif isinstance(m, nn.Conv2d):
                if _pair(m.dilation) != (1, 1) or m.padding_mode != "zeros":
                    raise ValueError(f"module: operator {n.target!r}: only dilation 1 and zero "
                                     "padding are supported")
                pad = m.padding
                if isinstance(pad, str):
                    if pad == "valid":
                        pad = (0, 0)
                    elif all(k % 2 == 1 for k in m.kernel_size) and _pair(m.stride) == (1, 1):
                        pad = tuple(k // 2 for k in m.kernel_size)
                    else:
                        raise ValueError(f"module: operator {n.target!r}: padding {pad!r} "
                                         "needs odd kernels and stride 1")
                add(n.target, "conv" if m.groups == 1 else "group_conv", n, n.args[:1],
                    {"w": m.weight, "b": m.bias, "stride": _pair(m.stride), "padding": _pair(pad),
                     "groups": int(m.groups)})
            elif isinstance(m, nn.Linear):
                add(n.target, "linear", n, n.args[:1], {"w": m.weight, "b": m.bias})
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                if m.running_mean is None:
                    raise ValueError(f"module: operator {n.target!r}: batch norm without "
                                     "running statistics is not supported")
                add(n.target, "batchnorm", n, n.args[:1], {"bn": m})
            elif isinstance(m, nn.ReLU):
                add(n.target, "relu", n, n.args[:1])
            elif isinstance(m, nn.MaxPool2d):
                if _pair(m.dilation) != (1, 1) or m.ceil_mode or m.return_indices:
                    raise ValueError(f"module: operator {n.target!r}: max pool with dilation, "
                                     "ceil_mode or return_indices is not supported")
                add(n.target, "pool", n, n.args[:1],
                    {"mode": "max", "k": _pair(m.kernel_size),
                     "s": _pair(m.stride if m.stride is not None else m.kernel_size),
                     "p": _pair(m.padding)})
            elif isinstance(m, nn.AvgPool2d):
                if m.ceil_mode or m.divisor_override is not None:
                    raise ValueError(f"module: operator {n.target!r}: avg pool with ceil_mode or "
                                     "divisor_override is not supported")
                add(n.target, "pool", n, n.args[:1],
                    {"mode": "avg", "k": _pair(m.kernel_size),
                     "s": _pair(m.stride if m.stride is not None else m.kernel_size),
                     "p": _pair(m.padding), "count_include_pad": bool(m.count_include_pad)})
            elif isinstance(m, nn.AdaptiveAvgPool2d):
                add(n.target, "pool", n, n.args[:1], {"mode": "adaptive_avg"})
            elif isinstance(m, nn.Flatten):
                add(n.target, "flatten", n, n.args[:1], {"start_dim": m.start_dim,
                                                         "end_dim": m.end_dim})
            else:
                raise ValueError(f"module: operator {n.target!r} ({type(m).__name__}) is not "
                                 "supported; supported: Conv2d, Linear, BatchNorm1d/2d, ReLU, "
                                 "MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, add, Dropout")
        elif n.op in ("call_function", "call_method"):
            t = n.target
            if t in _RELU_FUNCS or t in ("relu", "relu_"):
                add(n.name, "relu", n, n.args[:1])
            elif t in _DROP_FUNCS or t in ("contiguous",):
                alias[n.name] = src(n.args[0])
            elif t is torch.flatten or t == "flatten":
                start = n.args[1] if len(n.args) > 1 else n.kwargs.get("start_dim", 0)
                end = n.args[2] if len(n.args) > 2 else n.kwargs.get("end_dim", -1)
                add(n.name, "flatten", n, n.args[:1], {"start_dim": start, "end_dim": end})
            elif t in _ADD_FUNCS or t in ("add", "add_"):
                if len(n.args) != 2 or not all(isinstance(a, fx.Node) for a in n.args) or n.kwargs:
                    raise ValueError(f"module: operator {n.name!r}: only tensor + tensor adds "
                                     "are supported")
                add(n.name, "add", n, n.args)
            elif t is F.adaptive_avg_pool2d:
                add(n.name, "pool", n, n.args[:1], {"mode": "adaptive_avg"})
            elif t in (F.max_pool2d, F.avg_pool2d):
                raise ValueError(f"module: operator {n.name!r}: use nn.MaxPool2d / nn.AvgPool2d "
                                 "modules instead of the functional pooling")
            else:
                raise ValueError(f"module: operator {n.name!r} ({getattr(t, '__name__', t)}) is "
                                 "not supported; supported: conv / linear / batch norm / relu / "
                                 "pooling modules, flatten and tensor adds")
        else:
            raise ValueError(f"module: graph node {n.name!r} ({n.op}) is not supported")
    if not ops:
        raise ValueError("module: no operators found")
    return ops, alias, in_node, out_node


def _finish_ops(ops: list[_Op]) -> None:
    """Fill flops / layer_kind / applicable knobs (ApproxTuner cost rules, per sample)."""
    for op in ops:
        out_size = int(np.prod(op.out_shape))
        if op.kind in ("conv", "group_conv"):
            op.flops = int(op.params["w"].numel()) * op.out_shape[1] * op.out_shape[2]
            op.layer_kind = op.kind
            op.knobs = knobs.applicable_knobs(op.kind, op.out_shape[1:])
        elif op.kind == "linear":
            op.flops = int(op.params["w"].numel())
            op.layer_kind = "linear"
            op.knobs = [_EXACT, _FP16]
        else:
            op.layer_kind = "other"
            if op.kind == "batchnorm":
                op.flops = 6 * out_size
            elif op.kind in ("relu", "add"):
                op.flops = out_size
            elif op.kind == "pool":
                if op.params["mode"] == "adaptive_avg":
                    h, w = op.in_shape[1:]
                    ho, wo = op.out_shape[1:]
                    if h % ho or w % wo:
                        raise ValueError(f"module: operator {op.name!r}: adaptive average pool "
                                         f"from {h}x{w} to {ho}x{wo} needs divisible sizes")
                    op.params.update(k=(h // ho, w // wo), s=(h // ho, w // wo), p=(0, 0))
                kh, kw = op.params["k"]
                op.flops = kh * kw * out_size
            op.knobs = [_EXACT] if op.kind == "flatten" else [_EXACT, _FP16]


# ------------------------------------------------------------------------ numpy helpers

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
    if mode != "max" and (kh, kw) == (h, w) and not (ph or pw):
        return x.mean(axis=(2, 3), keepdims=True, dtype=np.float32)
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


# ---------------------------------------------------------------------------- the model

def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax float32 (N, C) of logits (N, C)."""
    z = np.asarray(logits, np.float32)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    return z / z.sum(axis=1, keepdims=True)


@dataclass
class RunState:
    """A partial run of an :class:`ApproxModel` (:meth:`ApproxModel.run_prefix`).

    backend : the backend it runs on. step : execution steps done so far.
    values : the live intermediate values (runtime-internal layout; pass the state back to
        ``advance`` / ``run_from`` rather than reading them).
    """

    backend: str
    step: int
    values: list


@dataclass
class _Step:
    fn: Callable  # fn(*inputs, kv) -> output
    inputs: tuple[int, ...]  # env slots
    out: int
    free: tuple[int, ...]  # slots released after this step
    ops: tuple[int, ...]  # op indices executed by this step
    label: str


class ApproxModel:
    """A trained torch CNN run layer by layer under a per-operator knob configuration.

    Parameters
    ----------
    module : trained ``nn.Module`` (a copy is traced in eval mode; the original is untouched).
    input_shape : (C, H, W) of one input.
    backend : "numba" (``mobiprox_lab.kernels``) or "reference" (``mobiprox_lab.reference``).
    warmup : JIT-compile the exact path at construction (numba backend).

    Attributes
    ----------
    ops : DataFrame, one row per operator in execution order: ``name`` (unique, stable: the
        module path, e.g. ``"features.1.dw"``), ``kind`` (conv | group_conv | linear |
        batchnorm | relu | pool | flatten | add), ``in_shape`` / ``out_shape`` (per sample),
        ``flops`` (per sample, ApproxTuner rules), ``knobs`` (applicable ids), ``layer_kind``
        (``knobs.LAYER_KINDS``), ``folded`` (BN folded into its conv), ``fused_into`` (the
        op whose execution step runs this one, else None), ``params`` (weights + bias count).
    tunable_ops : names of ops with more than one applicable knob, in execution order.
    n_classes : width of the output logits.
    """

    def __init__(self, module: nn.Module, input_shape: Sequence[int], backend: str = "numba",
                 *, warmup: bool = True) -> None:
        if not isinstance(module, nn.Module):
            raise ValueError(f"module: expected a torch nn.Module, got {type(module).__name__}")
        try:
            shape = tuple(int(v) for v in input_shape)
        except (TypeError, ValueError):
            raise ValueError(f"input_shape: expected (C, H, W) ints, got {input_shape!r}") from None
        if len(shape) < 1 or min(shape) < 1:
            raise ValueError(f"input_shape: expected positive ints (C, H, W), got {input_shape!r}")
        self._check_backend(backend)
        self.input_shape = shape
        self.backend = backend
        module = copy.deepcopy(module).eval()
        ops, alias, in_node, out_node = _trace(module, shape)
        _finish_ops(ops)
        self._op_list = ops
        self._index = {op.name: i for i, op in enumerate(ops)}
        self._allowed = [frozenset(op.knobs) for op in ops]
        out_op = next((op for op in ops if op.node == out_node), None)
        if out_op is None or len(out_op.out_shape) != 1:
            raise ValueError("module: expected the output to be logits of shape (N, n_classes)")
        self.n_classes = int(out_op.out_shape[0])
        self._build_plans(ops, in_node, out_node)
        self.ops = pd.DataFrame([{
            "name": op.name, "kind": op.kind, "in_shape": op.in_shape, "out_shape": op.out_shape,
            "flops": op.flops, "knobs": list(op.knobs), "layer_kind": op.layer_kind,
            "folded": op.folded, "fused_into": op.fused_into,
            "params": int(sum(int(np.prod(v.shape)) for k, v in op.params.items()
                              if k in ("w", "b") and v is not None)),
        } for op in ops])
        self.ops["fused_into"] = pd.Series([op.fused_into for op in ops], dtype=object)
        self.tunable_ops: list[str] = [op.name for op in ops if len(op.knobs) > 1]
        self._exact = tuple([_EXACT] * len(ops))
        self._valid: set[tuple[int, ...]] = {self._exact}  # validated knob tuples
        self._trusted: dict[int, tuple[int, ...]] = {}  # id -> tuple from prepare_config
        self._warm_vecs: set[tuple[int, ...]] = {self._exact}
        self._kv = self._exact
        self._warmed: set[tuple] = set()
        if warmup:
            self.run(np.zeros((1, *shape), np.float32))
            if backend == "numba":
                self._warmed.update((i, _EXACT) for i in range(len(ops)))

    # -------------------------------------------------------------------- construction

    @staticmethod
    def _check_backend(backend) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")

    def _build_plans(self, ops: list[_Op], in_node: str, out_node: str) -> None:
        by_node = {op.node: i for i, op in enumerate(ops)}
        users: dict[str, int] = {}
        for op in ops:
            for s in op.inputs:
                users[s] = users.get(s, 0) + 1
        users[out_node] = users.get(out_node, 0) + 1
        # fuse conv/linear -> batchnorm -> relu chains
        groups: list[list[int]] = []
        head_of: dict[int, int] = {}  # op index -> group index
        for i, op in enumerate(ops):
            prev = by_node.get(op.inputs[0]) if len(op.inputs) == 1 else None
            if prev is not None and users[ops[prev].node] == 1 and prev in head_of:
                g = groups[head_of[prev]]
                kinds = [ops[j].kind for j in g]
                head = ops[g[0]]
                if (op.kind == "batchnorm" and kinds == [head.kind]
                        and head.kind in ("conv", "group_conv", "linear")) or \
                        (op.kind == "relu" and kinds[-1] != "relu"
                         and head.kind in ("conv", "group_conv", "linear", "batchnorm")):
                    g.append(i)
                    head_of[i] = head_of[prev]
                    op.fused_into = head.name
                    if op.kind == "batchnorm" and head.kind != "batchnorm":
                        op.folded = True
                    continue
            head_of[i] = len(groups)
            groups.append([i])
        # env slots: 0 = input, then one per group
        slot_of = {in_node: 0}
        for gi, g in enumerate(groups):
            slot_of[ops[g[-1]].node] = gi + 1
            for j in g:
                slot_of[ops[j].node] = gi + 1
        last_use: dict[int, int] = {}
        for gi, g in enumerate(groups):
            for s in ops[g[0]].inputs:
                last_use[slot_of[s]] = gi
        out_slot = slot_of[out_node]
        self._out_slot = out_slot
        self._groups = groups
        self._slots = (len(groups) + 1, tuple(
            tuple(slot_of[s] for s in ops[g[0]].inputs) for g in groups))
        sole = {gi + 1 for gi, g in enumerate(groups) if users.get(ops[g[-1]].node, 0) == 1}
        self._plans: dict[str, list[_Step]] = {}
        for backend in BACKENDS:
            steps = []
            for gi, g in enumerate(groups):
                ins = self._slots[1][gi]
                free = tuple(s for s, last in last_use.items() if last == gi and s != out_slot)
                inplace = len(ins) >= 1 and ins[0] != 0 and ins[0] in sole
                fn = self._make_step(backend, [ops[j] for j in g], g, inplace)
                steps.append(_Step(fn, ins, gi + 1, free, tuple(g), ops[g[0]].name))
            self._plans[backend] = steps

    def _make_step(self, backend: str, members: list[_Op], idx: list[int],
                   inplace: bool) -> Callable:
        """A closure ``fn(*inputs, kv)`` executing a fused group of ops."""
        head, ih = members[0], idx[0]
        rest = list(zip(members[1:], idx[1:], strict=True))
        bn = next(((m, j) for m, j in rest if m.kind == "batchnorm"), None)
        relu = next((j for m, j in rest if m.kind == "relu"), None)
        ref = backend == "reference"
        half = _half_t if ref else _half_np
        rnd = tuple(j for m, j in rest)  # ops whose fp16 knob rounds the step's output

        if head.kind in ("conv", "group_conv", "linear"):
            w = head.params["w"].detach().to(torch.float32)
            b = head.params["b"]
            b = None if b is None else b.detach().to(torch.float32)
            if bn is not None:  # (conv(x) + b) * g + sh = conv_{w * g}(x) + (b * g + sh)
                g, sh = _bn_affine(bn[0].params["bn"])
                b = sh if b is None else b * g + sh
                w = w * g.view((-1,) + (1,) * (w.dim() - 1))
            if ref:
                from . import reference as lib

                w_, b_ = w.contiguous(), None if b is None else b.contiguous()
            else:
                from . import kernels as lib

                w_, b_ = _np(w), _np(b)
                head.params["exec"] = (w_, b_)
            if head.kind == "linear":
                def core(x, k, _f=lib.linear, _w=w_, _b=b_):
                    return _f(x, _w, _b, knob=k)
            else:
                st, pd_, gr = head.params["stride"], head.params["padding"], head.params["groups"]

                if not ref and relu is not None:
                    # the kernel applies the ReLU on each chunk while it is in cache; the
                    # step's fp16 rounding after it commutes with it (rounding keeps signs)
                    def core(x, k, _f=lib.conv2d, _w=w_, _b=b_, _s=st, _p=pd_, _g=gr):
                        return _f(x, _w, _b, stride=_s, padding=_p, groups=_g, knob=k,
                                  relu=True)
                    relu = None
                else:
                    def core(x, k, _f=lib.conv2d, _w=w_, _b=b_, _s=st, _p=pd_, _g=gr):
                        return _f(x, _w, _b, stride=_s, padding=_p, groups=_g, knob=k)
            fresh = True
        elif head.kind == "batchnorm":
            g, sh = _bn_affine(head.params["bn"])
            nd = len(head.in_shape)
            shape = (1, -1) + (1,) * (nd - 1)
            g_, sh_ = (g.view(shape), sh.view(shape)) if ref else \
                (_np(g).reshape(shape), _np(sh).reshape(shape))

            def core(x, k, _g=g_, _s=sh_, _h=half):
                if k == _FP16:
                    return _h(_h(x) * _h(_g) + _h(_s))
                return x * _g + _s
            fresh = True
        elif head.kind == "relu":
            if ref:
                def core(x, k):
                    return torch.relu(x)
            elif inplace:
                def core(x, k):
                    return np.maximum(x, 0, out=x)
            else:
                def core(x, k):
                    return np.maximum(x, np.float32(0))
            fresh = False
        elif head.kind == "pool":
            p = head.params
            if ref:
                if p["mode"] == "max":
                    def core(x, k, _p=p):
                        return F.max_pool2d(x, _p["k"], _p["s"], _p["p"])
                else:
                    def core(x, k, _p=p):
                        return F.avg_pool2d(x, _p["k"], _p["s"], _p["p"],
                                            count_include_pad=_p.get("count_include_pad", True))
            else:
                from . import kernels

                mode = "max" if p["mode"] == "max" else "avg"
                glob = p["mode"] == "adaptive_avg" or tuple(p["k"]) == tuple(head.in_shape[1:])

                def core(x, k, _p=p, _m=mode, _g=glob):
                    # one Numba pass for large inputs (KWS max pool at batch 64: 12 vs 30 ms);
                    # strided NumPy slices while the input is in cache (measured faster)
                    if x.size >= POOL_KERNEL_MIN_SIZE and not _g:
                        return kernels.pool2d(x, _m, _p["k"], _p["s"], _p["p"],
                                              count_include_pad=_p.get("count_include_pad",
                                                                       True))
                    return _pool_np(x, _m, _p["k"], _p["s"], _p["p"],
                                    _p.get("count_include_pad", True))
            fresh = True
        elif head.kind == "flatten":
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
            fresh = False
        elif head.kind == "add":
            def core(x, y, k):
                return x + y
            fresh = True
        else:  # pragma: no cover - _trace only emits the kinds above
            raise ValueError(f"module: operator {head.name!r} of kind {head.kind!r}")

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

        def step(x, kv, _c=core, _i=ih, _r=rnd, _relu=relu, _fresh=fresh):
            y = _c(x, kv[_i])
            for j in _r:
                if kv[j] == _FP16:
                    y = _half_np(y)
                    break
            if _relu is not None:
                y = np.maximum(y, 0, out=y) if _fresh else np.maximum(y, np.float32(0))
            return y
        return step

    # ------------------------------------------------------------------------- configs

    def _vector(self, config) -> tuple[int, ...]:
        """Validate ``config`` (mapping, knob tuple or None) into a knob tuple."""
        if config is None:
            return self._kv
        if self._trusted.get(id(config)) is config or (
                isinstance(config, tuple) and config in self._valid):
            return config
        if isinstance(config, tuple):
            if len(config) != len(self._op_list):
                raise ValueError(f"config: expected a mapping op name -> knob id or a tuple of "
                                 f"{len(self._op_list)} knob ids, got a tuple of {len(config)}")
            config = dict(zip(self._index, config, strict=True))
        if not isinstance(config, Mapping) and not hasattr(config, "items"):
            raise ValueError(f"config: expected a mapping op name -> knob id, got "
                             f"{type(config).__name__}")
        kv = list(self._exact)
        index, allowed = self._index, self._allowed
        for name, k in config.items():
            i = index.get(name)
            if i is not None and type(k) is int and k in allowed[i]:  # fast path
                kv[i] = k
                continue
            if i is None:
                known = ", ".join(list(index)[:4])
                raise ValueError(f"config: unknown operator {name!r}; expected one of the "
                                 f"{len(index)} names in .ops.name (e.g. {known}, ...)")
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer, float)) \
                    or k != int(k):
                raise ValueError(f"config[{name!r}]: expected an int knob id, got {k!r}")
            kid = int(k)
            if kid not in allowed[i]:
                if kid not in knobs.KNOBS:
                    raise ValueError(f"config[{name!r}]: unknown knob id {kid}; valid ids are "
                                     f"{knobs.VALID_RANGES}")
                op = self._op_list[i]
                raise ValueError(
                    f"config[{name!r}]: knob {kid} ({knobs.KNOBS[kid].describe()}) is not "
                    f"applicable to operator {name!r} ({op.kind}, output {op.out_shape}); "
                    f"applicable: {_ranges(op.knobs)}")
            kv[i] = kid
        vec = tuple(kv)
        self._valid.add(vec)
        return vec

    def validate_config(self, config) -> dict[str, int]:
        """The complete, validated configuration (every op; missing ones -> 11)."""
        return dict(zip(self._index, self._vector(config), strict=True))

    def prepare_config(self, config) -> tuple[int, ...]:
        """Validate once and return the knob tuple (execution order) that ``set_config`` /
        ``run`` accept without re-validation (switching then costs ~1 microsecond)."""
        vec = self._vector(config)
        self._warm(vec)
        self._trusted[id(vec)] = vec
        return vec

    def set_config(self, config) -> None:
        """Make ``config`` (mapping op name -> knob id, missing -> 11; or a tuple from
        ``prepare_config``; None = all exact) the current configuration."""
        if config is None:
            self._kv = self._exact
        elif self._trusted.get(id(config)) is config:  # prepared: validated and warmed
            self._kv = config
        else:
            vec = self._vector(config)
            if vec not in self._warm_vecs:
                self._warm(vec)
            self._kv = vec

    @property
    def config(self) -> dict[str, int]:
        """The current configuration, every op name -> knob id."""
        return dict(zip(self._index, self._kv, strict=True))

    @property
    def config_vector(self) -> tuple[int, ...]:
        """The current configuration as a knob tuple (execution order of ``ops``)."""
        return self._kv

    def op_names(self, kind: str | Sequence[str] | None = None) -> list[str]:
        """Op names in execution order, optionally only those of ``kind`` (e.g. "conv")."""
        if kind is None:
            return list(self._index)
        kinds = {kind} if isinstance(kind, str) else set(kind)
        return [op.name for op in self._op_list if op.kind in kinds]

    def _warm(self, vec: tuple[int, ...]) -> None:
        """JIT-compile the numba kernels for knobs not used before, on a tiny input."""
        if self.backend != "numba" or vec in self._warm_vecs:
            return
        todo = [(i, k) for i, k in enumerate(vec) if k != _EXACT and (i, k) not in self._warmed]
        for i, k in todo:
            op = self._op_list[i]
            w, b = op.params.get("exec", (None, None))
            if op.kind in ("conv", "group_conv"):
                from . import kernels

                (sh, sw), (ph, pw) = op.params["stride"], op.params["padding"]
                h = max(1, 7 * sh + w.shape[2] - 2 * ph)  # an 8x8 output map
                wd = max(1, 7 * sw + w.shape[3] - 2 * pw)
                x = np.zeros((1, w.shape[1] * op.params["groups"], h, wd), np.float32)
                if knobs.applicable(k, op.layer_kind, ((h + 2 * ph - w.shape[2]) // sh + 1,
                                                       (wd + 2 * pw - w.shape[3]) // sw + 1)):
                    kernels.conv2d(x, w, b, stride=(sh, sw), padding=(ph, pw),
                                   groups=op.params["groups"], knob=k)
            elif op.kind == "linear":
                from . import kernels

                kernels.linear(np.zeros((1, w.shape[1]), np.float32), w, b, knob=k)
            self._warmed.add((i, k))
        self._warm_vecs.add(vec)

    def warmup(self, configs: Sequence) -> None:
        """Validate and JIT-warm a list of configurations up front."""
        for c in configs:
            self._warm(self._vector(c))

    # ----------------------------------------------------------------------- running

    def _check_x(self, x):
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if not isinstance(x, np.ndarray):
            dims = ", ".join(map(str, self.input_shape))
            raise ValueError(f"x: expected a float32 numpy array (N, {dims}), "
                             f"got {type(x).__name__}")
        if x.dtype != np.float32:
            raise ValueError(f"x: expected dtype float32, got {x.dtype}")
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape \
                or x.shape[0] < 1:
            raise ValueError(f"x: expected shape (N, {', '.join(map(str, self.input_shape))}) "
                             f"with N >= 1, got {tuple(x.shape)}")
        return np.ascontiguousarray(x)

    def run(self, x: np.ndarray, config=None, *, backend: str | None = None) -> np.ndarray:
        """Logits float32 (N, n_classes) of x float32 (N, *input_shape) under ``config``
        (mapping op name -> knob id, missing -> 11; None = the current configuration).
        Does not change the current configuration."""
        x = self._check_x(x)
        kv = self._kv if config is None else self._vector(config)
        backend = self.backend if backend is None else backend
        self._check_backend(backend)
        n_slots, _ = self._slots
        env: list = [None] * n_slots
        env[0] = torch.from_numpy(x) if backend == "reference" else x
        out = self._execute_steps(self._plans[backend], env, kv, backend)
        if backend == "reference":
            return out.numpy().astype(np.float32, copy=False)
        return np.ascontiguousarray(out, np.float32)

    def _execute(self, steps: list[_Step], env: list, kv: tuple[int, ...]):
        for st in steps:
            ins = st.inputs
            if len(ins) == 1:
                env[st.out] = st.fn(env[ins[0]], kv)
            else:
                env[st.out] = st.fn(*[env[i] for i in ins], kv)
            for f in st.free:
                env[f] = None
        return env[self._out_slot]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``run(x)`` under the current configuration."""
        return self.run(x)

    def predict_proba(self, x: np.ndarray, config=None, *, backend: str | None = None,
                      batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Softmax float32 (N, n_classes), computed in batches of ``batch_size``."""
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
        x = self._check_x(x)
        kv = self._kv if config is None else self._vector(config)
        from tqdm.auto import tqdm

        out = np.empty((len(x), self.n_classes), np.float32)
        for i in tqdm(range(0, len(x), batch_size), desc="predict", disable=not progress):
            out[i:i + batch_size] = softmax(self.run(x[i:i + batch_size], kv, backend=backend))
        return out

    def time_steps(self, x: np.ndarray, config=None, *, repeats: int = 5,
                   backend: str | None = None, clock: Callable[[], float] = time.perf_counter
                   ) -> pd.DataFrame:
        """Median wall time per execution step (seconds) over ``repeats`` runs.

        ``clock``: ``time.perf_counter`` (wall, default) or e.g. ``time.thread_time`` (CPU
        seconds of the calling thread: robust to other processes' load when the kernels run
        on one thread).

        Columns: ``step`` (name of the step's first op), ``ops`` (op names it executes),
        ``seconds``. A step is an op with the batch norm / ReLU fused into it.
        """
        x = self._check_x(x)
        kv = self._kv if config is None else self._vector(config)
        backend = self.backend if backend is None else backend
        self._check_backend(backend)
        steps = self._plans[backend]
        times = np.zeros((repeats, len(steps)))
        from .kernels import _pool

        with contextlib.ExitStack() as stack:
            if backend == "numba":  # as in run(): one BLAS thread per kernel worker
                stack.enter_context(_pool.single_threaded_blas())
            self._time_steps(x, kv, backend, steps, times, clock)
        return pd.DataFrame({"step": [s.label for s in steps],
                             "ops": [[self._op_list[i].name for i in s.ops] for s in steps],
                             "seconds": np.median(times, axis=0)})

    def _time_steps(self, x, kv, backend, steps, times, clock) -> None:
        for r in range(times.shape[0]):
            env: list = [None] * self._slots[0]
            env[0] = torch.from_numpy(x) if backend == "reference" else x
            with torch.no_grad():
                for si, st in enumerate(steps):
                    t0 = clock()
                    env[st.out] = st.fn(*[env[i] for i in st.inputs], kv)
                    times[r, si] = clock() - t0

    # ------------------------------------------------------------------ partial runs

    def step_ops(self) -> list[tuple[str, ...]]:
        """Op names executed by each execution step, in execution order (a step is an op
        with the batch norm / ReLU fused into it; the same steps on both backends)."""
        return [tuple(self._op_list[i].name for i in g) for g in self._groups]

    def run_prefix(self, x: np.ndarray, upto: int, config=None, *,
                   backend: str | None = None) -> RunState:
        """Run the first ``upto`` execution steps (0 <= upto <= len(step_ops())) of ``x``
        float32 (N, *input_shape) under ``config``; continue with :meth:`advance` /
        :meth:`run_from` (each step may use its own configuration)."""
        backend = self.backend if backend is None else backend
        self._check_backend(backend)
        x = self._check_x(x)
        env: list = [None] * self._slots[0]
        env[0] = torch.from_numpy(x) if backend == "reference" else x
        state = RunState(backend, 0, env)
        return self.advance(state, config, steps=upto)

    def advance(self, state: RunState, config=None, *, steps: int = 1) -> RunState:
        """Run the next ``steps`` execution steps of ``state`` in place under ``config``."""
        if not isinstance(state, RunState):
            raise ValueError(f"state: expected a RunState (run_prefix), got "
                             f"{type(state).__name__}")
        plan = self._plans[state.backend]
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0 \
                or state.step + steps > len(plan):
            raise ValueError(f"steps: expected an int in [0, {len(plan) - state.step}] "
                             f"(steps left after step {state.step}), got {steps!r}")
        kv = self._kv if config is None else self._vector(config)
        self._execute_steps(plan[state.step:state.step + steps], state.values, kv,
                            state.backend)
        state.step += int(steps)
        return state

    def run_from(self, state: RunState, config=None) -> np.ndarray:
        """Logits float32 (N, n_classes) of the remaining steps of ``state`` under ``config``
        (as :meth:`run` returns them); ``state`` itself is left as it was."""
        if not isinstance(state, RunState):
            raise ValueError(f"state: expected a RunState (run_prefix), got "
                             f"{type(state).__name__}")
        values = list(state.values)
        if state.backend == "numba":  # numba steps may overwrite an input they alone use
            values = [v.copy() if isinstance(v, np.ndarray) and i else v
                      for i, v in enumerate(values)]
        kv = self._kv if config is None else self._vector(config)
        out = self._execute_steps(self._plans[state.backend][state.step:], values, kv,
                                  state.backend)
        if state.backend == "reference":
            return out.numpy().astype(np.float32, copy=False)
        return np.ascontiguousarray(out, np.float32)

    def _execute_steps(self, steps: list[_Step], env: list, kv: tuple[int, ...], backend: str):
        """``_execute`` under ``run``'s execution context: no grad (reference) or one BLAS
        thread, set once per call rather than once per kernel call (numba)."""
        if backend == "reference":
            with torch.no_grad():
                return self._execute(steps, env, kv)
        from .kernels import _pool

        with _pool.single_threaded_blas():
            return self._execute(steps, env, kv)

    # ------------------------------------------------------------------ introspection

    def named_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every operator's tensors as ``(name, tensor)`` in execution order, as traced (before
        batch-norm folding): ``"<op>.<param>"`` (``w``, ``b``) and ``"<op>.<param>.<entry>"``
        for a module's state (a batch norm's running statistics). Used for fingerprints."""
        for op in self._op_list:
            for key, value in sorted(op.params.items()):
                if isinstance(value, nn.Module):
                    for name, t in value.state_dict().items():
                        yield f"{op.name}.{key}.{name}", t
                elif isinstance(value, torch.Tensor):
                    yield f"{op.name}.{key}", value

    def __repr__(self) -> str:
        return (f"ApproxModel({len(self._op_list)} ops, {len(self.tunable_ops)} tunable, "
                f"input {self.input_shape}, {self.n_classes} classes, backend={self.backend!r})")


def _bn_affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) of an eval-mode batch norm: y = x * scale + shift."""
    g = 1.0 / torch.sqrt(bn.running_var.detach().float() + bn.eps)
    if bn.affine:
        g = g * bn.weight.detach().float()
    sh = -bn.running_mean.detach().float() * g
    if bn.affine:
        sh = sh + bn.bias.detach().float()
    return g, sh


def _ranges(ids: Sequence[int]) -> str:
    """Compact '11, 12, 121-138' rendering of sorted knob ids."""
    out, run = [], []
    for k in sorted(ids):
        if run and k == run[-1] + 1:
            run.append(k)
        else:
            if run:
                out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
            run = [k]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ", ".join(out)
