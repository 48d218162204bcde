"""The softmax of every configuration on every input, cached per configuration and inputs
under ``cache_dir("profiles", <model fingerprint>)``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cache, checks
from ..runtime import softmax
from .cost import CostModel
from .fingerprint import config_key, model_fingerprint, semantics_fingerprint
from .parallel import map_logits

__all__ = ["as_configs", "profile_probs", "softmax"]


def as_configs(configs, cost: CostModel) -> tuple[list[dict[str, int]], list[str]]:
    """(validated sparse configs, names) of a list of mappings, a DataFrame with a ``config``
    column (and optional ``name``), or an object with such a ``configs`` DataFrame."""
    table = getattr(configs, "configs", None)
    if isinstance(table, pd.DataFrame):
        configs = table
    if isinstance(configs, pd.DataFrame):
        if "config" not in configs:
            raise ValueError("configs: a DataFrame needs a 'config' column (op name -> knob id)")
        items = list(configs["config"])
        names = [str(n) for n in configs["name"]] if "name" in configs else None
    elif isinstance(configs, Mapping):
        raise ValueError("configs: expected a list of configurations, got a single mapping "
                         "(wrap it in a list)")
    else:
        try:
            items = list(configs)
        except TypeError:
            raise ValueError(f"configs: expected a list of mappings op name -> knob id, "
                             f"got {type(configs).__name__}") from None
        names = None
    if not items:
        raise ValueError("configs: expected at least one configuration, got none")
    out = []
    for i, c in enumerate(items):
        if isinstance(c, str):
            c = json.loads(c)
        if c is not None and not isinstance(c, Mapping):
            raise ValueError(f"configs[{i}]: expected a mapping op name -> knob id, "
                             f"got {type(c).__name__}")
        out.append(cost.sparse(c))
    return out, names or [f"conf{i}" for i in range(len(out))]


def _probs_path(fp: str, cfg: Mapping[str, int], xkey: str, backend: str) -> Path:
    key = cache.cache_key(config=config_key(cfg), x=xkey, backend=backend,
                          code=semantics_fingerprint())
    return cache.cache_dir("profiles", fp) / f"probs-{key}.npz"


def profile_probs(model, configs, x: np.ndarray, *, backend: str = "reference",
                  batch_size: int = 256, cache_results: bool = True, progress: bool = True,
                  executor=None) -> np.ndarray:
    """The softmax of every configuration on every input: float32 (n_configs, N, n_classes).

    configs : list of mappings (or a config table, see :func:`profile`).
    x : float32 (N, *input_shape). Each configuration's softmax is cached as
    ``cache_dir("profiles", fingerprint)/probs-<key>.npz`` (written atomically as it
    finishes). executor : see :func:`map_logits`. This is ``probs_by_config`` for
    ``control.simulate``.
    """
    cost = CostModel.of(model)
    cfgs, _ = as_configs(configs, cost)
    batch_size = checks.integer("batch_size", batch_size, 1)
    x = np.asarray(x)
    if x.dtype != np.float32 or x.ndim < 2 or len(x) < 1:
        raise ValueError(f"x: expected float32 (N, C, H, W) with N >= 1, got {x.dtype} {x.shape}")
    fp = model_fingerprint(model)
    xkey = cache.cache_key(x=x)
    out = np.empty((len(cfgs), len(x), model.n_classes), np.float32)
    paths = [_probs_path(fp, cfg, xkey, backend) for cfg in cfgs]
    todo: dict[str, list[int]] = {}
    for i, (cfg, path) in enumerate(zip(cfgs, paths, strict=True)):
        if cache_results and path.exists():
            out[i] = cache.load_npz(path)["probs"]
        else:
            todo.setdefault(config_key(cfg), []).append(i)
    firsts = [idx[0] for idx in todo.values()]
    for j, logits in map_logits(model, [cfgs[i] for i in firsts], x, executor=executor,
                                backend=backend, batch_size=batch_size, progress=progress,
                                desc="softmax"):
        i = firsts[j]
        out[todo[config_key(cfgs[i])]] = softmax(logits)
        if cache_results:
            cache.save_npz(paths[i], probs=out[i])
    return out
