"""Measured latency table: the own time of every (operator, knob) of a model on this machine.

The runtime executes fused steps (a conv with its folded batch norm and ReLU). For every
knob ``k`` one design configuration sets ``k`` on every step head it applies to; one more
per fused position sets 12 on the fused members. Each design configuration is run with
``ApproxModel.time_steps`` (BLAS limited to one thread, as in ``run``), ``repeats``
rounds in a fresh random order per round, at each batch size in a phase of its own
(:func:`~.common.timing_rounds`), each followed by a timed
``ApproxModel.run`` of the same configuration. ``time_steps`` only has a wall clock and
times steps outside ``run``'s execution path, so each design configuration's median step
times are scaled to sum to the median whole-run time of that configuration on the
table's clock (CPU seconds by default: robust to other processes' load; or wall). The
op's own time is the
median over rounds of its step's time (a head; an exact head pools every configuration
that leaves its step exact) or of the step's extra time over exact (a fused member under
12; 0 under 11), per inference (batch time / batch size), with its quartiles.
Timed on :data:`~.common.TIMING_THREADS` kernel threads (one by default, as profiles are)
with this machine's calibrated kernel paths
(:func:`~mobiprox_lab.profiler.calibration.kernel_paths`). Cached per (operator
structure, batch sizes, repeats, :func:`~.fingerprint.machine_key`) under
``cache_dir("latency", <structure fingerprint>)``, written atomically.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import checks, kernels, knobs
from ..cache import cache_dir, cache_key, save_json
from .calibration import kernel_paths
from .common import (
    EXACT,
    MAX_KNOB,
    PROFILE_BATCH_SIZE,
    SMALL_BATCH_REPEATS,
    TIMING_THREADS,
    check_batch_sizes,
    check_clock,
    check_threads,
    timing_rounds,
)
from .fingerprint import machine_key, structure_fingerprint

__all__ = ["LatencyTable", "measure_latency_table"]

# samples[batch size][step head] -> {design config index: [seconds per inference]}
Samples = dict[int, dict[str, dict[int, list[float]]]]
# totals[batch size][design config index] -> [whole-run seconds per inference]
Totals = dict[int, list[list[float]]]


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
        out = np.full((len(names), MAX_KNOB), np.nan)
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


def _blas_one_thread():
    """BLAS on one thread, as ``ApproxModel.run`` does (``time_steps`` does not)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


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
                          cache: bool = True, progress: bool = True,
                          threads: int | None = TIMING_THREADS) -> LatencyTable:
    """Measure the own time of every (op, knob) of ``model`` (an ``ApproxModel``) here.

    batch_sizes : batch sizes to time (inputs: seeded standard normal; times per inference).
    repeats : timed rounds (x :data:`SMALL_BATCH_REPEATS` below the largest batch size);
        every design configuration runs once per round, in a new random order each round
        (``seed``); warmup : untimed rounds first.
    clock : "cpu" (default) or "wall" (:data:`CLOCKS`): the clock of the whole-run totals
        that each design configuration's step times are scaled to (module doc).
    cache : reuse / store the table under ``cache_dir("latency", structure_fingerprint)``,
        keyed by batch sizes, repeats, warmup, seed and :func:`machine_key` (which holds
        the kernel threads).
    threads : kernel threads while timing (default :data:`~.common.TIMING_THREADS`, one,
        as :func:`~.measure.profile` times; None: the kernels' current count).
    See the module doc for the design. Returns a :class:`LatencyTable`.
    """
    sizes = check_batch_sizes("batch_sizes", batch_sizes)
    repeats = checks.integer("repeats", repeats, 1)
    warmup = checks.integer("warmup", warmup, 0)
    clock = check_clock(clock)
    threads = check_threads(threads)
    ops = getattr(model, "ops", None)
    if not isinstance(ops, pd.DataFrame) or not hasattr(model, "time_steps"):
        raise ValueError(f"model: expected an ApproxModel, got {type(model).__name__}")
    with kernels.using_threads(threads):
        return _measure(model, ops, sizes, repeats=repeats, warmup=warmup, clock=clock,
                        seed=seed, cache=cache, progress=progress)


def _measure(model, ops: pd.DataFrame, sizes: list[int], *, repeats: int, warmup: int,
             clock: str, seed: int, cache: bool, progress: bool) -> LatencyTable:
    """:func:`measure_latency_table` with its arguments checked and its threads in force."""
    kernel_paths(progress=progress)  # this machine's paths; no allocator page faults
    machine = machine_key()
    key = cache_key(batch_sizes=sizes, repeats=repeats, warmup=warmup, seed=seed,
                    clock=clock, small=SMALL_BATCH_REPEATS, machine=machine, version=3)
    path = cache_dir("latency", structure_fingerprint(model)) / f"table-{key}.json"
    if cache and path.exists():
        return LatencyTable.from_json(json.loads(path.read_text()))
    design, head_of = _design(ops)
    prepared = [model.prepare_config(c) for c in design]
    rng = np.random.default_rng(seed)
    shape = tuple(model.input_shape)
    xs = {b: rng.standard_normal((b, *shape)).astype(np.float32) for b in sizes}
    t_start = time.perf_counter()
    samples, totals = _time_design(model, prepared, xs, timing_rounds(sizes, warmup, repeats),
                                   warmup=warmup, clock=clock, rng=rng, progress=progress)
    _scale_to_totals(samples, totals, len(design))
    rows, exact_steps = _table_rows(ops, design, head_of, samples, sizes)
    table = LatencyTable(
        table=pd.DataFrame(rows),
        exact_latency_s={b: statistics.median(totals[b][0]) for b in sizes},
        exact_steps_s=exact_steps,
        meta={"machine": machine, "repeats": repeats, "warmup": warmup, "seed": seed,
              "clock": clock,
              "design_configs": len(design), "seconds": time.perf_counter() - t_start})
    if cache:
        save_json(path, table.to_json())
    return table


def _time_design(model, prepared: list[tuple[int, ...]], xs: dict[int, np.ndarray],
                 rounds: list[tuple[int, int]], *, warmup: int, clock: str,
                 rng: np.random.Generator, progress: bool) -> tuple[Samples, Totals]:
    """Time every design configuration (``prepared`` knob tuples) in each of ``rounds``
    (``(batch size, round)`` from :func:`~.common.timing_rounds`; round ``< warmup``
    untimed), in a fresh random order per round (``rng``): step times from ``time_steps``
    and the whole run's time on ``clock``, per inference."""
    from tqdm.auto import tqdm

    n = len(prepared)
    sizes = list(xs)
    samples: Samples = {b: {} for b in sizes}
    totals: Totals = {b: [[] for _ in range(n)] for b in sizes}
    bar = tqdm(total=len(rounds) * n, desc="latency table", disable=not progress)
    try:
        for b, r in rounds:
            for i in map(int, rng.permutation(n)):
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
    return samples, totals


def _scale_to_totals(samples: Samples, totals: Totals, n_design: int) -> None:
    """Scale each design configuration's step samples (in place) so that its step medians
    sum to the median of its whole-run totals."""
    for b in samples:
        for i in range(n_design):
            steps_sum = sum(statistics.median(v[i]) for v in samples[b].values())
            scale = statistics.median(totals[b][i]) / steps_sum if steps_sum > 0 else 1.0
            for v in samples[b].values():
                v[i] = [s * scale for s in v[i]]


def _table_rows(ops: pd.DataFrame, design: list[dict[str, int]], head_of: dict[str, str],
                samples: Samples, sizes: list[int]) -> tuple[list[dict], dict[int, float]]:
    """The table's rows (one per op, knob and batch size) and, per batch size, the sum of
    the exact ops' times."""
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
            op_rows = _op_rows(n, [int(k) for k in ks], b, design, head_of, by_cfg)
            rows.extend(op_rows)
            total += sum(r["seconds"] for r in op_rows if r["knob"] == EXACT)
        exact_steps[b] = total
    return rows, exact_steps


def _op_rows(n: str, ks: list[int], b: int, design: list[dict[str, int]],
             head_of: dict[str, str], by_cfg: dict[int, list[float]]) -> list[dict]:
    """Rows of op ``n`` at batch size ``b``: its own time under each knob of ``ks`` from the
    samples ``by_cfg`` of its step (design config index -> seconds per inference)."""
    head = head_of[n]
    # exact step time: every design config that leaves this whole step exact
    ex = [s for i, v in by_cfg.items()
          if all(design[i].get(m, EXACT) == EXACT for m in head_of if head_of[m] == head)
          for s in v]
    ex_med = statistics.median(ex)
    base = 0.0 if n == head else ex_med
    rows = []
    for k in ks:
        if k == EXACT:
            v = ex if n == head else [ex_med] * len(ex)
        else:
            v = by_cfg[next(i for i, c in enumerate(design) if c.get(n) == k)]
        q25, med, q75 = np.percentile(v, [25, 50, 75])
        rows.append({"op": n, "knob": k, "batch_size": b,
                     "seconds": max(float(med) - base, 0.0),
                     "q25_s": float(q25) - base, "q75_s": float(q75) - base, "n": len(v)})
    return rows
