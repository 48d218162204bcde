"""A convolution layer prepared once for many calls: each call's checks, path choice and
packed operands resolved once per input shape, knob and thread count, as a deployed runtime
resolves them when it loads a model.

At batch 1 a ``conv2d`` call spends a few microseconds before its kernel starts (checking
its arguments, choosing a path, looking up packed weights), against 10-50 us of computing on
the HAR MobileNet's layers; a layer called again with the same shapes and knob repeats all
of it. :class:`PreparedConv2d` keeps what :func:`._conv.direct_call` resolved and makes
only the kernel call.
"""

from __future__ import annotations

import numpy as np

from . import _threads
from ._conv import conv2d, direct_call, routing_settings
from ._memory import aligned_empty
from ._validate import check_flag
from ._weights import immutable

MAX_RESOLVED_CALLS = 64  # per layer: (shape, knob, threads, settings) resolved; then forgotten


class PreparedConv2d:
    """``layer(x, knob)`` is ``conv2d(x, w, b, stride=stride, padding=padding,
    groups=groups, knob=knob, relu=relu)``, bit for bit.

    With read-only ``w`` and ``b`` (the arrays and all they view, as the runtime passes
    them), an untimed call that ``conv2d`` makes as one kernel call (one thread, fp32,
    the depthwise and most 1x1 paths: see ``kernels.set_direct_calls``) is resolved on the
    first call of its input shape, dtype, knob and thread count and then makes the kernel
    call alone. Every other call, and every call with writable weights, goes through
    ``conv2d``.
    """

    def __init__(self, w: np.ndarray, b: np.ndarray | None = None, *, stride=1, padding=0,
                 groups: int = 1, relu: bool = False):
        self.w, self.b = w, b
        self.stride, self.padding, self.groups = stride, padding, groups
        self.relu = check_flag(relu, "relu")
        self._frozen = immutable(w) and (b is None or immutable(b))
        self._calls: dict = {}  # key -> (output shape, call) or None: see __call__

    def __getstate__(self) -> dict:
        # resolved calls are closures over this process's packings: resolved again
        return {**self.__dict__, "_calls": {}}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._frozen:  # a pickle does not keep NumPy's read-only flag: put it back
            for a in (self.w, self.b):
                if a is not None:
                    a.flags.writeable = False

    def __repr__(self) -> str:
        shape = getattr(self.w, "shape", None)
        return (f"PreparedConv2d(w {shape}, bias={self.b is not None}, stride={self.stride!r},"
                f" padding={self.padding!r}, groups={self.groups!r}, relu={self.relu})")

    def __call__(self, x: np.ndarray, knob: int = 11) -> np.ndarray:
        """x float32 (N, C, H, W) -> float32 (N, K, Ho, Wo) under ``knob``."""
        if self._frozen and type(x) is np.ndarray:
            key = (x.shape, x.dtype, knob, _threads.get_num_threads(), routing_settings())
            try:
                resolved = self._calls.get(key, False)
            except TypeError:  # an unhashable knob: conv2d says what it expected
                resolved = None
            if resolved is False:
                resolved = direct_call(x, self.w, self.b, self.stride, self.padding,
                                       self.groups, knob, self.relu)
                if len(self._calls) >= MAX_RESOLVED_CALLS:
                    self._calls.clear()
                self._calls[key] = resolved
            if resolved is not None:
                shape, call = resolved
                out = aligned_empty(shape)
                call(np.ascontiguousarray(x), out)
                return out
        return conv2d(x, self.w, self.b, stride=self.stride, padding=self.padding,
                      groups=self.groups, knob=knob, relu=self.relu)
