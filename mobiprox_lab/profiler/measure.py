"""The measured profile (:func:`profile`): one row per configuration.

Every configuration, exact included, is timed round-robin in one session on the
``numba`` backend as it is (fp16 emulation included: nothing is substituted), on
:data:`~.common.TIMING_THREADS` kernel threads (one, unless ``threads`` says otherwise), with the
allocator keeping freed memory (``kernels.retain_freed_memory``) and this machine's
calibrated kernel paths (:func:`~mobiprox_lab.profiler.calibration.kernel_paths`), at
``batch_size`` and then at batch 1, each in a phase of its own
(:func:`~.common.timing_rounds`): ``warmup`` untimed rounds, then ``repeats`` rounds, each
running every configuration once in a rotated order; median, std and quartiles per
inference, on two clocks: CPU seconds (``time.process_time``; the default for speedups:
robust to other processes' load) and wall seconds. Accuracy and confidences come from
the ``reference`` backend on all of
``data``; the numba logits on the timed batch are compared with them (``agreement``).
Energy is the law of :mod:`mobiprox_lab.energy` at the measured speedup, or the
counters' joules where Zeus reads them.

Timing sessions are cached under ``cache_dir("profiles", <model fingerprint>)``, keyed by
configurations, batch, parameters and :func:`~mobiprox_lab.profiler.fingerprint.machine_key`,
written atomically.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import checks, kernels
from ..cache import cache_dir, cache_key, save_json
from ..runtime import softmax
from .calibration import kernel_paths
from .common import (
    CLOCKS,
    PROFILE_BATCH_SIZE,
    SMALL_BATCH_REPEATS,
    TIMING_THREADS,
    check_clock,
    check_threads,
    data_arrays,
    timing_rounds,
)
from .cost import CostModel
from .fingerprint import config_key, machine_key, model_fingerprint
from .meter import EnergyMeter, counters_available
from .probs import as_configs, profile_probs
from .stats import softmax_stats

__all__ = ["profile"]

# one timing session: {(clock, batch size): per config [seconds per inference]}
Times = dict[tuple[str, int], list[list[float]]]


def profile(model, configs, data, *, batch_size: int = PROFILE_BATCH_SIZE, warmup: int = 2,
            repeats: int = 5, clock: str = "cpu", cost_model: CostModel | None = None,
            energy_profile=None, law=None, cache: bool = True, progress: bool = True,
            counters: bool | None = None, threads: int | None = TIMING_THREADS
            ) -> pd.DataFrame:
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
    counters : measure joules with Zeus's counters; None = when ``counters_available()``
        (:mod:`~mobiprox_lab.profiler.meter`).
    threads : kernel threads while timing (default :data:`~.common.TIMING_THREADS`, one;
        None: the kernels' current count).

    Columns
        name, config (dict of the non-exact knobs), n_approx_ops;
        predicted_speedup (``cost_model``), cost_model ("flops" | "measured"), fp16_fraction;
        latency_s, latency_std_s, latency_q25_s, latency_q75_s (wall s per inference at
        ``batch_size``: median, std, quartiles over the rounds), cpu_s, cpu_std_s, cpu_q25_s,
        cpu_q75_s (CPU s per inference, the same statistics), speedup_wall, speedup_cpu
        (exact median / median; 1.0 on the exact row), clock, speedup (= speedup_<clock>);
        latency_b1_s, latency_b1_std_s, cpu_b1_s, cpu_b1_std_s, speedup_b1 (batch 1, clock's);
        n_timed (inputs per timed batch), threads (kernel threads while timing);
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
    from .. import energy

    cost = CostModel.of(model) if cost_model is None else cost_model
    if not isinstance(cost, CostModel):
        raise ValueError(f"cost_model: expected a CostModel, got {type(cost).__name__}")
    cfgs, names = as_configs(configs, cost)
    x, y = data_arrays(data)
    batch_size = checks.integer("batch_size", batch_size, 1)
    warmup = checks.integer("warmup", warmup, 0)
    repeats = checks.integer("repeats", repeats, 1)
    clock = check_clock(clock)
    threads = check_threads(threads)
    prof = energy.PHONE if energy_profile is None else energy_profile
    if not isinstance(prof, energy.PowerProfile):
        raise ValueError(f"energy_profile: expected an energy.PowerProfile, "
                         f"got {type(prof).__name__}")
    meter = _meter(counters)
    unique = list({config_key(c): c for c in [{}] + [c for c in cfgs if c]}.items())
    probs = profile_probs(model, [c for _, c in unique], x, cache_results=cache,
                          progress=progress)
    xb = np.ascontiguousarray(x[:batch_size])
    with kernels.using_threads(threads) as n_threads:
        timing = _timing(model, unique, probs, xb, y[:len(xb)], batch_size=batch_size,
                         warmup=warmup, repeats=repeats, meter=meter, cache=cache,
                         progress=progress)
    raw = {}
    for i, (ckey, _) in enumerate(unique):
        raw[ckey] = dict(timing["rows"][i])
        raw[ckey].update(softmax_stats(probs[i], y))
    return _assemble(cfgs, names, raw, cost, energy, prof, law, clock,
                     "counters" if meter is not None else "law", n_threads)


def _meter(counters: bool | None):
    """An energy meter when ``counters`` asks for one (None: when counters are available)."""
    if counters is False:
        return None
    avail = counters_available()
    if counters and not avail:
        raise ValueError(f"counters: energy counters unavailable: {avail.reason}")
    return EnergyMeter() if avail else None


def _timing(model, unique: list[tuple[str, dict[str, int]]], probs: np.ndarray, xb: np.ndarray,
            yb: np.ndarray, *, batch_size: int, warmup: int, repeats: int, meter, cache: bool,
            progress: bool) -> dict:
    """The timing session of the ``unique`` (config key, config) pairs on the batch ``xb``,
    from the cache or measured: {"configs": keys, "rows": per config timing statistics,
    energy, agreement with the reference softmax ``probs`` on the batch}."""
    kernel_paths(progress=progress)  # this machine's paths; no allocator page faults
    key = cache_key(configs=[k for k, _ in unique], data=_data_key(xb, yb),
                    batch_size=batch_size, warmup=warmup, repeats=repeats,
                    counters=meter is not None, small=SMALL_BATCH_REPEATS,
                    machine=machine_key(), version=5)
    path = cache_dir("profiles", model_fingerprint(model)) / f"timing-{key}.json"
    if cache and path.exists():
        return json.loads(path.read_text())
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
        save_json(path, timing)
    return timing


def _session(model, cfgs: list[dict[str, int]], xb: np.ndarray, *, warmup: int, repeats: int,
             meter, progress: bool) -> tuple[Times, list[list[float]], list[np.ndarray]]:
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
    rounds = timing_rounds(sizes, warmup, repeats)
    bar = tqdm(total=len(rounds) * n, desc="timing", leave=False, disable=not progress)
    try:
        for b, r in rounds:
            for j in range(n):
                i = (j + r) % n  # rotate: every config takes every slot of the phase
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


def _data_key(x: np.ndarray, y: np.ndarray) -> str:
    return cache_key(x=x, y=y)


def _assemble(cfgs, names, raw, cost: CostModel, energy, prof, law, clock: str,
              source: str, threads: int) -> pd.DataFrame:
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
            "n_timed": r["n_timed"], "threads": threads,
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
