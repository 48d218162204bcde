"""QoS models: P1 (sum of output deltas), P2 (sum of accuracy changes) and empirical QoS.

Both predictive models rest on a **single-op profile** of the tune set (ApproxTuner's):
run the exact network once and keep its output logits ``B`` (N, C); for every tunable op
and every applicable non-exact knob, run once with only that op approximated and keep
its logits.

- P1: ``delta(op, knob) = out - B``; the predicted output of a configuration is
  ``B + sum of its deltas`` and its predicted QoS the accuracy (%) of that output's argmax.
- P2: ``dacc(op, knob) = accuracy(out) - accuracy(B)``; predicted QoS =
  ``accuracy(B) + sum of its dacc``.
- Empirical: run the configuration (reference backend) and measure its accuracy.

QoS is accuracy in percent; QoS loss is in percentage points against the exact baseline.

The profile is cached one file per (op, knob) under
``cache_dir("tuning", "singleop", <model>-<data, backend, code>)``, each written atomically as it
finishes: an interrupted profile loses only the item(s) in flight, and a rerun computes
only what is missing. Serially, the exact prefix of the network before an op is computed
once per op and reused for all its knobs (``ApproxModel.run_prefix`` / ``run_from`` on the
reference backend); with an ``executor`` every (op, knob) is one full-run
task (see :func:`mobiprox_lab.profiler.map_logits`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cache, knobs
from ..profiler import (
    CostModel,
    batched_logits,
    data_arrays,
    map_logits,
    model_fingerprint,
    profile_probs,
    semantics_fingerprint,
)

__all__ = ["SingleOpProfile", "empirical_qos", "single_op_profile"]

EXACT = knobs.EXACT
_MAX_KNOB = max(knobs.KNOBS) + 1


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(axis=-1) == y).mean() * 100)


@dataclass
class SingleOpProfile:
    """Per-(op, knob) outputs on the tune set, and the P1 / P2 predictors built on them.

    ops : tunable op names (execution order); knob matrices are (n_configs, len(ops)).
    knobs : per op, its knob ids (11 first).
    labels : int64 (N,) tune-set classes.
    baseline : float32 (N, C) exact logits ``B``.
    deltas : float32 (n_pairs + 1, N, C) ``out - B`` per pair; row 0 is zeros (knob 11).
    accuracy : float64 (n_pairs + 1,) single-op accuracy (%) per pair; [0] = baseline.
    pair_index : int32 (len(ops), max knob id + 1): row of (op j, knob k); 0 for 11, -1 if
        the knob does not apply.
    """

    ops: list[str]
    knobs: list[tuple[int, ...]]
    labels: np.ndarray
    baseline: np.ndarray
    deltas: np.ndarray
    accuracy: np.ndarray
    pair_index: np.ndarray

    @classmethod
    def from_outputs(cls, ops: Sequence[str], op_knobs: Sequence[Sequence[int]],
                     labels: np.ndarray, baseline: np.ndarray,
                     outputs: Mapping[tuple[str, int], np.ndarray]) -> SingleOpProfile:
        """Build from the exact logits ``baseline`` (N, C) and ``outputs[(op, knob)]`` (N, C),
        the logits with only ``op`` set to ``knob``, for every non-exact knob of every op."""
        ops = [str(o) for o in ops]
        if len(op_knobs) != len(ops):
            raise ValueError(f"op_knobs: expected {len(ops)} knob lists (one per op), "
                             f"got {len(op_knobs)}")
        baseline = np.asarray(baseline, np.float32)
        labels = np.asarray(labels, np.int64)
        if baseline.ndim != 2 or labels.shape != (len(baseline),):
            raise ValueError(f"baseline: expected (N, C) logits with labels (N,), got "
                             f"{baseline.shape} and {labels.shape}")
        index = np.full((len(ops), _MAX_KNOB), -1, np.int32)
        index[:, EXACT] = 0
        rows = [np.zeros_like(baseline)]
        acc = [_accuracy(baseline, labels)]
        kn = []
        for j, (op, ks) in enumerate(zip(ops, op_knobs, strict=True)):
            ks = tuple(int(k) for k in ks)
            if not ks or ks[0] != EXACT:
                raise ValueError(f"op_knobs[{j}]: expected the knob list of {op!r} to start "
                                 f"with {EXACT}, got {list(ks)}")
            kn.append(ks)
            for k in ks[1:]:
                out = outputs.get((op, k))
                if out is None:
                    raise ValueError(f"outputs: missing the logits of ({op!r}, {k})")
                out = np.asarray(out, np.float32)
                if out.shape != baseline.shape:
                    raise ValueError(f"outputs[({op!r}, {k})]: expected shape {baseline.shape}, "
                                     f"got {out.shape}")
                index[j, k] = len(rows)
                rows.append(out - baseline)
                acc.append(_accuracy(out, labels))
        return cls(ops, kn, labels, baseline, np.stack(rows), np.asarray(acc), index)

    @property
    def baseline_accuracy(self) -> float:
        """Accuracy (%) of the exact network on the tune set."""
        return float(self.accuracy[0])

    @property
    def n_pairs(self) -> int:
        return len(self.accuracy) - 1

    @property
    def delta_rms(self) -> np.ndarray:
        """Root mean square float64 (n_pairs + 1,) of each pair's logit delta."""
        if getattr(self, "_rms", None) is None:
            self._rms = np.sqrt(np.einsum("pnc,pnc->p", self.deltas, self.deltas,
                                          dtype=np.float64) / self.deltas[0].size)
        return self._rms

    def table(self) -> pd.DataFrame:
        """One row per (op, knob): op, knob, speedup (nominal), accuracy (%), qos_loss (pp),
        delta_rms (root mean square of the logit delta)."""
        rows = []
        rms = self.delta_rms
        for j, op in enumerate(self.ops):
            for k in self.knobs[j]:
                r = self.pair_index[j, k]
                rows.append({"op": op, "knob": k, "speedup": knobs.KNOBS[k].speedup,
                             "accuracy": self.accuracy[r],
                             "qos_loss": self.baseline_accuracy - self.accuracy[r],
                             "delta_rms": rms[r]})
        return pd.DataFrame(rows)

    def matrix(self, configs: Sequence[Mapping[str, int]]) -> np.ndarray:
        """Knob matrix int64 (n, len(ops)) of configurations (ops not in ``ops`` must be 11)."""
        pos = {op: j for j, op in enumerate(self.ops)}
        K = np.full((len(configs), len(self.ops)), EXACT, np.int64)
        for i, cfg in enumerate(configs):
            for op, k in cfg.items():
                j = pos.get(op)
                if j is None:
                    if int(k) != EXACT:
                        raise ValueError(f"configs[{i}]: operator {op!r} is not in the profile")
                    continue
                K[i, j] = int(k)
        return K

    def rows(self, K) -> np.ndarray:
        """Pair rows int (n, len(ops)) of a knob matrix; unknown / inapplicable knobs raise."""
        K = np.asarray(K)
        if K.ndim != 2 or K.shape[1] != len(self.ops) or not np.issubdtype(K.dtype, np.integer):
            raise ValueError(f"K: expected an int knob matrix (n, {len(self.ops)}), "
                             f"got {K.dtype} {K.shape}")
        if K.size and (K.min() < 0 or K.max() >= _MAX_KNOB):
            raise ValueError(f"K: knob ids out of range; valid ids are {knobs.VALID_RANGES}")
        rows = self.pair_index[np.arange(len(self.ops))[None, :], K]
        if (rows < 0).any():
            i, j = np.argwhere(rows < 0)[0]
            raise ValueError(f"K[{i}, {j}]: knob {K[i, j]} is not applicable to "
                             f"{self.ops[j]!r}; expected one of {list(self.knobs[j])}")
        return rows

    def predict_p1(self, K, *, chunk_bytes: int = 64 << 20) -> np.ndarray:
        """P1 predicted QoS (%) float64 (n,): accuracy of argmax(B + sum of deltas)."""
        rows = self.rows(K)
        n, (N, C) = len(rows), self.baseline.shape
        chunk = max(1, chunk_bytes // (4 * N * C))
        out = np.empty(n)
        for s in range(0, n, chunk):
            r = rows[s:s + chunk]
            z = np.broadcast_to(self.baseline, (len(r), N, C)).copy()
            for j in np.flatnonzero(r.any(axis=0)):
                z += self.deltas[r[:, j]]
            out[s:s + chunk] = (z.argmax(axis=2) == self.labels).mean(axis=1) * 100
        return out

    def predict_p2(self, K) -> np.ndarray:
        """P2 predicted QoS (%) float64 (n,): baseline + sum of single-op accuracy changes."""
        rows = self.rows(K)
        base = self.baseline_accuracy
        return base + (self.accuracy[rows] - base).sum(axis=1)

    def predict(self, K, qos_model: str) -> np.ndarray:
        """``predict_p1`` or ``predict_p2`` by name ("p1" / "p2")."""
        if qos_model == "p1":
            return self.predict_p1(K)
        if qos_model == "p2":
            return self.predict_p2(K)
        raise ValueError(f"qos_model: expected 'p1' or 'p2', got {qos_model!r}")


# ----------------------------------------------------------------------- the profile


def _pair_file(folder: Path, op: str, k: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", op)
    tag = hashlib.sha1(op.encode()).hexdigest()[:6]
    return folder / f"pair-{safe}-{tag}-{k}.npz"


def single_op_profile(model, data, *, ops: Sequence[str] | None = None, executor=None,
                      backend: str = "reference", batch_size: int = 256, cache: bool = True,
                      progress: bool = True) -> SingleOpProfile:
    """Profile every (tunable op, non-exact knob) of ``model`` on ``data`` (the tune set).

    ops : op names to profile (default ``model.tunable_ops``), execution order.
    executor : None (serial, reusing exact prefixes), a ``concurrent.futures`` executor or a
        ``dask.distributed.Client``: one task per (op, knob); identical results.
    cache : keep one file per (op, knob); False recomputes everything in memory.
    """
    from tqdm.auto import tqdm

    cost = CostModel.of(model)
    x, y = data_arrays(data)
    if batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    ops = list(model.tunable_ops if ops is None else ops)
    for op in ops:
        if op not in cost.index:
            raise ValueError(f"ops: unknown operator {op!r}; expected names from model.ops.name")
    ops.sort(key=cost.index.__getitem__)
    op_knobs = [cost.knobs[cost.index[op]] for op in ops]
    key = cache_key_of(model, x, y, backend)
    folder = _tuning_dir("singleop", key) if cache else None

    base_file = folder / "baseline.npz" if folder else None
    if base_file is not None and base_file.exists():
        baseline = _load(base_file)
    else:
        baseline = batched_logits(model, x, None, backend=backend, batch_size=batch_size)
        if base_file is not None:
            _store(base_file, baseline)
    outputs: dict[tuple[str, int], np.ndarray] = {}
    pending: list[tuple[str, int]] = []
    for op, ks in zip(ops, op_knobs, strict=True):
        for k in ks:
            if k == EXACT:
                continue
            f = _pair_file(folder, op, k) if folder else None
            if f is not None and f.exists():
                outputs[(op, k)] = _load(f)
            else:
                pending.append((op, k))

    def done(pair: tuple[str, int], logits: np.ndarray) -> None:
        outputs[pair] = logits
        if folder is not None:
            _store(_pair_file(folder, *pair), logits)

    if pending:
        if executor is not None or backend != "reference" or not hasattr(model, "run_prefix"):
            configs = [{op: k} for op, k in pending]
            for i, logits in map_logits(model, configs, x, executor=executor, backend=backend,
                                        batch_size=batch_size, progress=progress,
                                        desc="single-op profile"):
                done(pending[i], logits)
        else:
            bar = tqdm(total=len(pending), desc="single-op profile", disable=not progress,
                       leave=False)
            try:
                _prefix_profile(model, cost, x, pending, batch_size, done, bar)
            finally:
                bar.close()
    return SingleOpProfile.from_outputs(ops, op_knobs, y, baseline, outputs)


def _prefix_profile(model, cost: CostModel, x: np.ndarray, pending: list[tuple[str, int]],
                    batch_size: int, done, bar) -> None:
    """Serial single-op profile: per execution step, the exact prefix of every batch is
    kept (``ApproxModel.run_prefix``, advanced one step at a time) and each pending
    (op, knob) of the step runs only the rest (``ApproxModel.run_from``)."""
    exact = [EXACT] * len(cost.names)
    step_of = {op: s for s, ops in enumerate(model.step_ops()) for op in ops}
    by_step: dict[int, list[tuple[str, int]]] = {}
    for pair in pending:
        by_step.setdefault(step_of[pair[0]], []).append(pair)
    kv_exact = tuple(exact)
    batches = [model.run_prefix(x[i:i + batch_size], 0, kv_exact, backend="reference")
               for i in range(0, len(x), batch_size)]
    for s in range(max(by_step, default=-1) + 1):
        for op, k in by_step.get(s, []):
            kv = list(exact)
            kv[cost.index[op]] = k
            kv = tuple(kv)
            done((op, k), np.concatenate([model.run_from(state, kv) for state in batches]))
            bar.update()
        if s == max(by_step):
            break
        for state in batches:
            model.advance(state, kv_exact)


def cache_key_of(model, x: np.ndarray, y: np.ndarray, backend: str) -> str:
    """Folder key of a single-op profile: model fingerprint, data hash, backend and the
    code that computes the outputs (``profiler.semantics_fingerprint``)."""
    return (f"{model_fingerprint(model)}-"
            f"{cache.cache_key(x=x, y=y, backend=backend, code=semantics_fingerprint())}")


def _tuning_dir(*parts: str) -> Path:
    return cache.cache_dir("tuning", *parts)


def _store(path: Path, logits: np.ndarray) -> None:
    cache.save_npz(path, logits=np.asarray(logits, np.float32))


def _load(path: Path) -> np.ndarray:
    return cache.load_npz(path)["logits"]


def empirical_qos(model, configs: Sequence[Mapping[str, int]], data, *, executor=None,
                  backend: str = "reference", batch_size: int = 256, cache: bool = True,
                  progress: bool = True) -> np.ndarray:
    """Measured accuracy (%) float64 (n,) of each configuration on ``data``.

    Uses (and fills) the profiler's per-configuration softmax cache.
    """
    x, y = data_arrays(data)
    if not configs:
        return np.zeros(0)
    probs = profile_probs(model, list(configs), x, backend=backend, batch_size=batch_size,
                          cache_results=cache, progress=progress, executor=executor)
    return (probs.argmax(axis=2) == y).mean(axis=1) * 100
