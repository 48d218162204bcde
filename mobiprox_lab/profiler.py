"""Profiler: the linear cost model, measured latency / energy, accuracy and confidence statistics.

Cost model (ApproxTuner's, linear)
    ``cost(config) = sum over ops of flops(op) / nominal_speedup(knob(op))`` with the per-op
    FLOPs of ``ApproxModel.ops`` (per sample) and the knob catalogue's nominal speedups;
    ``predicted speedup = cost(exact) / cost(config)``. The **fp16 fraction** of a config is
    the share of the exact FLOPs run under an fp16 knob (12, 151-168, 261-269); the energy
    model credits it.

Measured profile (:func:`profile`), one row per configuration
    Latency on the ``numba`` backend (real kernels): ``warmup`` untimed runs of the first
    ``batch_size`` inputs, then ``repeats`` timed runs; latency per inference = batch wall
    time / batch size (median and std over the repeats). fp16 is only emulated on a CPU
    (slower than fp32), so the timed configuration is the fp32 twin (same perforation /
    sampling, fp32 arithmetic); the energy model credits the fp16 share of the FLOPs.
    Accuracy and confidence statistics come from the ``reference`` backend (fast PyTorch
    simulation) on all of ``data``; numba logits of the configuration itself on the timed
    batch are compared with the reference ones (``agreement``).

Every artefact is cached under ``cache_dir("profiles", <model fingerprint>)``: one JSON row
per (configuration, data, parameters) and one ``.npz`` softmax per (configuration, inputs),
written atomically as each configuration finishes, so an interrupted profile keeps its
finished rows and a rerun only measures what is missing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import cache, knobs

__all__ = [
    "CostModel",
    "config_cost",
    "config_key",
    "confidence_arrays",
    "batched_logits",
    "data_arrays",
    "fp16_fraction",
    "fp32_twin",
    "map_logits",
    "model_fingerprint",
    "per_class",
    "predicted_speedup",
    "profile",
    "profile_probs",
    "softmax",
    "softmax_stats",
]

EXACT = knobs.EXACT
_MAX_KNOB = max(knobs.KNOBS) + 1
_INV_SPEEDUP = np.zeros(_MAX_KNOB)  # 1 / nominal speedup, by knob id
_IS_FP16 = np.zeros(_MAX_KNOB, bool)
for _k, _knob in knobs.KNOBS.items():
    _INV_SPEEDUP[_k] = 1.0 / _knob.speedup
    _IS_FP16[_k] = _knob.is_fp16


# ------------------------------------------------------------------------------ cost model


class CostModel:
    """The linear cost model of one network, from its ``ops`` table.

    ops : DataFrame with (at least) ``name``, ``flops`` (per sample) and ``knobs`` (applicable
        ids), one row per operator in execution order (``ApproxModel.ops``).

    Configurations are mappings op name -> knob id (missing ops run exact, 11). Vectorised
    forms take a knob matrix ``K`` int (n_configs, n_ops) in the order of :attr:`names`.
    """

    def __init__(self, ops: pd.DataFrame) -> None:
        if not isinstance(ops, pd.DataFrame):
            raise ValueError(f"ops: expected a DataFrame (ApproxModel.ops), "
                             f"got {type(ops).__name__}")
        missing = {"name", "flops", "knobs"} - set(ops.columns)
        if missing:
            raise ValueError(f"ops: expected columns name, flops, knobs; missing {sorted(missing)}")
        self.names: list[str] = [str(n) for n in ops["name"]]
        self.flops = np.asarray(ops["flops"], dtype=np.float64)
        if np.any(~np.isfinite(self.flops) | (self.flops < 0)):
            raise ValueError("ops: expected finite flops >= 0 for every operator")
        self.total_flops = float(self.flops.sum())
        if self.total_flops <= 0:
            raise ValueError("ops: the operators' flops sum to 0; nothing to model")
        self.knobs: list[tuple[int, ...]] = [tuple(int(k) for k in ks) for ks in ops["knobs"]]
        self.index = {n: i for i, n in enumerate(self.names)}
        if len(self.index) != len(self.names):
            raise ValueError("ops: operator names must be unique")

    @classmethod
    def of(cls, model_or_ops) -> CostModel:
        """A cost model from an ``ApproxModel`` (its ``.ops``), an ops DataFrame or itself."""
        if isinstance(model_or_ops, CostModel):
            return model_or_ops
        if isinstance(model_or_ops, pd.DataFrame):
            return cls(model_or_ops)
        ops = getattr(model_or_ops, "ops", None)
        if not isinstance(ops, pd.DataFrame):
            raise ValueError(f"model: expected an ApproxModel (with an .ops table) or an ops "
                             f"DataFrame, got {type(model_or_ops).__name__}")
        return cls(ops)

    # --------------------------------------------------------------------- one config

    def normalize(self, config: Mapping[str, int] | None) -> dict[str, int]:
        """The complete configuration (every op, missing -> 11), validated against ``ops``."""
        full = dict.fromkeys(self.names, EXACT)
        if config is None:
            return full
        if not isinstance(config, Mapping):
            raise ValueError(f"config: expected a mapping op name -> knob id, "
                             f"got {type(config).__name__}")
        for name, k in config.items():
            i = self.index.get(name)
            if i is None:
                raise ValueError(f"config: unknown operator {name!r}; expected one of "
                                 f"{len(self.names)} names in ops.name (e.g. {self.names[0]!r})")
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
                raise ValueError(f"config[{name!r}]: expected an int knob id, got {k!r}")
            if int(k) not in self.knobs[i]:
                raise ValueError(f"config[{name!r}]: knob {int(k)} is not applicable; expected "
                                 f"one of {list(self.knobs[i])}")
            full[name] = int(k)
        return full

    def sparse(self, config: Mapping[str, int] | None) -> dict[str, int]:
        """The validated configuration without its exact (11) entries, in op order."""
        full = self.normalize(config)
        return {n: k for n, k in full.items() if k != EXACT}

    def vector(self, config: Mapping[str, int] | None) -> np.ndarray:
        """Knob ids int64 (n_ops,) in op order."""
        full = self.normalize(config)
        return np.fromiter((full[n] for n in self.names), np.int64, len(self.names))

    def cost(self, config: Mapping[str, int] | None) -> float:
        """Linear cost (FLOPs per sample / nominal speedup) of ``config``."""
        return float(self.costs(self.vector(config)[None])[0])

    def speedup(self, config: Mapping[str, int] | None) -> float:
        """Predicted speedup ``cost(exact) / cost(config)`` (1.0 for exact)."""
        return self.total_flops / self.cost(config)

    def fp16_fraction(self, config: Mapping[str, int] | None) -> float:
        """Share of the exact FLOPs that ``config`` runs with an fp16 knob, in [0, 1]."""
        return float(self.fp16_fractions(self.vector(config)[None])[0])

    # ---------------------------------------------------------------------- vectorised

    def matrix(self, configs: Sequence[Mapping[str, int] | None]) -> np.ndarray:
        """Knob matrix int64 (n_configs, n_ops) of a list of configurations."""
        if not configs:
            return np.zeros((0, len(self.names)), np.int64)
        return np.stack([self.vector(c) for c in configs])

    def _check_matrix(self, K) -> np.ndarray:
        K = np.asarray(K)
        if K.ndim != 2 or K.shape[1] != len(self.names) or not np.issubdtype(K.dtype, np.integer):
            raise ValueError(f"K: expected an int knob matrix (n_configs, {len(self.names)}), "
                             f"got {K.dtype} {K.shape}")
        if K.size and (K.min() < 0 or K.max() >= _MAX_KNOB or _INV_SPEEDUP[K].min() == 0):
            raise ValueError(f"K: unknown knob ids; valid ids are {knobs.VALID_RANGES}")
        return K

    def costs(self, K) -> np.ndarray:
        """Costs float64 (n_configs,) of a knob matrix."""
        K = self._check_matrix(K)
        return _INV_SPEEDUP[K] @ self.flops

    def speedups(self, K) -> np.ndarray:
        """Predicted speedups float64 (n_configs,) of a knob matrix."""
        return self.total_flops / self.costs(K)

    def fp16_fractions(self, K) -> np.ndarray:
        """fp16 FLOP shares float64 (n_configs,) of a knob matrix."""
        K = self._check_matrix(K)
        return (_IS_FP16[K] @ self.flops) / self.total_flops


def config_cost(model, config: Mapping[str, int] | None) -> float:
    """Linear cost of ``config`` on ``model`` (an ApproxModel or its ops table)."""
    return CostModel.of(model).cost(config)


def predicted_speedup(model, config: Mapping[str, int] | None) -> float:
    """Predicted (linear cost model) speedup of ``config`` over exact."""
    return CostModel.of(model).speedup(config)


def fp16_fraction(model, config: Mapping[str, int] | None) -> float:
    """Share of ``model``'s FLOPs run in fp16 under ``config``."""
    return CostModel.of(model).fp16_fraction(config)


# ------------------------------------------------------------------------ cache keys


def config_key(config: Mapping[str, int] | None) -> str:
    """A canonical text key of a configuration: its non-exact knobs, sorted (``"{}"`` = exact)."""
    items = {} if config is None else {str(n): int(k) for n, k in config.items() if int(k) != EXACT}
    return json.dumps(dict(sorted(items.items())), separators=(",", ":"))


def model_fingerprint(model) -> str:
    """A 16-hex-digit hash of a model's operators and weights (cache keys, study names).

    Uses ``model.fingerprint`` when the model defines it, else hashes the ops table (names,
    kinds, shapes, knobs) and the weights: ``model.module.state_dict()`` when present, else the
    runtime's per-operator tensors (``ApproxModel`` keeps no module reference).
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
    op_list = getattr(model, "_op_list", None)
    if isinstance(module, torch.nn.Module):
        for name, t in module.state_dict().items():
            feed(name, t)
    elif op_list is not None:
        for op in op_list:
            for key, value in sorted(getattr(op, "params", {}).items()):
                if isinstance(value, torch.nn.Module):
                    for name, t in value.state_dict().items():
                        feed(f"{op.name}.{key}.{name}", t)
                elif key != "exec":
                    feed(f"{op.name}.{key}", value)
    else:
        raise ValueError(f"model: cannot fingerprint a {type(model).__name__}; expected an "
                         "ApproxModel, an object with a torch .module, or a .fingerprint str")
    return h.hexdigest()[:16]


def data_arrays(data, name: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a :class:`~mobiprox_lab.datasets.Split` (or an ``(x, y)`` pair), validated:
    x float32 (N, ...) with N >= 1, y int (N,)."""
    if hasattr(data, "x") and hasattr(data, "y"):
        x, y = data.x, data.y
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    else:
        raise ValueError(f"{name}: expected a Split (x, y, group) or an (x, y) pair, "
                         f"got {type(data).__name__}")
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.float32 or x.ndim < 2 or len(x) < 1:
        raise ValueError(f"{name}.x: expected float32 (N, C, H, W) with N >= 1, "
                         f"got {x.dtype} {x.shape}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}.y: expected int class indices of shape ({len(x)},), "
                         f"got {y.dtype} {y.shape}")
    return x, y.astype(np.int64, copy=False)


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------ statistics


def softmax_stats(probs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy and confidence statistics of one softmax ``probs`` (N, C) against ``y`` (N,).

    Returns ``accuracy`` (%), ``conf_mean`` / ``conf_correct`` / ``conf_wrong`` (mean softmax at
    the predicted class over all / correct / wrong predictions; NaN if there are none), and
    per class lists (length C): ``acc_class`` (% of the inputs of true class k predicted
    right, NaN if k is absent), ``conf_mean_class`` / ``conf_correct_class`` /
    ``conf_wrong_class`` over the inputs **predicted** as k (what a controller sees).
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] != len(y):
        raise ValueError(f"probs: expected (N={len(y)}, n_classes), got {probs.shape}")
    n_classes = probs.shape[1]
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(len(pred)), pred].astype(np.float64)
    ok = pred == y

    def mean(mask) -> float:
        return float(conf[mask].mean()) if mask.any() else math.nan

    acc_class = [float(ok[y == k].mean() * 100) if (y == k).any() else math.nan
                 for k in range(n_classes)]
    return {
        "accuracy": float(ok.mean() * 100),
        "conf_mean": float(conf.mean()),
        "conf_correct": mean(ok),
        "conf_wrong": mean(~ok),
        "acc_class": acc_class,
        "conf_mean_class": [mean(pred == k) for k in range(n_classes)],
        "conf_correct_class": [mean((pred == k) & ok) for k in range(n_classes)],
        "conf_wrong_class": [mean((pred == k) & ~ok) for k in range(n_classes)],
    }


# ------------------------------------------------------------------------ softmaxes


def _as_configs(configs, cost: CostModel) -> tuple[list[dict[str, int]], list[str]]:
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
    key = cache.cache_key(config=config_key(cfg), x=xkey, backend=backend)
    return cache.cache_dir("profiles", fp) / f"probs-{key}.npz"


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax float32 (N, C) of logits (N, C)."""
    z = np.asarray(logits, np.float32)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    return z / z.sum(axis=1, keepdims=True)


def batched_logits(model, x: np.ndarray, config=None, *, backend: str = "reference",
                   batch_size: int = 256) -> np.ndarray:
    """``model.run`` over ``x`` in batches: logits float32 (N, n_classes)."""
    out = np.empty((len(x), model.n_classes), np.float32)
    for i in range(0, len(x), batch_size):
        out[i:i + batch_size] = model.run(x[i:i + batch_size], config, backend=backend)
    return out


class _Payload:
    """A model and its inputs, shipped to executor workers once.

    Pickles (with cloudpickle: the runtime's execution steps are closures) to a blob made
    once per payload; a worker process unpickles a given payload once and keeps it
    (``_WORKER_PAYLOADS``), so later tasks only pay for moving the bytes (process pools) or
    nothing at all (a Dask client, which scatters the payload to every worker up front).
    """

    def __init__(self, model, x: np.ndarray, key: str) -> None:
        self.model, self.x, self.key = model, x, key
        self.parent_pid = os.getpid()
        self._blob: bytes | None = None

    def __reduce__(self):
        if self._blob is None:
            import cloudpickle

            self._blob = cloudpickle.dumps((self.model, self.x))
        return _payload_from_blob, (self.key, self.parent_pid, self._blob)


_WORKER_PAYLOADS: dict[str, _Payload] = {}
_SCATTERED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # client -> {key: future}


def _payload_from_blob(key: str, parent_pid: int, blob: bytes) -> _Payload:
    payload = _WORKER_PAYLOADS.get(key)
    if payload is None:
        import pickle

        model, x = pickle.loads(blob)
        payload = _Payload(model, x, key)
        payload.parent_pid = parent_pid
        if len(_WORKER_PAYLOADS) >= 4:
            _WORKER_PAYLOADS.clear()
        _WORKER_PAYLOADS[key] = payload
    return payload


def _remote_logits(payload: _Payload, config: dict, backend: str, batch_size: int) -> np.ndarray:
    """Executor task: logits of one configuration on the payload's inputs."""
    if os.getpid() != payload.parent_pid:
        import torch

        if torch.get_num_threads() != 1:  # workers parallelise across tasks, not inside one
            torch.set_num_threads(1)
    return batched_logits(payload.model, payload.x, config, backend=backend,
                          batch_size=batch_size)


def map_logits(model, configs: Sequence[Mapping[str, int]], x: np.ndarray, *, executor=None,
               backend: str = "reference", batch_size: int = 256, progress: bool = True,
               desc: str = "configs") -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(i, logits float32 (N, n_classes))`` for every configuration, as each finishes.

    executor : None (run here, in order), a ``concurrent.futures`` executor, or a
        ``dask.distributed.Client`` (the model and ``x`` are scattered to every worker once
        per client and kept there for later calls with the same model and inputs).
        Either way the logits are those of :func:`batched_logits`; unfinished tasks are
        cancelled if the consumer stops early (e.g. on KeyboardInterrupt).
    """
    from tqdm.auto import tqdm

    configs = [dict(c) for c in configs]
    bar = tqdm(total=len(configs), desc=desc, disable=not progress or not configs, leave=False)
    try:
        if executor is None:
            for i, cfg in enumerate(configs):
                yield i, batched_logits(model, x, cfg, backend=backend, batch_size=batch_size)
                bar.update()
            return
        if not hasattr(executor, "submit"):
            raise ValueError(f"executor: expected an object with .submit (a concurrent.futures "
                             f"executor or a dask Client), got {type(executor).__name__}")
        payload = _Payload(model, x, f"{model_fingerprint(model)}-{cache.cache_key(x=x)}")
        is_dask = hasattr(executor, "scatter")
        if is_dask:
            from distributed import as_completed

            scattered = _SCATTERED.setdefault(executor, {})
            if payload.key not in scattered:
                if len(scattered) >= 3:  # keep a few (tune / test inputs), free the oldest
                    scattered.pop(next(iter(scattered)))
                scattered[payload.key] = executor.scatter(payload, broadcast=True, hash=False)
            payload = scattered[payload.key]
        else:
            from concurrent.futures import as_completed
        futures = {executor.submit(_remote_logits, payload, cfg, backend, batch_size): i
                   for i, cfg in enumerate(configs)}
        try:
            for fut in as_completed(list(futures)):
                yield futures[fut], np.asarray(fut.result(), np.float32)
                bar.update()
        finally:
            for fut in futures:
                fut.cancel()
    finally:
        bar.close()


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
    cfgs, _ = _as_configs(configs, cost)
    batch_size = _positive_int("batch_size", batch_size)
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


# ------------------------------------------------------------------------ the profile


def _energy_model():
    """The energy module, or None while it is not available."""
    try:
        from . import energy
    except ImportError:  # pragma: no cover - the module ships with the package
        return None
    return energy


def fp32_twin(config: Mapping[str, int]) -> dict[str, int]:
    """``config`` with every fp16 knob replaced by its fp32 twin (12 -> 11, 151 -> 121 ...)."""
    return {op: knobs.get(k).fp32_twin for op, k in config.items()}


def _time(model, config, xb: np.ndarray, warmup: int, repeats: int,
          meter_cls=None) -> tuple[list[float], list[float], np.ndarray]:
    """Per-inference wall times (s), RAPL joules per inference and the last logits."""
    prepared = model.prepare_config(config) if hasattr(model, "prepare_config") else config
    z = None
    for _ in range(warmup):
        z = model.run(xb, prepared, backend="numba")
    times, joules = [], []
    for _ in range(repeats):
        meter = meter_cls() if meter_cls is not None else None
        if meter is not None:
            meter.start()
        t0 = time.perf_counter()
        z = model.run(xb, prepared, backend="numba")
        times.append((time.perf_counter() - t0) / len(xb))
        if meter is not None:
            meter.stop()
            joules.append(meter.total_j / len(xb))
    return times, joules, z


def _measure(model, cfg: dict[str, int], x: np.ndarray, y: np.ndarray, probs: np.ndarray, *,
             batch_size: int, warmup: int, repeats: int, meter_cls) -> dict[str, Any]:
    """Raw measurements of one configuration (what the row cache stores)."""
    xb = np.ascontiguousarray(x[:batch_size])
    twin = fp32_twin(cfg)
    times, joules, z = _time(model, twin, xb, warmup, repeats, meter_cls)
    emulated = times
    if twin != cfg:  # fp16 is emulated on a CPU: time it once, check agreement on it
        emulated, _, z = _time(model, cfg, xb, 0, 1)
    ref = probs[: len(xb)]
    p_numba = softmax(z)
    row = {
        "latency_s": statistics.median(times),
        "latency_std_s": statistics.pstdev(times) if len(times) > 1 else 0.0,
        "emulated_latency_s": statistics.median(emulated),
        "agreement": float((p_numba.argmax(1) == ref.argmax(1)).mean()),
        "max_prob_diff": float(np.abs(p_numba - ref).max()),
        "energy_j": statistics.median(joules) if joules else math.nan,
        "n_timed": int(len(xb)),
    }
    row.update(softmax_stats(probs, y))
    return row


def profile(model, configs, data, *, batch_size: int = 64, warmup: int = 2, repeats: int = 5,
            energy_profile=None, cache: bool = True, progress: bool = True,
            rapl: bool | None = None) -> pd.DataFrame:
    """Measure every configuration of ``configs`` on ``data``; one row per configuration.

    model : an ``ApproxModel``.
    configs : list of mappings op name -> knob id (missing -> 11), a DataFrame with a
        ``config`` column (and optional ``name``), or a ``TuneResult``. Row order follows it.
    data : a ``Split`` (or ``(x, y)``): accuracy / confidences on all of it, latency on its
        first ``batch_size`` inputs.
    batch_size, warmup, repeats : latency measurement (numba backend).
    energy_profile : ``energy.PowerProfile`` for the energy model (default ``energy.PHONE``).
    cache : reuse / store per-configuration rows and softmaxes under ``cache_dir("profiles")``.
    rapl : measure joules with RAPL; None = when ``energy.rapl_available()``.

    Columns
        name, config (dict of the non-exact knobs), n_approx_ops;
        predicted_speedup (linear cost model), fp16_fraction (share of FLOPs in fp16);
        latency_s, latency_std_s (s per inference, median / std over repeats) of the
        configuration's **fp32 twin** (fp16 knobs replaced by their fp32 counterparts: a
        CPU only emulates fp16, 10-30x slower than fp32; the energy model credits the fp16
        share instead), emulated_latency_s (one timed run of the configuration as is),
        speedup (exact latency / latency; the exact configuration is always measured,
        1.0 on its own row), n_timed (inputs per timed batch);
        accuracy (%), qos_loss (pp, exact accuracy - accuracy), agreement (share of the timed
        batch where numba and reference predict the same class), max_prob_diff;
        conf_mean, conf_correct, conf_wrong (mean softmax at the predicted class over all /
        correct / wrong predictions);
        per class k (0-based): acc_c{k} (%, true class k), qos_loss_c{k} (pp),
        conf_mean_c{k}, conf_correct_c{k}, conf_wrong_c{k} (over inputs *predicted* as k;
        NaN where there are none) - see :func:`confidence_arrays` / :func:`per_class`;
        rel_inference_energy, rel_system_energy (energy model, exact = 1.0), energy_j
        (RAPL joules per inference, NaN when not measured), energy_source ("rapl" or "model").
    """
    cost = CostModel.of(model)
    cfgs, names = _as_configs(configs, cost)
    x, y = data_arrays(data)
    batch_size = _positive_int("batch_size", batch_size)
    warmup = _positive_int("warmup", warmup, 0)
    repeats = _positive_int("repeats", repeats)
    energy = _energy_model()
    meter_cls = None
    if energy is not None and rapl is not False:
        ok = bool(energy.rapl_available())
        if rapl and not ok:
            raise ValueError(f"rapl: RAPL counters unavailable: {energy.rapl_available().reason}")
        meter_cls = energy.RaplMeter if ok else None
    fp = model_fingerprint(model)
    dkey = _data_key(x, y)
    exact: dict[str, int] = {}
    todo = [exact] + [c for c in cfgs if c]
    raw: dict[str, dict] = {}
    from tqdm.auto import tqdm

    unique = list({config_key(c): c for c in todo}.items())
    for ckey, cfg in tqdm(unique, desc="profile", disable=not progress):
        key = _row_key(ckey, dkey, batch_size, warmup, repeats, meter_cls is not None)
        path = _cache_dir("profiles", fp) / f"row-{key}.json"
        if cache and path.exists():
            raw[ckey] = json.loads(path.read_text())
            continue
        probs = profile_probs(model, [cfg], x, cache_results=cache, progress=False)[0]
        raw[ckey] = _measure(model, cfg, x, y, probs, batch_size=batch_size, warmup=warmup,
                             repeats=repeats, meter_cls=meter_cls)
        if cache:
            _save_json(path, raw[ckey])
    return _assemble(cfgs, names, raw, cost, energy, energy_profile,
                     "rapl" if meter_cls is not None else "model")


# aliases so that profile()'s ``cache`` flag can shadow the module name inside it
_cache_dir = cache.cache_dir
_save_json = cache.save_json


def _data_key(x: np.ndarray, y: np.ndarray) -> str:
    return cache.cache_key(x=x, y=y)


def _row_key(ckey: str, dkey: str, batch_size: int, warmup: int, repeats: int,
             rapl: bool) -> str:
    """Cache key of one profile row (configuration key, data key, measurement parameters)."""
    return cache.cache_key(config=ckey, data=dkey, batch_size=batch_size, warmup=warmup,
                           repeats=repeats, rapl=rapl, version=2)


def _assemble(cfgs, names, raw, cost: CostModel, energy, energy_profile,
              source: str) -> pd.DataFrame:
    base = raw[config_key({})]
    n_classes = len(base["acc_class"])
    rows = []
    for cfg, name in zip(cfgs, names, strict=True):
        r = raw[config_key(cfg)]
        f16 = cost.fp16_fraction(cfg)
        row = {
            "name": name, "config": dict(cfg), "n_approx_ops": len(cfg),
            "predicted_speedup": cost.speedup(cfg), "fp16_fraction": f16,
            "latency_s": r["latency_s"], "latency_std_s": r["latency_std_s"],
            "emulated_latency_s": r["emulated_latency_s"],
            "speedup": base["latency_s"] / r["latency_s"], "n_timed": r["n_timed"],
            "accuracy": r["accuracy"], "qos_loss": base["accuracy"] - r["accuracy"],
            "agreement": r["agreement"], "max_prob_diff": r["max_prob_diff"],
            "conf_mean": r["conf_mean"], "conf_correct": r["conf_correct"],
            "conf_wrong": r["conf_wrong"],
        }
        for k in range(n_classes):
            row[f"acc_c{k}"] = r["acc_class"][k]
            row[f"qos_loss_c{k}"] = base["acc_class"][k] - r["acc_class"][k]
            row[f"conf_mean_c{k}"] = r["conf_mean_class"][k]
            row[f"conf_correct_c{k}"] = r["conf_correct_class"][k]
            row[f"conf_wrong_c{k}"] = r["conf_wrong_class"][k]
        if energy is not None:
            kw = {} if energy_profile is None else {"profile": energy_profile}
            row["rel_inference_energy"] = float(energy.relative_inference_energy(
                r["latency_s"], base["latency_s"], f16, **kw))
            row["rel_system_energy"] = float(energy.relative_system_energy(
                r["latency_s"], base["latency_s"], f16, **kw))
        else:  # pragma: no cover - the energy module ships with the package
            row["rel_inference_energy"] = row["rel_system_energy"] = math.nan
        row["energy_j"] = r["energy_j"]
        row["energy_source"] = source if energy is not None else "unavailable"
        rows.append(row)
    return pd.DataFrame(rows)


def per_class(frame: pd.DataFrame, stat: str) -> np.ndarray:
    """A per-class statistic of a :func:`profile` frame as float64 (n_configs, n_classes).

    stat : "acc", "qos_loss", "conf_mean", "conf_correct" or "conf_wrong".
    """
    stats = ("acc", "qos_loss", "conf_mean", "conf_correct", "conf_wrong")
    if stat not in stats:
        raise ValueError(f"stat: expected one of {stats}, got {stat!r}")
    cols = []
    k = 0
    while f"{stat}_c{k}" in frame.columns:
        cols.append(f"{stat}_c{k}")
        k += 1
    if not cols:
        raise ValueError(f"frame: no {stat}_c0.. columns; expected a profile() frame")
    return frame[cols].to_numpy(np.float64)


def confidence_arrays(frame: pd.DataFrame, *, fill: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(conf_correct, conf_wrong)``, each float64 (n_configs, n_classes), for the
    ``ConfidenceController``: mean confidence on correct / wrong predictions per predicted
    class. ``fill`` replaces a class's NaN (never predicted right / wrong) with the
    configuration's overall value (and that, if NaN too, with 1.0 / 0.0)."""
    cc, cw = per_class(frame, "conf_correct"), per_class(frame, "conf_wrong")
    if fill:
        oc = frame["conf_correct"].to_numpy(np.float64)
        ow = frame["conf_wrong"].to_numpy(np.float64)
        oc, ow = np.where(np.isnan(oc), 1.0, oc), np.where(np.isnan(ow), 0.0, ow)
        cc = np.where(np.isnan(cc), oc[:, None], cc)
        cw = np.where(np.isnan(cw), ow[:, None], cw)
    return cc, cw
