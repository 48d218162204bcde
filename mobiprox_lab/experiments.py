"""Former home of the evaluation protocol; it lives in
:mod:`mobiprox_lab.orchestration.experiments` (task setups in
:mod:`mobiprox_lab.orchestration.tasks`).

Kept so that ``from mobiprox_lab import experiments`` (widgets, older notebooks) still works.
"""

from __future__ import annotations

from .orchestration.experiments import (
    AUTHORS_TEMPERATURES,
    MAX_LOSS_PP,
    QUICK_TRACE_SEEDS,
    REGIMES,
    STEPPING_ENGINES,
    TRACE_SEEDS,
    TRACE_TASK,
    TRACES,
    TaskSetup,
    aggregate,
    best_controller,
    build_trace,
    controller_runs,
    controller_suite,
    controller_tables,
    energy_accounting_check,
    energy_shares,
    headline,
    run_controllers,
    task_setup,
    trace_data,
    trace_probs,
    trace_units,
)

__all__ = [
    "AUTHORS_TEMPERATURES", "MAX_LOSS_PP", "QUICK_TRACE_SEEDS", "REGIMES", "STEPPING_ENGINES",
    "TRACES", "TRACE_SEEDS", "TRACE_TASK", "TaskSetup", "aggregate", "best_controller",
    "build_trace", "controller_runs", "controller_suite", "controller_tables",
    "energy_accounting_check", "energy_shares", "headline", "run_controllers", "task_setup",
    "trace_data", "trace_probs", "trace_units",
]
