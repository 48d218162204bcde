"""Cost models (:class:`CostModel`): ``predicted speedup = cost(exact) / cost(config)``.

``kind="measured"`` (the tuner's default, :meth:`CostModel.measured`): the cost of a
configuration is the sum over operators of the op's own time under its knob, from a
:class:`~mobiprox_lab.profiler.latency.LatencyTable` measured on this machine
(:func:`~mobiprox_lab.profiler.latency.measure_latency_table`).
``kind="flops"`` (ApproxTuner's linear model, :meth:`CostModel.of`):
``sum over ops of flops(op) / nominal_speedup(knob(op))`` with the knob catalogue's
nominal speedups (fp16 x1.5 included: the model as ApproxTuner states it).
In both, a batch norm folded into its convolution (``ops.folded``) costs nothing: it no
longer runs. The **fp16 fraction** of a config is the share of the exact FLOPs run
under an fp16 knob (informational: fp16 is an accuracy emulation on a CPU).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import checks, knobs
from .common import EXACT, MAX_KNOB, PROFILE_BATCH_SIZE
from .latency import LatencyTable, measure_latency_table

__all__ = ["CostModel", "config_cost", "fp16_fraction", "predicted_speedup"]

_INV_SPEEDUP = np.zeros(MAX_KNOB)  # 1 / nominal speedup, by knob id
_IS_FP16 = np.zeros(MAX_KNOB, bool)
for _k, _knob in knobs.KNOBS.items():
    _INV_SPEEDUP[_k] = 1.0 / _knob.speedup
    _IS_FP16[_k] = _knob.is_fp16


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
        batch_size = checks.integer("batch_size", batch_size, 1)
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
        if K.size and (K.min() < 0 or K.max() >= MAX_KNOB or _INV_SPEEDUP[K].min() == 0):
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
