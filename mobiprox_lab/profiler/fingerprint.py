"""Fingerprints and cache keys: the code, the machine, a model's structure and weights, a
configuration.

Every cache of the profiler is keyed by these: latency tables by
:func:`structure_fingerprint` and :func:`machine_key`, softmaxes and timing sessions by
:func:`model_fingerprint` and :func:`config_key`; whatever holds a configuration's outputs
(softmaxes, single-op profiles, tuner studies) also by :func:`semantics_fingerprint`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .common import EXACT

__all__ = ["code_fingerprint", "config_key", "cpu_model", "machine_key", "model_fingerprint",
           "semantics_fingerprint", "structure_fingerprint"]

_PACKAGE = Path(__file__).resolve().parent.parent  # mobiprox_lab


def _runtime_sources() -> list[Path]:
    """The kernels' and the runtime's source files, in a fixed order."""
    return sorted((_PACKAGE / "kernels").glob("*.py")) + sorted((_PACKAGE / "runtime").glob("*.py"))


def _sources_hash(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(_PACKAGE).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def code_fingerprint() -> str:
    """16 hex digits hashing the sources that set the runtime's speed:
    ``mobiprox_lab/kernels/*.py`` and ``mobiprox_lab/runtime/*.py``, read once per process
    (the code this process runs, even if the files change later)."""
    return _sources_hash(_runtime_sources())


@functools.cache
def semantics_fingerprint() -> str:
    """16 hex digits hashing the sources that decide what a configuration computes (its
    logits, hence its accuracy) on either backend: the kernels and the runtime (``numba``),
    ``reference.py`` (``reference``) and ``knobs.py`` (what each knob means), read once per
    process. A change there, a fix of how a perforated row is filled say, must not meet
    outputs cached by the old code; a change anywhere else (the tuner, the plots) keeps
    them."""
    return _sources_hash(_runtime_sources() + [_PACKAGE / "reference.py",
                                               _PACKAGE / "knobs.py"])


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_key() -> dict[str, Any]:
    """What a timing depends on besides its inputs: code fingerprint, CPU model and count,
    kernel threads (``kernels.get_num_threads``), torch threads, the allocator policy
    (``kernels.allocator_policy``), the kernel path thresholds and per-shape choices in
    force (``kernels.path_thresholds``, ``kernels.path_choices``), whether the register
    tiles are on (``kernels.get_register_tiles``), from which output size they store
    non-temporally (``kernels.get_streaming_stores``) and the BLAS the kernels call
    (``kernels.blas_library``)."""
    import torch

    from .. import kernels

    return {"code": code_fingerprint(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "kernel_threads": kernels.get_num_threads(),
            "torch_threads": torch.get_num_threads(),
            "allocator": kernels.allocator_policy(), "paths": kernels.path_thresholds(),
            "path_choices": kernels.path_choices(),
            "register_tiles": kernels.get_register_tiles(),
            "streaming_stores": kernels.get_streaming_stores(),
            "blas": kernels.blas_library()}


def structure_fingerprint(model) -> str:
    """16 hex digits hashing the operator structure (names, kinds, shapes, knobs, fusion):
    what latency depends on, not the weights."""
    ops = getattr(model, "ops", None)
    if not isinstance(ops, pd.DataFrame):
        raise ValueError(f"model: expected an ApproxModel (with an .ops table), "
                         f"got {type(model).__name__}")
    cols = [c for c in ("name", "kind", "in_shape", "out_shape", "knobs", "folded",
                        "fused_into", "params") if c in ops]
    h = hashlib.sha256(ops[cols].to_json(orient="values").encode())
    h.update(repr(getattr(model, "input_shape", None)).encode())
    return h.hexdigest()[:16]


def config_key(config: Mapping[str, int] | None) -> str:
    """A canonical text key of a configuration: its non-exact knobs, sorted (``"{}"`` = exact)."""
    items = {} if config is None else {str(n): int(k) for n, k in config.items() if int(k) != EXACT}
    return json.dumps(dict(sorted(items.items())), separators=(",", ":"))


def model_fingerprint(model) -> str:
    """A 16-hex-digit hash of a model's operators and weights (cache keys, study names).

    Uses ``model.fingerprint`` when the model defines it, else hashes the ops table (names,
    kinds, shapes, knobs) and the weights: ``model.module.state_dict()`` when present, else
    ``model.named_tensors()`` (``ApproxModel`` keeps no module reference).
    """
    fp = getattr(model, "fingerprint", None)
    if isinstance(fp, str) and fp:
        return fp
    import torch

    h = hashlib.sha256(type(model).__qualname__.encode())
    ops = getattr(model, "ops", None)
    if isinstance(ops, pd.DataFrame):
        cols = [c for c in ("name", "kind", "in_shape", "out_shape", "knobs") if c in ops]
        h.update(ops[cols].to_json(orient="values").encode())

    def feed(name: str, t) -> None:
        if isinstance(t, torch.Tensor):
            h.update(name.encode())
            h.update(np.ascontiguousarray(t.detach().cpu().numpy()).tobytes())

    module = getattr(model, "module", None)
    if isinstance(module, torch.nn.Module):
        for name, t in module.state_dict().items():
            feed(name, t)
    elif hasattr(model, "named_tensors"):
        for name, t in model.named_tensors():
            feed(name, t)
    else:
        raise ValueError(f"model: cannot fingerprint a {type(model).__name__}; expected an "
                         "ApproxModel, an object with a torch .module, or a .fingerprint str")
    return h.hexdigest()[:16]
