"""Profiler: cost models (measured latency table / FLOPs), measured profiles, statistics.

One concept per module; every public name is re-exported here
(``from mobiprox_lab.profiler import CostModel`` and ``profiler.profile(...)`` keep working):

``cost``
    :class:`CostModel`: ``predicted speedup = cost(exact) / cost(config)`` from a measured
    latency table (``kind="measured"``) or ApproxTuner's FLOP model (``kind="flops"``).
``latency``
    :func:`measure_latency_table`: the own time of every (operator, knob) on this machine,
    a :class:`LatencyTable`, cached under ``cache_dir("latency", <structure fingerprint>)``.
``measure``
    :func:`profile`: every configuration timed round-robin (CPU and wall clocks, batch and
    batch 1), its accuracy, confidences and energy; one row per configuration.
``probs``
    :func:`profile_probs`: the softmax of every configuration on every input, cached under
    ``cache_dir("profiles", <model fingerprint>)``.
``parallel``
    :func:`map_logits` / :func:`batched_logits`: logits of many configurations, here (the
    steps that configurations run under the same knobs computed once,
    :func:`shared_prefix_logits`) or on a ``concurrent.futures`` executor or a Dask client.
``stats``
    :func:`softmax_stats`, :func:`per_class`, :func:`confidence_arrays`: accuracy and
    confidence statistics.
``meter``
    :class:`~mobiprox_lab.profiler.meter.EnergyMeter`: joules from hardware counters (Zeus),
    when available (also importable from :mod:`mobiprox_lab.energy`).
``calibration``
    :func:`kernel_paths`: this machine's calibrated kernel path thresholds, put in force
    before every timing, cached under ``cache_dir("kernel_paths")``.
``fingerprint``
    :func:`code_fingerprint`, :func:`machine_key`, :func:`model_fingerprint`,
    :func:`structure_fingerprint`, :func:`config_key`: what the caches are keyed by.
``common``
    shared constants (:data:`PROFILE_BATCH_SIZE`, :data:`SMALL_BATCH_REPEATS`,
    :data:`CLOCKS`, :data:`TIMING_THREADS`), :func:`data_arrays` and :func:`timing_rounds`
    (each batch size timed in a phase of its own).

Every cache is written atomically.
"""

from __future__ import annotations

from .calibration import kernel_paths
from .common import (
    CLOCKS,
    EXACT,
    PROFILE_BATCH_SIZE,
    SMALL_BATCH_REPEATS,
    TIMING_THREADS,
    data_arrays,
    timing_rounds,
)
from .cost import CostModel, config_cost, fp16_fraction, predicted_speedup
from .fingerprint import (
    code_fingerprint,
    config_key,
    cpu_model,
    machine_key,
    model_fingerprint,
    semantics_fingerprint,
    structure_fingerprint,
)
from .latency import LatencyTable, measure_latency_table
from .measure import profile
from .parallel import batched_logits, map_logits, shared_prefix_logits
from .probs import profile_probs, softmax
from .stats import confidence_arrays, per_class, softmax_stats

__all__ = [
    "CLOCKS",
    "EXACT",
    "PROFILE_BATCH_SIZE",
    "SMALL_BATCH_REPEATS",
    "TIMING_THREADS",
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
    "kernel_paths",
    "machine_key",
    "map_logits",
    "measure_latency_table",
    "model_fingerprint",
    "per_class",
    "predicted_speedup",
    "profile",
    "profile_probs",
    "semantics_fingerprint",
    "shared_prefix_logits",
    "softmax",
    "softmax_stats",
    "structure_fingerprint",
    "timing_rounds",
]
