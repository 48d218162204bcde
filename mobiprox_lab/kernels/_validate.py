"""Argument checks of the public kernels: each message names the argument and what it expects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import knobs


@dataclass(frozen=True)
class ConvSpec:
    """A validated convolution call: shapes, geometry and the knob."""

    n: int
    c: int
    h: int
    w: int
    k: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    groups: int
    ho: int
    wo: int
    knob: knobs.Knob


def _pair(value, name: str, minimum: int, meaning: str) -> tuple[int, int]:
    def as_int(v):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name}: expected an int or a pair of ints (h, w) {meaning}, "
                             f"got {value!r}")
        return int(v)

    if isinstance(value, (tuple, list)) and len(value) == 2:
        pair = as_int(value[0]), as_int(value[1])
    else:
        pair = (as_int(value),) * 2
    if min(pair) < minimum:
        raise ValueError(f"{name}: expected {meaning}, got {value!r}")
    return pair


def conv_output_hw(hw, kernel, stride=1, padding=0) -> tuple[int, int]:
    """(Ho, Wo) of a convolution or pooling window over an (H, W) map (floor mode):
    ``(H + 2 * ph - KH) // sh + 1`` and the same along W. ``hw`` / ``kernel``: (h, w)
    pairs; ``stride`` / ``padding``: int or (h, w). Not checked to be >= 1."""
    (h, w), (kh, kw) = _pair(hw, "hw", 0, "ints >= 0"), _pair(kernel, "kernel", 1, "ints >= 1")
    sh, sw = _pair(stride, "stride", 1, "ints >= 1")
    ph, pw = _pair(padding, "padding", 0, "ints >= 0")
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def check_flag(value, name: str) -> bool:
    """``value`` as a bool if it is one (Python's or NumPy's), else a ValueError naming
    ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected a bool, got {value!r}")
    return bool(value)


def check_array(a, name: str, ndim: int, layout: str) -> None:
    """``a`` must be a float32 NumPy array of rank ``ndim`` (``layout`` names the axes)."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name}: expected a float32 numpy.ndarray {layout}, "
                         f"got {type(a).__name__}")
    if a.dtype != np.float32:
        raise ValueError(f"{name}: expected dtype float32, got {a.dtype}; kernels do not cast "
                         f"silently, pass {name}.astype(np.float32)")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array {layout}, got shape {a.shape}")


def check_bias(b, k: int) -> None:
    if b is None:
        return
    check_array(b, "b", 1, f"of shape ({k},)")
    if b.shape != (k,):
        raise ValueError(f"b: expected shape ({k},) (one bias per output channel), got {b.shape}")


_SPEC_CACHE: dict[tuple, ConvSpec] = {}  # validated calls by what their checks read
_SPEC_CACHE_MAX = 4096


def _plain(v) -> bool:
    """``v`` is an exact int or a pair of exact ints (not bool, not a NumPy scalar)."""
    return type(v) is int or (type(v) is tuple and len(v) == 2 and type(v[0]) is int
                              and type(v[1]) is int)


def conv_spec(x, w, b, stride, padding, groups, knob) -> ConvSpec:
    """Validate a :func:`conv2d` call and return its geometry.

    Calls with plain arguments (ndarrays, exact ints / int pairs) are remembered by the
    arrays' shapes and dtypes and the other arguments, which is all the checks read: a
    repeated call skips them (~12 us of a ~30 us batch-1 HAR layer, 1 thread)."""
    key = None
    if (type(x) is np.ndarray and type(w) is np.ndarray
            and (b is None or type(b) is np.ndarray) and _plain(stride) and _plain(padding)
            and type(groups) is int and type(knob) is int):
        key = (x.shape, x.dtype, w.shape, w.dtype, None if b is None else (b.shape, b.dtype),
               stride, padding, groups, knob)
        spec = _SPEC_CACHE.get(key)
        if spec is not None:
            return spec
    spec = _conv_spec(x, w, b, stride, padding, groups, knob)
    if key is not None and len(_SPEC_CACHE) < _SPEC_CACHE_MAX:
        _SPEC_CACHE[key] = spec
    return spec


def _conv_spec(x, w, b, stride, padding, groups, knob) -> ConvSpec:
    check_array(x, "x", 4, "(N, C, H, W)")
    check_array(w, "w", 4, "(K, C // groups, KH, KW)")
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)) \
            or groups < 1:
        raise ValueError(f"groups: expected a positive int, got {groups!r}")
    groups = int(groups)
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    if cg * groups != c:
        raise ValueError(f"w: expected w.shape[1] * groups == C, i.e. w.shape[1] == {c // groups}"
                         f" for x with C={c} channels and groups={groups}, got w.shape[1]={cg}")
    if k % groups:
        raise ValueError(f"w: expected w.shape[0] (K={k}) to be a multiple of groups={groups}")
    if kh < 1 or kw < 1:
        raise ValueError(f"w: expected a kernel of at least 1x1, got {kh}x{kw}")
    check_bias(b, k)
    sh, sw = _pair(stride, "stride", 1, "ints >= 1")
    ph, pw = _pair(padding, "padding", 0, "ints >= 0")
    ho, wo = conv_output_hw((h, wd), (kh, kw), (sh, sw), (ph, pw))
    if ho < 1 or wo < 1:
        raise ValueError(f"x: output size would be {ho}x{wo}; expected >= 1x1 (input {h}x{wd}, "
                         f"kernel {kh}x{kw}, padding ({ph}, {pw}), stride ({sh}, {sw}))")
    spec = knobs.get(knob)
    kind = "conv" if groups == 1 else "group_conv"
    if not knobs.applicable(spec.id, kind, (ho, wo)):
        if kind == "group_conv":
            raise ValueError(f"knob: grouped / depthwise convolution (groups={groups}) accepts "
                             f"only knobs 11 and 12, got {spec.id}")
        raise ValueError(f"knob: {spec.id} ({spec.describe()}) is not applicable to an output of "
                         f"{ho}x{wo}: it would skip no {spec.axis} or leave none computed")
    return ConvSpec(n, c, h, wd, k, kh, kw, sh, sw, ph, pw, groups, ho, wo, spec)


def linear_spec(x, w, b, knob) -> knobs.Knob:
    """Validate a :func:`linear` call and return its knob."""
    check_array(x, "x", 2, "(N, F)")
    check_array(w, "w", 2, "(O, F)")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"w: expected w.shape[1] == F = {x.shape[1]} (x's features), "
                         f"got w.shape = {w.shape}")
    check_bias(b, w.shape[0])
    spec = knobs.get(knob)
    if not knobs.applicable(spec.id, "linear"):
        raise ValueError(f"knob: linear layers accept only knobs 11 and 12, got {spec.id}")
    return spec
