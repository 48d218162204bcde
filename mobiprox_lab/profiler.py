"""Profiler: cost models (measured latency table / FLOPs), measured profiles, statistics.

Cost models (:class:`CostModel`), ``predicted speedup = cost(exact) / cost(config)``
    ``kind="measured"`` (the tuner's default, :meth:`CostModel.measured`): the cost of a
    configuration is the sum over operators of the op's own time under its knob, from a
    :class:`LatencyTable` measured on this machine (:func:`measure_latency_table`).
    ``kind="flops"`` (ApproxTuner's linear model, :meth:`CostModel.of`):
    ``sum over ops of flops(op) / nominal_speedup(knob(op))`` with the knob catalogue's
    nominal speedups (fp16 x1.5 included: the model as ApproxTuner states it).
    In both, a batch norm folded into its convolution (``ops.folded``) costs nothing: it no
    longer runs. The **fp16 fraction** of a config is the share of the exact FLOPs run
    under an fp16 knob (informational: fp16 is an accuracy emulation on a CPU).

Measured latency table (:func:`measure_latency_table`)
    The runtime executes fused steps (a conv with its folded batch norm and ReLU). For every
    knob ``k`` one design configuration sets ``k`` on every step head it applies to; one more
    per fused position sets 12 on the fused members. Each design configuration is run with
    ``ApproxModel.time_steps`` (BLAS limited to one thread, as in ``run``), ``repeats``
    rounds in a fresh random order per round, at each batch size, each followed by a timed
    ``ApproxModel.run`` of the same configuration. ``time_steps`` only has a wall clock and
    times steps outside ``run``'s execution path, so each design configuration's median step
    times are scaled to sum to the median whole-run time of that configuration on the
    table's clock (CPU seconds by default: robust to other processes' load; or wall). The
    op's own time is the
    median over rounds of its step's time (a head; an exact head pools every configuration
    that leaves its step exact) or of the step's extra time over exact (a fused member under
    12; 0 under 11), per inference (batch time / batch size), with its quartiles.
    Cached per (operator structure, batch sizes, repeats, code fingerprint, CPU, threads).

Measured profile (:func:`profile`), one row per configuration
    Every configuration, exact included, is timed round-robin in one session on the
    ``numba`` backend as it is (fp16 emulation included: nothing is substituted), at
    ``batch_size`` and at batch 1: ``warmup`` untimed rounds, then ``repeats`` rounds, each
    running every configuration once in a rotated order; median, std and quartiles per
    inference, on two clocks: CPU seconds (``time.process_time``; the default for speedups:
    robust to other processes' load) and wall seconds. Accuracy and confidences come from
    the ``reference`` backend on all of
    ``data``; the numba logits on the timed batch are compared with them (``agreement``).
    Energy is the law of :mod:`mobiprox_lab.energy` at the measured speedup, or the
    counters' joules where Zeus reads them.

Caches under ``cache_dir("profiles", <model fingerprint>)`` (softmaxes, one per config and
inputs; timing sessions keyed by configurations, batch, parameters and :func:`machine_key`)
and ``cache_dir("latency", <structure fingerprint>)`` (latency tables), written atomically.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import statistics
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import cache, knobs

__all__ = [
    "CLOCKS",
    "PROFILE_BATCH_SIZE",
    "SMALL_BATCH_REPEATS",
    "CostModel",
    "LatencyTable",
    "batched_logits",
    "code_fingerprint",
    "confidence_arrays",
    "config_cost",
    "config_key",
    "cpu_model",
    "data_arrays",
    "fp16_fraction",
    "machine_key",
    "map_logits",
    "measure_latency_table",
    "model_fingerprint",
    "per_class",
    "predicted_speedup",
    "profile",
    "profile_probs",
    "softmax",
    "softmax_stats",
    "structure_fingerprint",
]

EXACT = knobs.EXACT
PROFILE_BATCH_SIZE = 32
"""Inputs per timed batch of the profile and of the latency table's first batch size."""
SMALL_BATCH_REPEATS = 3
"""Batch sizes below the largest timed one get this many times the rounds (they are cheap,
and short runs are noisier)."""
_MAX_KNOB = max(knobs.KNOBS) + 1
_INV_SPEEDUP = np.zeros(_MAX_KNOB)  # 1 / nominal speedup, by knob id
_IS_FP16 = np.zeros(_MAX_KNOB, bool)
for _k, _knob in knobs.KNOBS.items():
    _INV_SPEEDUP[_k] = 1.0 / _knob.speedup
    _IS_FP16[_k] = _knob.is_fp16


# ------------------------------------------------------------------------------ cost model


class CostModel:
    """The cost model of one network, from its ``ops`` table: FLOPs or a measured table.

    ops : DataFrame with (at least) ``name``, ``flops`` (per sample) and ``knobs`` (applicable
        ids), one row per operator in execution order (``ApproxModel.ops``); an optional
        ``folded`` column marks batch norms folded away (cost 0).
    latency : a :class:`LatencyTable` for the measured kind (None: the FLOP model).
    batch_size : which of the table's batch sizes to use (default: its first).

    Configurations are mappings op name -> knob id (missing ops run exact, 11). Vectorised
    forms take a knob matrix ``K`` int (n_configs, n_ops) in the order of :attr:`names`.
    ``kind`` is "flops" or "measured"; ``costs`` are FLOPs per sample or seconds per
    inference accordingly.
    """

    def __init__(self, ops: pd.DataFrame, latency: LatencyTable | None = None, *,
                 batch_size: int | None = None) -> None:
        if not isinstance(ops, pd.DataFrame):
            raise ValueError(f"ops: expected a DataFrame (ApproxModel.ops), "
                             f"got {type(ops).__name__}")
        missing = {"name", "flops", "knobs"} - set(ops.columns)
        if missing:
            raise ValueError(f"ops: expected columns name, flops, knobs; missing {sorted(missing)}")
        self.names: list[str] = [str(n) for n in ops["name"]]
        self.flops = np.asarray(ops["flops"], dtype=np.float64).copy()
        if np.any(~np.isfinite(self.flops) | (self.flops < 0)):
            raise ValueError("ops: expected finite flops >= 0 for every operator")
        if "folded" in ops:
            self.flops[np.asarray(ops["folded"], bool)] = 0.0  # folded away: never runs
        self.total_flops = float(self.flops.sum())
        if self.total_flops <= 0:
            raise ValueError("ops: the operators' flops sum to 0; nothing to model")
        self.knobs: list[tuple[int, ...]] = [tuple(int(k) for k in ks) for ks in ops["knobs"]]
        self.index = {n: i for i, n in enumerate(self.names)}
        if len(self.index) != len(self.names):
            raise ValueError("ops: operator names must be unique")
        self.latency = latency
        self.batch_size: int | None = None
        if latency is None:
            self.kind = "flops"
            self._table = None
            self.exact_cost = self.total_flops
        else:
            if not isinstance(latency, LatencyTable):
                raise ValueError(f"latency: expected a LatencyTable (measure_latency_table), "
                                 f"got {type(latency).__name__}")
            self.kind = "measured"
            self.batch_size = latency.batch_sizes[0] if batch_size is None else batch_size
            self._table = latency.matrix(self.names, self.knobs, self.batch_size)
            self.exact_cost = float(self._table[:, EXACT].sum())

    @classmethod
    def of(cls, model_or_ops) -> CostModel:
        """The FLOP model of an ``ApproxModel`` (its ``.ops``), an ops DataFrame, or itself."""
        if isinstance(model_or_ops, CostModel):
            return model_or_ops
        if isinstance(model_or_ops, pd.DataFrame):
            return cls(model_or_ops)
        ops = getattr(model_or_ops, "ops", None)
        if not isinstance(ops, pd.DataFrame):
            raise ValueError(f"model: expected an ApproxModel (with an .ops table) or an ops "
                             f"DataFrame, got {type(model_or_ops).__name__}")
        return cls(ops)

    @classmethod
    def measured(cls, model, *, batch_size: int = PROFILE_BATCH_SIZE,
                 latency: LatencyTable | None = None, **measure_kwargs) -> CostModel:
        """The measured model of an ``ApproxModel`` at ``batch_size`` (table cached; measured
        with ``measure_latency_table(model, batch_sizes=(batch_size, 1), **measure_kwargs)``
        when ``latency`` is not given)."""
        batch_size = _positive_int("batch_size", batch_size)
        if latency is None:
            sizes = (batch_size,) if batch_size == 1 else (batch_size, 1)
            latency = measure_latency_table(model, batch_sizes=sizes, **measure_kwargs)
        return cls(model.ops, latency, batch_size=batch_size)

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
        """Cost of ``config``: FLOPs per sample (flops) or seconds per inference (measured)."""
        return float(self.costs(self.vector(config)[None])[0])

    def speedup(self, config: Mapping[str, int] | None) -> float:
        """Predicted speedup ``cost(exact) / cost(config)`` (1.0 for exact)."""
        return self.exact_cost / self.cost(config)

    def fp16_fraction(self, config: Mapping[str, int] | None) -> float:
        """Share of the exact FLOPs that ``config`` runs with an fp16 knob, in [0, 1]."""
        return float(self.fp16_fractions(self.vector(config)[None])[0])

    def latency_s(self, config: Mapping[str, int] | None) -> float:
        """Predicted seconds per inference of ``config`` (measured kind only): the table's
        whole-run exact latency / the predicted speedup."""
        if self.kind != "measured":
            raise ValueError("kind: latency_s needs the measured cost model "
                             "(CostModel.measured); the FLOP model predicts ratios only")
        return self.latency.exact_latency_s[self.batch_size] / self.speedup(config)

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
        """Costs float64 (n_configs,) of a knob matrix (units: see :meth:`cost`)."""
        K = self._check_matrix(K)
        if self._table is None:
            return _INV_SPEEDUP[K] @ self.flops
        c = self._table[np.arange(K.shape[1])[None, :], K].sum(axis=1)
        if K.size and np.isnan(c).any():
            i, j = np.argwhere(np.isnan(self._table[np.arange(K.shape[1])[None, :], K]))[0]
            raise ValueError(f"K: knob {int(K[i, j])} is not applicable to operator "
                             f"{self.names[j]!r} (row {i}); expected one of {list(self.knobs[j])}")
        return c

    def speedups(self, K) -> np.ndarray:
        """Predicted speedups float64 (n_configs,) of a knob matrix."""
        return self.exact_cost / self.costs(K)

    def fp16_fractions(self, K) -> np.ndarray:
        """fp16 FLOP shares float64 (n_configs,) of a knob matrix."""
        K = self._check_matrix(K)
        return (_IS_FP16[K] @ self.flops) / self.total_flops

    def __repr__(self) -> str:
        extra = f", batch_size={self.batch_size}" if self.kind == "measured" else ""
        return f"CostModel({len(self.names)} ops, kind={self.kind!r}{extra})"


def config_cost(model, config: Mapping[str, int] | None) -> float:
    """FLOP-model cost of ``config`` on ``model`` (an ApproxModel or its ops table)."""
    return CostModel.of(model).cost(config)


def predicted_speedup(model, config: Mapping[str, int] | None) -> float:
    """Predicted speedup of ``config``: ``model`` may be a CostModel (any kind), an
    ApproxModel or its ops table (FLOP model)."""
    return CostModel.of(model).speedup(config)


def fp16_fraction(model, config: Mapping[str, int] | None) -> float:
    """Share of ``model``'s FLOPs run in fp16 under ``config``."""
    return CostModel.of(model).fp16_fraction(config)


# ------------------------------------------------------------------------ the machine


@functools.cache
def code_fingerprint() -> str:
    """16 hex digits hashing the sources that set the runtime's speed:
    ``mobiprox_lab/kernels/*.py`` and ``mobiprox_lab/runtime.py``, read once per process (the
    code this process runs, even if the files change later)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted((root / "kernels").glob("*.py")) + [root / "runtime.py"]:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


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
    kernel threads (``kernels.get_num_threads``) and torch threads."""
    import torch

    from . import kernels

    return {"code": code_fingerprint(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "kernel_threads": kernels.get_num_threads(),
            "torch_threads": torch.get_num_threads()}


def _blas_one_thread():
    """BLAS on one thread, as ``ApproxModel.run`` does (``time_steps`` does not)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


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


# ------------------------------------------------------------------------ latency table


@dataclass
class LatencyTable:
    """Measured own time of every (operator, knob) at one or more batch sizes.

    table : DataFrame with op, knob, batch_size, seconds (median per inference), q25_s,
        q75_s (quartiles over rounds), n (samples).
    exact_latency_s : {batch_size: median whole-run exact time per inference (s, on the
        table's clock)}, measured in the same session (``ApproxModel.run``).
    exact_steps_s : {batch_size: sum of the exact ops' times (s)}: step timing overhead
        shows as its ratio to ``exact_latency_s``.
    meta : what was measured where (machine key, repeats, design size, seconds taken).
    """

    table: pd.DataFrame
    exact_latency_s: dict[int, float]
    exact_steps_s: dict[int, float]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_sizes(self) -> list[int]:
        return list(self.exact_latency_s)

    def matrix(self, names: Sequence[str], op_knobs: Sequence[Sequence[int]],
               batch_size: int) -> np.ndarray:
        """Seconds float64 (n_ops, max knob id + 1), NaN where not applicable, for ``names``
        (every applicable knob must be in the table)."""
        if batch_size not in self.exact_latency_s:
            raise ValueError(f"batch_size: expected one of the table's {self.batch_sizes}, "
                             f"got {batch_size!r}")
        t = self.table[self.table["batch_size"] == batch_size]
        index = {n: i for i, n in enumerate(names)}
        out = np.full((len(names), _MAX_KNOB), np.nan)
        for op, k, s in zip(t["op"], t["knob"], t["seconds"], strict=True):
            i = index.get(op)
            if i is not None:
                out[i, int(k)] = float(s)
        for i, (name, ks) in enumerate(zip(names, op_knobs, strict=True)):
            gap = [k for k in ks if np.isnan(out[i, k])]
            if gap:
                raise ValueError(f"latency: no measured time for operator {name!r} under "
                                 f"knob(s) {gap}; expected a table of this model "
                                 "(measure_latency_table(model))")
        return out

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table.to_dict(orient="list"),
                "exact_latency_s": {str(k): v for k, v in self.exact_latency_s.items()},
                "exact_steps_s": {str(k): v for k, v in self.exact_steps_s.items()},
                "meta": self.meta}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> LatencyTable:
        return cls(table=pd.DataFrame(obj["table"]),
                   exact_latency_s={int(k): float(v) for k, v in obj["exact_latency_s"].items()},
                   exact_steps_s={int(k): float(v) for k, v in obj["exact_steps_s"].items()},
                   meta=dict(obj.get("meta", {})))


def _design(ops: pd.DataFrame) -> tuple[list[dict[str, int]], dict[str, str]]:
    """Design configurations of the latency table and the step head of every op."""
    fused = [None if (f is None or (isinstance(f, float) and math.isnan(f))) else str(f)
             for f in ops.get("fused_into", pd.Series([None] * len(ops)))]
    names = [str(n) for n in ops["name"]]
    head_of = {n: (f if f is not None else n) for n, f in zip(names, fused, strict=True)}
    op_knobs = {n: [int(k) for k in ks] for n, ks in zip(names, ops["knobs"], strict=True)}
    heads = [n for n in names if head_of[n] == n]
    design: list[dict[str, int]] = [{}]
    for k in sorted({k for h in heads for k in op_knobs[h]} - {EXACT}):
        design.append({h: k for h in heads if k in op_knobs[h]})
    position: dict[str, int] = {}
    counts: dict[str, int] = {}
    for n in names:
        if head_of[n] != n:
            counts[head_of[n]] = counts.get(head_of[n], 0) + 1
            position[n] = counts[head_of[n]]
    for j in sorted(set(position.values())):
        cfg = {m: knobs.FP16 for m, p in position.items()
               if p == j and knobs.FP16 in op_knobs[m]}
        if cfg:
            design.append(cfg)
    return design, head_of


def measure_latency_table(model, *, batch_sizes: Sequence[int] = (PROFILE_BATCH_SIZE, 1),
                          repeats: int = 5, warmup: int = 1, clock: str = "cpu", seed: int = 0,
                          cache: bool = True, progress: bool = True) -> LatencyTable:
    """Measure the own time of every (op, knob) of ``model`` (an ``ApproxModel``) here.

    batch_sizes : batch sizes to time (inputs: seeded standard normal; times per inference).
    repeats : timed rounds (x :data:`SMALL_BATCH_REPEATS` below the largest batch size);
        every design configuration runs once per round, in a new random order each round
        (``seed``); warmup : untimed rounds first.
    clock : "cpu" (default) or "wall" (:data:`CLOCKS`): the clock of the whole-run totals
        that each design configuration's step times are scaled to (module doc).
    cache : reuse / store the table under ``cache_dir("latency", structure_fingerprint)``,
        keyed by batch sizes, repeats, warmup, seed and :func:`machine_key`.
    See the module doc for the design. Returns a :class:`LatencyTable`.
    """
    from tqdm.auto import tqdm

    sizes = [_positive_int("batch_sizes[]", b) for b in batch_sizes]
    if not sizes or len(set(sizes)) != len(sizes):
        raise ValueError(f"batch_sizes: expected distinct ints >= 1, got {batch_sizes!r}")
    repeats = _positive_int("repeats", repeats)
    warmup = _positive_int("warmup", warmup, 0)
    clock = _check_clock(clock)
    ops = getattr(model, "ops", None)
    if not isinstance(ops, pd.DataFrame) or not hasattr(model, "time_steps"):
        raise ValueError(f"model: expected an ApproxModel, got {type(model).__name__}")
    machine = machine_key()
    key = _cache_key(batch_sizes=sizes, repeats=repeats, warmup=warmup, seed=seed,
                     clock=clock, small=SMALL_BATCH_REPEATS, machine=machine, version=2)
    path = _cache_dir("latency", structure_fingerprint(model)) / f"table-{key}.json"
    if cache and path.exists():
        return LatencyTable.from_json(json.loads(path.read_text()))
    design, head_of = _design(ops)
    prepared = [model.prepare_config(c) for c in design]
    rng = np.random.default_rng(seed)
    shape = tuple(model.input_shape)
    xs = {b: rng.standard_normal((b, *shape)).astype(np.float32) for b in sizes}
    # samples[b][step head] -> {config index: [wall seconds per inference]}
    samples: dict[int, dict[str, dict[int, list[float]]]] = {b: {} for b in sizes}
    totals: dict[int, list[list[float]]] = {b: [[] for _ in design] for b in sizes}
    t_start = time.perf_counter()
    reps = {b: repeats * (SMALL_BATCH_REPEATS if b < max(sizes) else 1) for b in sizes}
    bar = tqdm(total=sum(warmup + reps[b] for b in sizes) * len(design), desc="latency table",
               disable=not progress)
    try:
        for r in range(warmup + max(reps.values())):
            for b in [b for b in sizes if r < warmup + reps[b]]:
                for i in map(int, rng.permutation(len(design))):
                    with _blas_one_thread():
                        st = model.time_steps(xs[b], prepared[i], repeats=1)
                    c0, t0 = time.process_time(), time.perf_counter()
                    model.run(xs[b], prepared[i])
                    dt, dc = time.perf_counter() - t0, time.process_time() - c0
                    bar.update()
                    if r < warmup:
                        continue
                    totals[b][i].append((dc if clock == "cpu" else dt) / b)
                    for head, sec in zip(st["step"], st["seconds"], strict=True):
                        samples[b].setdefault(str(head), {}).setdefault(i, []).append(
                            float(sec) / b)
    finally:
        bar.close()
    for b in sizes:  # scale each design config's step medians to its run's median total
        for i in range(len(design)):
            steps_sum = sum(statistics.median(v[i]) for v in samples[b].values())
            scale = statistics.median(totals[b][i]) / steps_sum if steps_sum > 0 else 1.0
            for v in samples[b].values():
                v[i] = [s * scale for s in v[i]]
    rows = []
    exact_steps: dict[int, float] = {}
    names = [str(n) for n in ops["name"]]
    for b in sizes:
        total = 0.0
        for n, ks in zip(names, ops["knobs"], strict=True):
            head = head_of[n]
            by_cfg = samples[b].get(head)
            if by_cfg is None:
                raise RuntimeError(f"time_steps: no step named {head!r}; the runtime's step "
                                   "labels no longer match ops.name")
            # exact step time: every design config that leaves this whole step exact
            ex = [s for i, v in by_cfg.items()
                  if all(design[i].get(m, EXACT) == EXACT for m in names if head_of[m] == head)
                  for s in v]
            ex_med = statistics.median(ex)
            for k in ks:
                k = int(k)
                if k == EXACT:
                    v = ex if n == head else [ex_med] * len(ex)
                    base = 0.0 if n == head else ex_med
                else:
                    i = next(i for i, c in enumerate(design) if c.get(n) == k)
                    v, base = by_cfg[i], (0.0 if n == head else ex_med)
                q25, med, q75 = np.percentile(v, [25, 50, 75])
                rows.append({"op": n, "knob": k, "batch_size": b,
                             "seconds": max(float(med) - base, 0.0),
                             "q25_s": float(q25) - base, "q75_s": float(q75) - base,
                             "n": len(v)})
                if k == EXACT:
                    total += max(float(med) - base, 0.0)
        exact_steps[b] = total
    table = LatencyTable(
        table=pd.DataFrame(rows),
        exact_latency_s={b: statistics.median(totals[b][0]) for b in sizes},
        exact_steps_s=exact_steps,
        meta={"machine": machine, "repeats": repeats, "warmup": warmup, "seed": seed,
              "clock": clock,
              "design_configs": len(design), "seconds": time.perf_counter() - t_start})
    if cache:
        _save_json(path, table.to_json())
    return table


# ------------------------------------------------------------------------ cache keys


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
    nothing at all (a Dask client, which holds the payload as one task's result).
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


def _identity(value):
    """Executor task returning its argument: ships a payload as a recomputable result."""
    return value


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
        ``dask.distributed.Client`` (the model and ``x`` are shipped once per client as a
        task's result, kept for later calls with the same model and inputs, and recomputed
        by the scheduler if the workers holding them die).
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
                # a task, not scatter(): the scheduler can recompute a task's result when
                # the workers holding it die; scattered data lost with every replica
                # cancels the tasks that need it (FutureCancelledError)
                scattered[payload.key] = executor.submit(_identity, payload, pure=False)
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


CLOCKS = ("cpu", "wall")
"""``"cpu"``: the process's CPU seconds (``time.process_time``: all its threads), immune to
other processes' load; on an idle machine with one kernel thread it equals the latency.
``"wall"``: elapsed seconds (``time.perf_counter``), the latency as a user sees it, which on
a shared machine also measures everyone else's work."""


def _check_clock(clock) -> str:
    if clock not in CLOCKS:
        raise ValueError(f"clock: expected one of {CLOCKS}, got {clock!r}")
    return clock


def _session(model, cfgs: list[dict[str, int]], xb: np.ndarray, *, warmup: int, repeats: int,
             meter, progress: bool) -> tuple[dict[tuple[str, int], list[list[float]]],
                                             list[list[float]], list[np.ndarray]]:
    """Time every configuration round-robin: ({(clock, batch): per-config seconds per
    inference}, per-config joules per inference (empty without a meter), last logits)."""
    from tqdm.auto import tqdm

    prepared = [model.prepare_config(c) for c in cfgs]
    sizes = [len(xb), 1] if len(xb) > 1 else [1]
    xs = {b: np.ascontiguousarray(xb[:b]) for b in sizes}
    times = {(c, b): [[] for _ in cfgs] for c in CLOCKS for b in sizes}
    joules: list[list[float]] = [[] for _ in cfgs]
    logits: list[np.ndarray] = [np.empty(0)] * len(cfgs)
    n = len(cfgs)
    reps = {b: repeats * (SMALL_BATCH_REPEATS if b < max(sizes) else 1) for b in sizes}
    bar = tqdm(total=sum(warmup + reps[b] for b in sizes) * n, desc="timing", leave=False,
               disable=not progress)
    try:
        for r in range(warmup + max(reps.values())):
            for b in [b for b in sizes if r < warmup + reps[b]]:
                for j in range(n):
                    i = (j + r) % n  # rotate: every config takes every slot of the round
                    metered = meter is not None and r >= warmup and b == sizes[0]
                    if metered:
                        meter.start()
                    c0, t0 = time.process_time(), time.perf_counter()
                    z = model.run(xs[b], prepared[i], backend="numba")
                    dt, dc = time.perf_counter() - t0, time.process_time() - c0
                    if metered:
                        meter.stop()
                        joules[i].append(meter.total_j / b)
                    if r >= warmup:
                        times["wall", b][i].append(dt / b)
                        times["cpu", b][i].append(dc / b)
                    if b == sizes[0]:
                        logits[i] = z
                    bar.update()
    finally:
        bar.close()
    if len(sizes) == 1:
        for c in CLOCKS:
            times[c, len(xb)] = times[c, 1]
    return times, joules, logits


def _spread(v: Sequence[float]) -> dict[str, float]:
    q25, med, q75 = np.percentile(np.asarray(v, np.float64), [25, 50, 75])
    return {"median": float(med), "std": float(np.std(v)) if len(v) > 1 else 0.0,
            "q25": float(q25), "q75": float(q75)}


def profile(model, configs, data, *, batch_size: int = PROFILE_BATCH_SIZE, warmup: int = 2,
            repeats: int = 5, clock: str = "cpu", cost_model: CostModel | None = None,
            energy_profile=None, law=None, cache: bool = True, progress: bool = True,
            counters: bool | None = None) -> pd.DataFrame:
    """Measure every configuration of ``configs`` on ``data``; one row per configuration.

    model : an ``ApproxModel``.
    configs : list of mappings op name -> knob id (missing -> 11), a DataFrame with a
        ``config`` column (and optional ``name``), or a ``TuneResult``. Row order follows it.
    data : a ``Split`` (or ``(x, y)``): accuracy / confidences on all of it, latency on its
        first ``batch_size`` inputs (and on its first input alone, batch 1).
    batch_size, warmup, repeats : the round-robin timing session (see the module doc;
        batch 1 gets ``repeats`` x :data:`SMALL_BATCH_REPEATS` rounds).
    clock : which clock's medians give ``speedup`` / ``speedup_b1`` and hence the energy:
        "cpu" (default; robust on a shared machine) or "wall" (see :data:`CLOCKS`). Both
        are always reported.
    cost_model : the model whose ``predicted_speedup`` is reported (default: the FLOP model).
    energy_profile : ``energy.PowerProfile`` of the duty-cycled regime (default
        ``energy.PHONE``; its window and latency factor). law : ``energy.EnergyLaw``
        (default ``energy.authors_law()``, fp16 factor 1.0).
    counters : measure joules with Zeus's counters; None = when ``energy.counters_available()``.

    Columns
        name, config (dict of the non-exact knobs), n_approx_ops;
        predicted_speedup (``cost_model``), cost_model ("flops" | "measured"), fp16_fraction;
        latency_s, latency_std_s, latency_q25_s, latency_q75_s (wall s per inference at
        ``batch_size``: median, std, quartiles over the rounds), cpu_s, cpu_std_s, cpu_q25_s,
        cpu_q75_s (CPU s per inference, the same statistics), speedup_wall, speedup_cpu
        (exact median / median; 1.0 on the exact row), clock, speedup (= speedup_<clock>);
        latency_b1_s, latency_b1_std_s, cpu_b1_s, cpu_b1_std_s, speedup_b1 (batch 1, clock's);
        n_timed (inputs per timed batch);
        accuracy (%), qos_loss (pp), agreement (share of the timed batch where numba and
        reference agree), max_prob_diff; conf_mean, conf_correct, conf_wrong; per class k:
        acc_c{k}, qos_loss_c{k}, conf_mean_c{k}, conf_correct_c{k}, conf_wrong_c{k}
        (see :func:`per_class`);
        rel_inference_energy (the law at ``speedup``: whole-phone energy per inference under
        continuous inference, exact = 1; > 1 when slower than exact),
        rel_system_energy_continuous (the same: share 1), inference_share_duty_cycled (from
        the exact row's batch-1 time on ``clock`` and ``energy_profile``),
        rel_system_energy_duty_cycled;
        energy_j (counters' joules per inference at ``batch_size``, NaN without counters),
        energy_source ("counters" or "law").
    """
    from . import energy

    cost = CostModel.of(model) if cost_model is None else cost_model
    if not isinstance(cost, CostModel):
        raise ValueError(f"cost_model: expected a CostModel, got {type(cost).__name__}")
    cfgs, names = _as_configs(configs, cost)
    x, y = data_arrays(data)
    batch_size = _positive_int("batch_size", batch_size)
    warmup = _positive_int("warmup", warmup, 0)
    repeats = _positive_int("repeats", repeats)
    clock = _check_clock(clock)
    prof = energy.PHONE if energy_profile is None else energy_profile
    if not isinstance(prof, energy.PowerProfile):
        raise ValueError(f"energy_profile: expected an energy.PowerProfile, "
                         f"got {type(prof).__name__}")
    meter = None
    if counters is not False:
        avail = energy.counters_available()
        if counters and not avail:
            raise ValueError(f"counters: energy counters unavailable: {avail.reason}")
        meter = energy.EnergyMeter() if avail else None
    fp = model_fingerprint(model)
    unique = list({config_key(c): c for c in [{}] + [c for c in cfgs if c]}.items())
    probs = profile_probs(model, [c for _, c in unique], x, cache_results=cache,
                          progress=progress)
    xb = np.ascontiguousarray(x[:batch_size])
    key = _cache_key(configs=[k for k, _ in unique], data=_data_key(xb, y[:len(xb)]),
                     batch_size=batch_size, warmup=warmup, repeats=repeats,
                     counters=meter is not None, small=SMALL_BATCH_REPEATS,
                     machine=machine_key(), version=4)
    path = _cache_dir("profiles", fp) / f"timing-{key}.json"
    if cache and path.exists():
        timing = json.loads(path.read_text())
    else:
        times, joules, logits = _session(model, [c for _, c in unique], xb, warmup=warmup,
                                         repeats=repeats, meter=meter, progress=progress)
        timing = {"configs": [k for k, _ in unique], "rows": []}
        for i in range(len(unique)):
            p_numba = softmax(logits[i])
            ref = probs[i][: len(xb)]
            timing["rows"].append({
                **{f"{c}_{tag}": _spread(times[c, b][i]) for c in CLOCKS
                   for tag, b in (("batch", len(xb)), ("b1", 1))},
                "energy_j": statistics.median(joules[i]) if joules[i] else math.nan,
                "agreement": float((p_numba.argmax(1) == ref.argmax(1)).mean()),
                "max_prob_diff": float(np.abs(p_numba - ref).max()),
                "n_timed": len(xb)})
        if cache:
            _save_json(path, timing)
    raw = {}
    for i, (ckey, _) in enumerate(unique):
        raw[ckey] = dict(timing["rows"][i])
        raw[ckey].update(softmax_stats(probs[i], y))
    return _assemble(cfgs, names, raw, cost, energy, prof, law, clock,
                     "counters" if meter is not None else "law")


# aliases so that profile()'s ``cache`` flag can shadow the module name inside it
_cache_dir = cache.cache_dir
_save_json = cache.save_json
_cache_key = cache.cache_key


def _data_key(x: np.ndarray, y: np.ndarray) -> str:
    return cache.cache_key(x=x, y=y)


def _assemble(cfgs, names, raw, cost: CostModel, energy, prof, law, clock: str,
              source: str) -> pd.DataFrame:
    base = raw[config_key({})]
    n_classes = len(base["acc_class"])
    share = float(energy.inference_share(base[f"{clock}_b1"]["median"], prof,
                                         regime="duty_cycled"))
    rows = []
    for cfg, name in zip(cfgs, names, strict=True):
        r = raw[config_key(cfg)]
        sp = {c: base[f"{c}_batch"]["median"] / r[f"{c}_batch"]["median"] for c in CLOCKS}
        speed = sp[clock]
        rel = float(energy.energy_from_speedup(speed, cost.fp16_fraction(cfg), law=law))
        wall, cpu, wall1, cpu1 = r["wall_batch"], r["cpu_batch"], r["wall_b1"], r["cpu_b1"]
        row = {
            "name": name, "config": dict(cfg), "n_approx_ops": len(cfg),
            "predicted_speedup": cost.speedup(cfg), "cost_model": cost.kind,
            "fp16_fraction": cost.fp16_fraction(cfg),
            "latency_s": wall["median"], "latency_std_s": wall["std"],
            "latency_q25_s": wall["q25"], "latency_q75_s": wall["q75"],
            "cpu_s": cpu["median"], "cpu_std_s": cpu["std"], "cpu_q25_s": cpu["q25"],
            "cpu_q75_s": cpu["q75"], "speedup_wall": sp["wall"], "speedup_cpu": sp["cpu"],
            "clock": clock, "speedup": speed,
            "latency_b1_s": wall1["median"], "latency_b1_std_s": wall1["std"],
            "cpu_b1_s": cpu1["median"], "cpu_b1_std_s": cpu1["std"],
            "speedup_b1": base[f"{clock}_b1"]["median"] / r[f"{clock}_b1"]["median"],
            "n_timed": r["n_timed"],
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
        row["rel_inference_energy"] = rel
        row["rel_system_energy_continuous"] = rel
        row["inference_share_duty_cycled"] = share
        row["rel_system_energy_duty_cycled"] = float(
            energy.relative_system_from_inference(rel, share))
        row["energy_j"] = r["energy_j"]
        row["energy_source"] = source
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
