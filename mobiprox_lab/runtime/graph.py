"""Graph tracing: a torch module as a list of operators (:class:`Op`) in execution order,
with their shapes, FLOPs and applicable knobs (ApproxTuner's cost rules)."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from .. import knobs

__all__ = ["Op", "finish_ops", "pair", "trace"]

_EXACT, _FP16 = knobs.EXACT, knobs.FP16


@dataclass
class Op:
    """One operator of the traced graph (runtime-internal: ``ApproxModel.ops`` is its public
    table)."""

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


def pair(v) -> tuple[int, int]:
    """An int or a pair as ``(h, w)``."""
    if isinstance(v, int):
        return v, v
    return int(v[0]), int(v[1])


_RELU_FUNCS = {F.relu, torch.relu}
_ADD_FUNCS = {operator.add, operator.iadd, torch.add}
_DROP_FUNCS = {F.dropout, F.dropout2d}


def trace(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[list[Op], dict, str, str]:
    """Trace ``module`` into a list of :class:`Op` (execution order), an alias map
    (identity nodes -> their input), the input node name and the output node name."""
    gm = _shaped_graph(module, input_shape)
    mods = dict(gm.named_modules())
    tracer = _Tracer(input_shape)
    in_node = out_node = None
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            if in_node is not None:
                raise ValueError("module: expected exactly one input tensor")
            in_node = n.name
        elif n.op == "output":
            out_node = tracer.src(n.args[0])
        elif n.op == "call_module":
            tracer.call_module(n, mods[n.target])
        elif n.op in ("call_function", "call_method"):
            tracer.call_function(n)
        else:
            raise ValueError(f"module: graph node {n.name!r} ({n.op}) is not supported")
    if not tracer.ops:
        raise ValueError("module: no operators found")
    return tracer.ops, tracer.alias, in_node, out_node


def _shaped_graph(module: nn.Module, input_shape: tuple[int, ...]) -> fx.GraphModule:
    """``module`` traced with torch.fx, every node's output shape recorded (batch 1)."""
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
    return gm


class _Tracer:
    """The op list being built from one graph, and the node handlers that extend it."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.input_shape = input_shape
        self.ops: list[Op] = []
        self.alias: dict[str, str] = {}
        self.used_names: dict[str, int] = {}
        self.ops_by_node: dict[str, Op] = {}

    @staticmethod
    def shape(n) -> tuple[int, ...]:
        meta = n.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise ValueError(f"module: operator {n.name!r} does not produce a single tensor")
        return tuple(int(s) for s in meta.shape[1:])

    def src(self, a) -> str:
        if not isinstance(a, fx.Node):
            raise ValueError(f"module: expected a tensor argument, got {a!r}")
        return self.alias.get(a.name, a.name)

    def unique(self, name: str) -> str:
        k = self.used_names.get(name, 0)
        self.used_names[name] = k + 1
        return name if k == 0 else f"{name}#{k}"

    def add(self, name, kind, n, inputs, params=None) -> None:
        ins = [self.src(a) for a in inputs]
        in_shape = (tuple(self.ops_by_node[ins[0]].out_shape) if ins[0] in self.ops_by_node
                    else self.input_shape)
        self.ops.append(Op(self.unique(name), kind, n.name, ins, in_shape, self.shape(n),
                           params or {}))
        self.ops_by_node[n.name] = self.ops[-1]


    def call_module(self, n, m: nn.Module) -> None:
        """Add the op of a module call (or alias an identity module to its input)."""
        if isinstance(m, (nn.Dropout, nn.Dropout2d, nn.Identity)):
            self.alias[n.name] = self.src(n.args[0])
        elif isinstance(m, nn.Conv2d):
            if pair(m.dilation) != (1, 1) or m.padding_mode != "zeros":
                raise ValueError(f"module: operator {n.target!r}: only dilation 1 and zero "
                                 "padding are supported")
            pad = m.padding
            if isinstance(pad, str):
                if pad == "valid":
                    pad = (0, 0)
                elif all(k % 2 == 1 for k in m.kernel_size) and pair(m.stride) == (1, 1):
                    pad = tuple(k // 2 for k in m.kernel_size)
                else:
                    raise ValueError(f"module: operator {n.target!r}: padding {pad!r} "
                                     "needs odd kernels and stride 1")
            self.add(n.target, "conv" if m.groups == 1 else "group_conv", n, n.args[:1],
                     {"w": m.weight, "b": m.bias, "stride": pair(m.stride), "padding": pair(pad),
                      "groups": int(m.groups)})
        elif isinstance(m, nn.Linear):
            self.add(n.target, "linear", n, n.args[:1], {"w": m.weight, "b": m.bias})
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if m.running_mean is None:
                raise ValueError(f"module: operator {n.target!r}: batch norm without "
                                 "running statistics is not supported")
            self.add(n.target, "batchnorm", n, n.args[:1], {"bn": m})
        elif isinstance(m, nn.ReLU):
            self.add(n.target, "relu", n, n.args[:1])
        elif isinstance(m, nn.MaxPool2d):
            if pair(m.dilation) != (1, 1) or m.ceil_mode or m.return_indices:
                raise ValueError(f"module: operator {n.target!r}: max pool with dilation, "
                                 "ceil_mode or return_indices is not supported")
            self.add(n.target, "pool", n, n.args[:1],
                     {"mode": "max", "k": pair(m.kernel_size),
                      "s": pair(m.stride if m.stride is not None else m.kernel_size),
                      "p": pair(m.padding)})
        elif isinstance(m, nn.AvgPool2d):
            if m.ceil_mode or m.divisor_override is not None:
                raise ValueError(f"module: operator {n.target!r}: avg pool with ceil_mode or "
                                 "divisor_override is not supported")
            self.add(n.target, "pool", n, n.args[:1],
                     {"mode": "avg", "k": pair(m.kernel_size),
                      "s": pair(m.stride if m.stride is not None else m.kernel_size),
                      "p": pair(m.padding), "count_include_pad": bool(m.count_include_pad)})
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            self.add(n.target, "pool", n, n.args[:1], {"mode": "adaptive_avg"})
        elif isinstance(m, nn.Flatten):
            self.add(n.target, "flatten", n, n.args[:1], {"start_dim": m.start_dim,
                                                          "end_dim": m.end_dim})
        else:
            raise ValueError(f"module: operator {n.target!r} ({type(m).__name__}) is not "
                             "supported; supported: Conv2d, Linear, BatchNorm1d/2d, ReLU, "
                             "MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, add, Dropout")

    def call_function(self, n) -> None:
        """Add the op of a function or method call (or alias an identity to its input)."""
        t = n.target
        if t in _RELU_FUNCS or t in ("relu", "relu_"):
            self.add(n.name, "relu", n, n.args[:1])
        elif t in _DROP_FUNCS or t in ("contiguous",):
            self.alias[n.name] = self.src(n.args[0])
        elif t is torch.flatten or t == "flatten":
            start = n.args[1] if len(n.args) > 1 else n.kwargs.get("start_dim", 0)
            end = n.args[2] if len(n.args) > 2 else n.kwargs.get("end_dim", -1)
            self.add(n.name, "flatten", n, n.args[:1], {"start_dim": start, "end_dim": end})
        elif t in _ADD_FUNCS or t in ("add", "add_"):
            if len(n.args) != 2 or not all(isinstance(a, fx.Node) for a in n.args) or n.kwargs:
                raise ValueError(f"module: operator {n.name!r}: only tensor + tensor adds "
                                 "are supported")
            self.add(n.name, "add", n, n.args)
        elif t is F.adaptive_avg_pool2d:
            self.add(n.name, "pool", n, n.args[:1], {"mode": "adaptive_avg"})
        elif t in (F.max_pool2d, F.avg_pool2d):
            raise ValueError(f"module: operator {n.name!r}: use nn.MaxPool2d / nn.AvgPool2d "
                             "modules instead of the functional pooling")
        else:
            raise ValueError(f"module: operator {n.name!r} ({getattr(t, '__name__', t)}) is "
                             "not supported; supported: conv / linear / batch norm / relu / "
                             "pooling modules, flatten and tensor adds")


def finish_ops(ops: list[Op]) -> None:
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
