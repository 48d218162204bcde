"""End-to-end evaluation: tuned configuration lists, traces, and every controller on them.

The figure pipeline and the notebooks call these functions on a task's
:class:`~.tasks.TaskSetup` (:func:`~.tasks.task_setup`, re-exported here); each expensive
piece (trained weights, single-op profiles, the search, softmax per configuration) is
cached by the module that computes it, so a second call costs seconds.

The protocol (what a controller's number means):

- Everything a controller is fitted with comes from the **tune** split: the confidence
  tables and the softmax temperature. Every trace is built from **test** subjects /
  voices only.
- Each trace is evaluated on several units: the HAR sessions trace once per test
  subject, the HAR day and the KWS stream once per seed. Tables give the mean and a 95%
  Student-t interval over units.
- ``loss_pp`` is the agreement loss against the exact model (the authors' scoring of
  adaptation); ``accuracy`` uses true labels on labelled inputs only.
- Energy: ``relative_energy`` (per configuration) is the relative inference energy
  the energy law gives each configuration's *measured* speedup at the profiling batch
  (continuous inference: inputs queue up); ``relative_energy_b1`` the same at batch 1
  (duty-cycled: one inference per sensing window runs alone). System-wide savings
  are ``share x (1 - relative inference energy)`` in two regimes: continuous inference
  (the authors' measuring condition) and duty-cycled (one inference per sensing window).
- Baselines in every table: no controller (exact), each static configuration, the best
  static time-share at the controller's loss, and the oracle.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import control, energy, evaluation
from .tasks import TaskSetup, energy_shares, task_setup

__all__ = [
    "AUTHORS_TEMPERATURES", "MAX_LOSS_PP", "QUICK_TRACE_SEEDS", "REGIMES", "STEPPING_ENGINES",
    "TEST_GROUP_KIND", "TRACES", "TRACE_SEEDS", "TRACE_TASK", "TaskSetup", "aggregate",
    "best_controller", "build_trace", "controller_runs", "controller_suite", "controller_tables",
    "energy_accounting_check", "energy_shares", "headline", "run_controllers", "task_setup",
    "trace_data", "trace_probs", "trace_units",
]

TRACES = ("har_sessions", "har_day", "kws_context")
TRACE_TASK = {"har_sessions": "har", "har_day": "har", "kws_context": "kws"}
#: Seeds each synthetic-schedule trace is evaluated on (the sessions trace uses subjects).
TRACE_SEEDS = 5
QUICK_TRACE_SEEDS = 2
#: The temperatures the authors tried for the confidence controller (besides T = 1).
AUTHORS_TEMPERATURES = (1.25, 1.5, 2.0)
REGIMES = energy.REGIMES
MAX_LOSS_PP = 1.0


def build_trace(name: str, setup: TaskSetup, *, quick: bool = False, seed: int = 0,
                subject: int | None = None):
    """One of :data:`TRACES` on the setup's held-out data (cached on the setup).

    seed : the schedule's seed (HAR day, KWS stream); subject : the test subject whose
        sessions the HAR sessions trace replays (None: all test subjects in turn).
    """
    from ..datasets import traces

    if name not in TRACES:
        raise ValueError(f"name: expected one of {TRACES}, got {name!r}")
    if TRACE_TASK[name] != setup.task:
        raise ValueError(f"name: trace {name!r} needs a {TRACE_TASK[name]!r} setup, "
                         f"got {setup.task!r}")
    key = (name, seed, subject)
    if key not in setup.traces:
        if name == "har_sessions":
            trace = traces.har_sessions(setup.splits,
                                        subject="all" if subject is None else subject,
                                        max_steps=300 if quick else None)
        elif name == "har_day":
            trace = traces.har_day(setup.splits, hours=2.0 if quick else 24.0, seed=seed)
        else:
            trace = traces.kws_context(splits=setup.splits, minutes=5.0 if quick else 15.0,
                                       seed=seed, quick=quick)
        setup.traces[key] = trace
    return setup.traces[key]


def trace_units(name: str, setup: TaskSetup, *, quick: bool = False) -> list[dict]:
    """The independent units a trace is evaluated on: one per test subject for the HAR
    sessions, one per seed for the others. Each is a dict of :func:`build_trace` kwargs."""
    if name == "har_sessions":
        subjects = np.unique(setup.splits.test.group)
        return [{"subject": int(s)} for s in subjects]
    n = QUICK_TRACE_SEEDS if quick else TRACE_SEEDS
    return [{"seed": s} for s in range(n)]


def trace_probs(setup: TaskSetup, trace, *, progress: bool = True) -> np.ndarray:
    """Softmax of every configuration on every step: float32 (n_configs, T, n_classes).

    Computed once per pool item (cached by the profiler) and gathered in trace order.
    """
    from .. import profiler

    pool = profiler.profile_probs(setup.model, setup.tuned.config_list, trace.pool_x,
                                  progress=progress)
    return pool[:, trace.pool_index]


#: The built-in engines (``control.BUILTINS`` names) the suite runs at factor 1 and 2 with no
#: fitted parameters; "confidence" joins them once per temperature, "none" and "static" as
#: baselines.
STEPPING_ENGINES = tuple(name for name in control.BUILTINS
                         if name not in ("none", "static", "confidence"))


def trace_data(setup: TaskSetup, trace):
    """A ``widgets.TraceData`` of ``trace`` for the controller playground: the softmax of
    every configuration on every step, the setup's relative energy, tune-split confidence
    tables and energy shares."""
    from ..widgets import TraceData

    probs = control.prepare_probs(trace_probs(setup, trace, progress=False))
    conf_correct, conf_wrong = setup.confidence_tables()
    return TraceData(trace, probs, setup.relative_energy, conf_correct, conf_wrong,
                     dict(setup.shares))


def controller_suite(setup: TaskSetup) -> dict[str, tuple[control.Controller, float]]:
    """name -> (controller, softmax temperature it reads): every built-in engine x factor
    1 / 2, the confidence controller at the tune-fitted temperature and at the authors'
    temperatures, each static configuration, no controller and the oracle. Factor 2 only
    with at least four configurations: with three or fewer, every index a doubled step
    reaches (capped at the last configuration) is the one a step of 1 reaches, so the x2
    rows would repeat the x1 ones (both tasks' lists on an Emerald Rapids VM: 3 and 2)."""
    n = setup.n_configs
    suite: dict[str, tuple[control.Controller, float]] = {
        "oracle (matches exact)": (control.OracleController(n, setup.relative_energy,
                                                            target="baseline"), 1.0),
        "none (exact)": (control.NoController(n), 1.0),
    }
    for i in range(1, n):
        suite[f"static conf{i}"] = (control.StaticController(n, i), 1.0)
    temps = {"": 1.0, f" T={setup.temperature:.2f} (fitted)": setup.temperature}
    temps.update({f" T={t:g}": t for t in AUTHORS_TEMPERATURES})
    tables = {label: setup.confidence_tables(t) for label, t in temps.items()}
    for factor in (1, 2) if n >= 4 else (1,):
        for engine in STEPPING_ENGINES:
            suite[f"{engine} x{factor}"] = (control.BUILTINS[engine](n, factor=factor), 1.0)
        for label, t in temps.items():
            suite[f"confidence x{factor}{label}"] = (
                control.BUILTINS["confidence"](n, *tables[label], factor=factor), t)
    return suite


def _kind(name: str) -> str:
    if name.startswith("oracle"):
        return "oracle"
    if name.startswith(("none", "static")):
        return "static"
    return "controller"


def run_controllers(setup: TaskSetup, trace, probs: np.ndarray | None = None, *,
                    suite: dict | None = None, unit: str = "") -> tuple[pd.DataFrame, dict]:
    """Simulate every controller of ``suite`` on ``trace``: (one row per controller,
    {name: SimResult}).

    Row columns: trace, unit, controller, kind ("controller" / "static" / "oracle"),
    loss_pp (agreement loss vs exact), accuracy / baseline_accuracy / accuracy_loss_pp
    (labelled steps; NaN without labels), relative_inference_energy, saving_continuous,
    saving_duty_cycled (system-wide fractions), timeshare_energy (the best static
    time-share's relative energy at the row's loss), best_static_saving_continuous,
    switches, mean_index.
    """
    probs = trace_probs(setup, trace, progress=False) if probs is None else probs
    suite = controller_suite(setup) if suite is None else suite
    y = np.asarray(trace.y)
    labelled = np.asarray(trace.mark) == 0  # marked steps: scored by agreement only
    statics = evaluation.static_points(probs, setup.relative_energy)
    prepared = {1.0: control.prepare_probs(probs)}
    results, rows = {}, []
    for name, (ctrl, temperature) in suite.items():
        if temperature not in prepared:
            prepared[temperature] = control.prepare_probs(
                evaluation.temper(probs, temperature).astype(np.float32))
        res = control.simulate(prepared[temperature], ctrl, setup.relative_energy,
                               inference_share=setup.shares["continuous"])
        res.controller = name
        results[name] = res
        rel = float(res.relative_energy.mean())
        rel_b1 = float(setup.relative_energy_b1[res.index].mean())
        loss = 100.0 * (1.0 - float(res.agree.mean()))
        acc = float(np.mean(res.pred[labelled] == y[labelled])) if labelled.any() else math.nan
        base = (float(np.mean(res.baseline_pred[labelled] == y[labelled]))
                if labelled.any() else math.nan)
        ts = evaluation.best_timeshare_energy(statics["loss_pp"], statics["relative_energy"],
                                              loss)
        rows.append({
            "trace": trace.name, "unit": unit, "controller": name, "kind": _kind(name),
            "loss_pp": loss, "accuracy": acc, "baseline_accuracy": base,
            "accuracy_loss_pp": 100.0 * (base - acc),
            "relative_inference_energy": rel,
            "saving_continuous": setup.shares["continuous"] * (1.0 - rel),
            "saving_duty_cycled": setup.shares["duty_cycled"] * (1.0 - rel_b1),
            "timeshare_energy": ts,
            "best_static_saving_continuous": setup.shares["continuous"] * (1.0 - ts),
            "switches": int(np.count_nonzero(np.diff(res.index))),
            "mean_index": float(res.index.mean()),
        })
    return pd.DataFrame(rows), results


def controller_runs(name: str, setup: TaskSetup, *, quick: bool = False,
                    progress: bool = True) -> pd.DataFrame:
    """Every controller on every unit of trace ``name`` (see :func:`trace_units`): the long
    table of :func:`run_controllers` rows (computed once per setup, trace and ``quick``)."""
    from tqdm.auto import tqdm

    key = (name, quick)
    if key not in setup.runs:
        suite = controller_suite(setup)
        frames = []
        units = trace_units(name, setup, quick=quick)
        for kw in tqdm(units, desc=f"controllers on {name}", disable=not progress):
            trace = build_trace(name, setup, quick=quick, **kw)
            unit = ",".join(f"{k}={v}" for k, v in kw.items())
            frames.append(run_controllers(setup, trace, suite=suite, unit=unit)[0])
        setup.runs[key] = pd.concat(frames, ignore_index=True)
    return setup.runs[key].copy()


_MEAN_COLUMNS = ("loss_pp", "accuracy_loss_pp", "accuracy", "relative_inference_energy",
                 "saving_continuous", "saving_duty_cycled", "best_static_saving_continuous",
                 "switches")


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (trace, controller): the mean over units of each metric, with ``<metric>_lo`` /
    ``<metric>_hi`` 95% intervals and ``n_units``; rows in the suite's order."""
    rows = []
    for (trace, ctrl), sub in runs.groupby(["trace", "controller"], sort=False):
        row = {"trace": trace, "controller": ctrl, "kind": sub["kind"].iloc[0],
               "n_units": len(sub)}
        for col in _MEAN_COLUMNS:
            m, lo, hi = evaluation.mean_ci(sub[col])
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = m, lo, hi
        rows.append(row)
    return pd.DataFrame(rows)


def controller_tables(setups: dict[str, TaskSetup], *, quick: bool = False,
                      progress: bool = True) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """(runs, tables): every controller on every trace of :data:`TRACES`, the pipeline's and
    notebook 04's controller tables.

    setups : task -> TaskSetup (both "har" and "kws"). runs : the long table of every
    trace's :func:`controller_runs`; tables : trace name -> its :func:`aggregate` table.
    """
    missing = sorted({TRACE_TASK[n] for n in TRACES} - set(setups))
    if missing:
        raise ValueError(f"setups: expected a TaskSetup for each of {missing}")
    runs, tables = [], {}
    for name in TRACES:
        long = controller_runs(name, setups[TRACE_TASK[name]], quick=quick, progress=progress)
        runs.append(long)
        tables[name] = aggregate(long)
    return pd.concat(runs, ignore_index=True), tables


def best_controller(table: pd.DataFrame, *, max_loss_pp: float = MAX_LOSS_PP) -> pd.Series | None:
    """The controller row (kind "controller") with the largest mean continuous saving at a
    mean agreement loss <= ``max_loss_pp``, or None when none qualifies."""
    ok = table[(table["kind"] == "controller")
               & (table["loss_pp"] <= max_loss_pp + evaluation.LOSS_TOLERANCE_PP)]
    if not len(ok):
        return None
    return ok.loc[ok["saving_continuous"].idxmax()]


#: Who a test split's groups are, per task (the unit of the test accuracy's interval).
TEST_GROUP_KIND = {"har": "subjects", "kws": "voices"}


def _accuracy(setup: TaskSetup, splits: tuple[str, ...] = ("test",)
              ) -> tuple[float, float, float]:
    """(accuracy, low, high) of the exact network on the windows of ``splits`` together,
    measured in this run (shipped weights carry the accuracy of the machine that trained
    them), the interval from a bootstrap over the splits' groups (HAR subjects, KWS
    voices)."""
    from .. import models

    parts = [getattr(setup.splits, name) for name in splits]
    correct = np.concatenate([
        models.predict_logits(setup.trained.module, part.x).argmax(1) == part.y
        for part in parts])
    return evaluation.grouped_accuracy_ci(correct, np.concatenate([p.group for p in parts]))


def headline(setups: dict[str, TaskSetup], tables: dict[str, pd.DataFrame], *,
             max_loss_pp: float = MAX_LOSS_PP) -> dict:
    """The machine-readable headline (``figures/headline.json``), per task.

    setups : task -> TaskSetup; tables : trace name -> :func:`aggregate` table.
    """
    out: dict = {}
    for task, setup in setups.items():
        cfg = setup.configs
        acc, lo, hi = _accuracy(setup)
        pooled, pooled_lo, pooled_hi = _accuracy(setup, ("tune", "test"))
        entry = {
            "train_accuracy": float(setup.trained.info["train_acc"]),
            "tune_accuracy": float(setup.trained.info["tune_acc"]),
            "test_accuracy": acc,
            "test_accuracy_ci": [lo, hi],
            "test_groups": int(len(np.unique(setup.splits.test.group))),
            "test_group_kind": TEST_GROUP_KIND[task],
            # every held-out group, tune and test together: the pool the paper's tune
            # and test halves were both drawn from (UCI-HAR's 9 test subjects)
            "held_out_accuracy": pooled,
            "held_out_accuracy_ci": [pooled_lo, pooled_hi],
            "held_out_groups": int(len(np.unique(np.concatenate(
                [setup.splits.tune.group, setup.splits.test.group])))),
            "n_configs": int(setup.n_configs),
            "measured_speedup": [float(v) for v in cfg["speedup"]],
            "relative_energy": [float(v) for v in setup.relative_energy],
            "measured_speedup_batch1": [float(v) for v in cfg["speedup_b1"]],
            "relative_energy_batch1": [float(v) for v in setup.relative_energy_b1],
            "qos_loss_test_pp": [float(v) for v in cfg["qos_loss_test"]],
            "cost_model_median_error": float(np.median(np.abs(
                cfg["predicted_speedup"] - cfg["speedup"]) / cfg["speedup"])),
            "energy_shares": dict(setup.shares),
            "temperature": float(setup.temperature),
            "traces": {},
        }
        for trace, table in tables.items():
            if TRACE_TASK[trace] != task:
                continue
            best = best_controller(table, max_loss_pp=max_loss_pp)
            oracle = table[table["kind"] == "oracle"].iloc[0]
            t = {"n_units": int(oracle["n_units"]),
                 "oracle_saving_continuous": float(oracle["saving_continuous"]),
                 "oracle_saving_duty_cycled": float(oracle["saving_duty_cycled"])}
            if best is None:
                t.update(best_controller=None)
            else:
                t.update({
                    "best_controller": str(best["controller"]),
                    "loss_pp": float(best["loss_pp"]),
                    "accuracy_loss_pp": _num(best["accuracy_loss_pp"]),
                    "saving_continuous": float(best["saving_continuous"]),
                    "saving_duty_cycled": float(best["saving_duty_cycled"]),
                    "saving_continuous_ci": [_num(best["saving_continuous_lo"]),
                                             _num(best["saving_continuous_hi"])],
                    "best_static_saving_continuous": _num(
                        best["best_static_saving_continuous"]),
                })
            entry["traces"][trace] = t
        out[task] = entry
    return out


def _num(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def energy_accounting_check() -> pd.DataFrame:
    """A check that can fail: the simulator's relative energy of hand-written schedules
    under the authors' measured HAR coefficients, against the value worked out by hand.

    The coefficients are the authors' phone table (package data); each schedule is replayed
    through :class:`control.ReplayController` and :func:`control.simulate`.
    """
    coeff = energy.load_authors_har_table()["relative_energy"].to_numpy(np.float64)
    cases = [  # schedule, relative energy worked out by hand from the table
        ([0, 1, 1, 8, 8, 8, 0, 2], (1 + 2 * 0.858578929 + 3 * 0.779829376 + 1 + 0.83936881) / 8),
        ([9, 9, 9, 9], 0.815236845),
        ([0, 5], (1 + 0.916209283) / 2),
    ]
    rows = []
    for schedule, by_hand in cases:
        n = len(coeff)
        probs = np.full((n, len(schedule), 2), 0.5, np.float32)
        res = control.simulate(probs, control.ReplayController(n, schedule), coeff)
        sim = float(res.relative_energy.mean())
        rows.append({"schedule": " ".join(map(str, schedule)), "by_hand": by_hand,
                     "simulated": sim, "abs_error": abs(sim - by_hand)})
    return pd.DataFrame(rows)
