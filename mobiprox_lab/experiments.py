"""End-to-end evaluation: tuned configuration lists, traces, and every controller on them.

The figure pipeline and the notebooks call these functions; each expensive piece
(trained weights, single-op profiles, the search, softmax per configuration) is
cached by the module that computes it, so a second call costs seconds.

Energy bookkeeping: ``energy_by_config`` is the *relative inference energy* of each
configuration from the profiler (measured latency through :mod:`mobiprox_lab.energy`).
System-wide savings use the energy model's share of inference in the phone's energy
per sensing window (``energy.default_inference_share`` of the task's phone profile:
one HAR inference every 1.28 s, one KWS inference every second).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import control, energy

TRACES = ("har_replay", "har_day", "kws_context")
TRACE_TASK = {"har_replay": "har", "har_day": "har", "kws_context": "kws"}


@dataclass
class TaskSetup:
    """A trained, tuned and profiled task: what the controllers need.

    configs : the final list conf0 (exact) .. confN (``tuner.TuneResult.configs``).
    energy_by_config : float64 (n_configs,) inference energy relative to conf0.
    conf_correct, conf_wrong : float64 (n_configs, n_classes) mean confidences per
        predicted class on the test set (for ``ConfidenceController``).
    inference_share : exact inference energy / phone energy per sensing window.
    """

    task: str
    trained: object
    tuned: object
    model: object
    splits: object
    configs: pd.DataFrame
    energy_by_config: np.ndarray
    conf_correct: np.ndarray
    conf_wrong: np.ndarray
    inference_share: float
    traces: dict = field(default_factory=dict)

    @property
    def n_configs(self) -> int:
        return len(self.configs)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.splits.labels)


_SETUPS: dict[tuple, TaskSetup] = {}


def _energy_vector(configs: pd.DataFrame) -> np.ndarray:
    """Relative inference energy per config; the linear cost model where none was measured."""
    e = configs.get("rel_inference_energy")
    e = np.full(len(configs), np.nan) if e is None else e.to_numpy(np.float64)
    fallback = 1.0 / configs["predicted_speedup"].to_numpy(np.float64)
    e = np.where(np.isfinite(e) & (e > 0), e, fallback)
    return e / e[0]


def task_setup(task: str, *, quick: bool = False, seed: int = 0, trials: int | None = None,
               progress: bool = True) -> TaskSetup:
    """Train (or load), tune and profile ``task`` ("har" or "kws"); memoised per process."""
    from . import datasets, models, profiler, tuner

    if task not in datasets.TASKS:
        raise ValueError(f"task: expected one of {datasets.TASKS}, got {task!r}")
    key = (task, quick, seed, trials)
    if key in _SETUPS:
        return _SETUPS[key]
    splits = datasets.prepare(task, quick=quick)
    trained = models.load_or_train(task, quick=quick, seed=seed, splits=splits)
    tuned = tuner.tune(trained, quick=quick, seed=seed, trials=trials,
                       tune_data=splits.tune, test_data=splits.test, progress=progress)
    configs = tuned.configs.reset_index(drop=True)
    conf_correct, conf_wrong = profiler.confidence_arrays(configs)
    profile = energy.PHONE if task == "har" else energy.PHONE_KWS
    setup = TaskSetup(task=task, trained=trained, tuned=tuned, model=tuned.model, splits=splits,
                      configs=configs, energy_by_config=_energy_vector(configs),
                      conf_correct=conf_correct, conf_wrong=conf_wrong,
                      inference_share=energy.default_inference_share(profile))
    _SETUPS[key] = setup
    return setup


def build_trace(name: str, setup: TaskSetup, *, quick: bool = False, seed: int = 0):
    """One of :data:`TRACES` on the setup's held-out data (cached on the setup)."""
    from .datasets import traces

    if name not in TRACES:
        raise ValueError(f"name: expected one of {TRACES}, got {name!r}")
    if TRACE_TASK[name] != setup.task:
        raise ValueError(f"name: trace {name!r} needs a {TRACE_TASK[name]!r} setup, "
                         f"got {setup.task!r}")
    if name not in setup.traces:
        if name == "har_replay":
            trace = traces.har_replay(setup.splits, subject="all")
        elif name == "har_day":
            trace = traces.har_day(setup.splits, hours=2.0 if quick else 24.0, seed=seed)
        else:
            trace = traces.kws_context(splits=setup.splits, minutes=5.0 if quick else 30.0,
                                       seed=seed, quick=quick)
        setup.traces[name] = trace
    return setup.traces[name]


def trace_probs(setup: TaskSetup, trace, *, progress: bool = True) -> np.ndarray:
    """Softmax of every configuration on every step: float32 (n_configs, T, n_classes).

    Computed once per pool item (cached by the profiler) and gathered in trace order.
    """
    from . import profiler

    pool = profiler.profile_probs(setup.model, setup.tuned.config_list, trace.pool_x,
                                  progress=progress)
    return pool[:, trace.pool_index]


def controller_suite(setup: TaskSetup, *, budget_target: float | None = None
                     ) -> dict[str, control.Controller]:
    """Every built-in engine (x factor 1, 2), the budget wrapper and the two oracles."""
    n = setup.n_configs
    e = setup.energy_by_config
    suite: dict[str, control.Controller] = {
        "oracle (matches exact)": control.OracleController(n, e, target="baseline"),
        "oracle-correct": control.OracleController(n, e, target="correct"),
        "none (exact)": control.NoController(n),
    }
    for factor in (1, 2):
        suite[f"naive x{factor}"] = control.NaiveController(n, factor=factor)
        suite[f"state x{factor}"] = control.StateController(n, factor=factor)
        suite[f"kalman x{factor}"] = control.KalmanController(n, factor=factor)
        suite[f"confidence x{factor}"] = control.ConfidenceController(
            n, setup.conf_correct, setup.conf_wrong, factor=factor)
    if n > 1:
        target = budget_target if budget_target is not None else float(
            1.0 - 0.5 * (1.0 - e.min()))
        suite[f"budget {target:.2f} (state x1)"] = control.BudgetController(
            control.StateController(n), e, target)
    return suite


def run_controllers(setup: TaskSetup, trace, probs: np.ndarray | None = None, *,
                    suite: dict[str, control.Controller] | None = None
                    ) -> tuple[pd.DataFrame, dict[str, control.SimResult]]:
    """Simulate every controller of ``suite`` on ``trace``: (summary table, results by name)."""
    probs = trace_probs(setup, trace) if probs is None else probs
    prepared = control.prepare(probs)
    suite = controller_suite(setup) if suite is None else suite
    results, rows = {}, []
    for name, ctrl in suite.items():
        ctrl.reset()
        res = control.simulate(prepared, ctrl, setup.energy_by_config, labels=trace.y,
                               inference_share=setup.inference_share)
        res.controller = name
        results[name] = res
        row = res.summary()
        row["controller"] = name
        row["trace"] = trace.name
        rows.append(row)
    table = pd.DataFrame(rows)
    first = ["trace", "controller", "accuracy", "baseline_accuracy", "agreement",
             "relative_inference_energy", "system_saving", "switches"]
    return table[first + [c for c in table.columns if c not in first]], results


def controller_table(trace_name: str = "har_day", *, quick: bool = False, seed: int = 0
                     ) -> pd.DataFrame:
    """All controllers x factor on one of :data:`TRACES`, oracle rows on top."""
    if trace_name not in TRACES:
        raise ValueError(f"trace_name: expected one of {TRACES}, got {trace_name!r}")
    setup = task_setup(TRACE_TASK[trace_name], quick=quick, seed=seed)
    trace = build_trace(trace_name, setup, quick=quick, seed=seed)
    return run_controllers(setup, trace)[0]


def headline(table: pd.DataFrame, *, max_loss_pp: float = 1.0) -> pd.DataFrame:
    """Per trace: the best non-oracle controller's system-wide saving at an accuracy loss of
    at most ``max_loss_pp`` vs the exact model, next to the oracle's."""
    rows = []
    for trace_name, sub in table.groupby("trace", sort=False):
        loss = 100 * (sub["baseline_accuracy"] - sub["accuracy"])
        is_oracle = sub["controller"].str.startswith("oracle")
        ok = sub[~is_oracle & (loss <= max_loss_pp)]
        oracle = sub[sub["controller"] == "oracle (matches exact)"]
        best = ok.loc[ok["system_saving"].idxmax()] if len(ok) else None
        rows.append({
            "trace": trace_name,
            "best_controller": None if best is None else best["controller"],
            "best_system_saving_pct": np.nan if best is None else 100 * best["system_saving"],
            "best_inference_saving_pct": (np.nan if best is None
                                          else 100 * (1 - best["relative_inference_energy"])),
            "best_accuracy_loss_pp": (np.nan if best is None else
                                      100 * (best["baseline_accuracy"] - best["accuracy"])),
            "oracle_system_saving_pct": (100 * oracle["system_saving"].iloc[0]
                                         if len(oracle) else np.nan),
            "paper_claim": "up to 15% system-wide",
        })
    return pd.DataFrame(rows)


def authors_mechanics_check(*, steps: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Replay the authors' measured HAR energy coefficients as ``energy_by_config``.

    Their relative energy of a run is the mean, over inputs, of the coefficient of the
    configuration used. For every engine on a synthetic 10-config stream this table
    shows our simulator's relative inference energy next to that formula evaluated
    directly on the index schedule, plus each static configuration against its
    coefficient. ``abs_error`` should be ~1e-16.
    """
    table = energy.load_authors_har_table()
    coeff = table["relative_energy"].to_numpy(np.float64)
    n = len(coeff)
    probs, _ = control.make_synthetic_probs(steps, n_configs=n, seed=seed)
    prepared = control.prepare(probs)
    ctrls: dict[str, control.Controller] = {}
    for factor in (1, 2):
        ctrls[f"naive x{factor}"] = control.NaiveController(n, factor=factor)
        ctrls[f"state x{factor}"] = control.StateController(n, factor=factor)
        ctrls[f"kalman x{factor}"] = control.KalmanController(n, factor=factor)
    for i in range(n):
        ctrls[f"static conf{i}"] = control.StaticController(n, i)
    rows = []
    for name, ctrl in ctrls.items():
        res = control.simulate(prepared, ctrl, coeff)
        direct = float(coeff[res.index].mean() / coeff[0])
        rows.append({"controller": name, "simulated_relative_energy":
                     res.summary()["relative_inference_energy"],
                     "authors_formula": direct, "mean_index": float(res.index.mean())})
    out = pd.DataFrame(rows)
    out["abs_error"] = (out["simulated_relative_energy"] - out["authors_formula"]).abs()
    return out
