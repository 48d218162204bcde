"""The figure pipeline behind ``make figures`` / ``mobiprox-lab figures``.

Steps (each cached by the modules it calls, so a rerun redoes only what is missing):
kernel benchmark -> HAR / KWS setup (data, training, tuning, profiling) -> the paper's
offline figures -> energy-model calibration -> traces and controllers -> summary
tables. A failing step is named with its error; the others still run and everything
finished is kept. Writes ``<out>/*.png``, ``<out>/summary.md`` and ``<out>/summary.csv``
(:mod:`.summary`) and ``<out>/headline.json``.

Each figure has one function here, ``figure_<name>(ctx, ...)``, that draws it with the
figure functions of :mod:`mobiprox_lab.plots` from results a step computed, and writes
``<out>/<name>.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from .. import cache
from ..plots import TASK_NAMES
from . import experiments
from .runner import Context, Step, run_steps
from .summary import results_markdown, update_readme, write_summary

#: results_markdown is re-exported: notebook 05 renders the headline with it after the run.
__all__ = [
    "EXPECTED_FIGURES", "figure_adaptation", "figure_config_knobs", "figure_confidence",
    "figure_controllers", "figure_energy_calibration", "figure_energy_vs_qos",
    "figure_kernel_breakdown", "figure_kernel_feature_maps", "figure_kernel_speedups",
    "figure_pareto", "figure_per_class", "make_figures", "pipeline_steps", "results_markdown",
    "step_controllers", "step_energy_calibration", "step_kernels", "step_offline_figures",
]

TUNER_THRESHOLD = 3.0

EXPECTED_FIGURES = (
    "kernel_speedups", "kernel_breakdown", "kernel_feature_maps",
    "energy_vs_qos", "pareto", "per_class_har", "per_class_kws",
    "confidence_har", "confidence_kws", "config_knobs_har", "energy_calibration",
    "adaptation_har_sessions", "adaptation_kws_context", "controllers",
    "controllers_duty_cycled",
)


def _headless() -> None:
    import matplotlib

    matplotlib.use("Agg")


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


# ---------------------------------------------------------------------------- figures
def figure_kernel_speedups(ctx: Context, speedups: pd.DataFrame) -> None:
    from ..plots import kernels as kplots

    _close(kplots.plot_kernel_speedups(speedups, path=ctx.figure_path("kernel_speedups")))


def figure_kernel_breakdown(ctx: Context, breakdown: pd.DataFrame) -> None:
    from ..plots import kernels as kplots

    _close(kplots.plot_kernel_breakdown(breakdown, path=ctx.figure_path("kernel_breakdown")))


def figure_kernel_feature_maps(ctx: Context) -> None:
    from ..plots import kernels as kplots

    _close(kplots.plot_feature_maps(path=ctx.figure_path("kernel_feature_maps")))


def figure_energy_vs_qos(ctx: Context, setups: dict) -> None:
    from .. import energy
    from ..plots import tuning as tplots

    _close(tplots.plot_energy_vs_qos({t: s.configs for t, s in setups.items()},
                                     tuner_threshold=TUNER_THRESHOLD, law=energy.authors_law(),
                                     authors=energy.load_authors_har_table(),
                                     path=ctx.figure_path("energy_vs_qos")))


def figure_pareto(ctx: Context, setups: dict) -> None:
    from ..plots import tuning as tplots

    _close(tplots.plot_pareto({t: s.tuned for t, s in setups.items()},
                              path=ctx.figure_path("pareto")))


def figure_per_class(ctx: Context, setup) -> None:
    from ..plots import tuning as tplots

    _close(tplots.plot_per_class_heatmaps(setup.configs, setup.labels,
                                          title=TASK_NAMES[setup.task],
                                          path=ctx.figure_path(f"per_class_{setup.task}")))


def figure_confidence(ctx: Context, setup) -> None:
    from ..plots import tuning as tplots

    _close(tplots.plot_confidence_vs_qos(setup.configs, setup.labels,
                                         title=TASK_NAMES[setup.task],
                                         path=ctx.figure_path(f"confidence_{setup.task}")))


def figure_config_knobs(ctx: Context, setup) -> None:
    from ..plots import tuning as tplots

    _close(tplots.plot_config_knobs(setup.configs, setup.model.tunable_ops,
                                    path=ctx.figure_path(f"config_knobs_{setup.task}")))


def figure_energy_calibration(ctx: Context, speedup, relative_energy, law) -> None:
    from ..plots import control as cplots

    _close(cplots.plot_energy_calibration(speedup, relative_energy, law,
                                          path=ctx.figure_path("energy_calibration")))


def figure_controllers(ctx: Context, table: pd.DataFrame, regime: str) -> None:
    from ..plots import control as cplots

    suffix = "" if regime == "continuous" else f"_{regime}"
    _close(cplots.plot_controller_comparison(
        table, regime=regime, path=ctx.figure_path(f"controllers{suffix}")))


def figure_adaptation(ctx: Context, name: str, setup, head: dict,
                      table: pd.DataFrame) -> None:
    """The headline's best controller on the first unit of trace ``name`` (the controller
    of lowest loss when none is within the headline's loss budget)."""
    from ..plots import control as cplots

    best = head[setup.task]["traces"][name].get("best_controller")
    why = f"best continuous saving within {experiments.MAX_LOSS_PP:g} pp"
    if best is None:  # none qualifies: show the controller that comes closest
        own = table[table["kind"] == "controller"]
        best = str(own.loc[own["loss_pp"].idxmin(), "controller"])
        why = f"no controller within {experiments.MAX_LOSS_PP:g} pp; the lowest loss"
    unit = experiments.trace_units(name, setup, quick=ctx.quick)[0]
    trace = experiments.build_trace(name, setup, quick=ctx.quick, **unit)
    _, results = experiments.run_controllers(
        setup, trace, suite={best: experiments.controller_suite(setup)[best]})
    _close(cplots.plot_adaptation_trace(
        trace, results[best], steps=None if name == "har_sessions" else 1800,
        title=f"{best} on {name} ({', '.join(f'{k} {v}' for k, v in unit.items())}; "
              f"{why})",
        path=ctx.figure_path(f"adaptation_{name}")))


# ------------------------------------------------------------------------------ steps
def step_kernels(ctx: Context) -> None:
    from .. import kernelbench, profiler

    profiler.kernel_paths()  # the paths every later timing of the pipeline runs
    layers = kernelbench.bench_layers(quick=ctx.quick)
    speed = kernelbench.speedups(layers)
    breakdown = kernelbench.bench_breakdown(quick=ctx.quick)
    ctx.results["kernel_speedups"] = speed
    ctx.tables["kernel ratios"] = kernelbench.summary(layers)
    figure_kernel_speedups(ctx, speed)
    figure_kernel_breakdown(ctx, breakdown)
    figure_kernel_feature_maps(ctx)


# speedup follows the profile's clock (CPU time by default) on its kernel threads (one by
# default): cpu_s beside latency_s (wall) shows both medians, since on a shared machine
# they can disagree on the order
CONFIG_COLUMNS = ("name", "predicted_speedup", "speedup", "speedup_b1", "clock", "threads",
                  "cpu_s", "latency_s",
                  "qos_loss_tune", "qos_loss_test", "relative_energy", "n_approx_ops")


def _setup_step(task: str):
    def run(ctx: Context) -> None:
        setup = experiments.task_setup(task, quick=ctx.quick, seed=ctx.seed)
        ctx.results[f"setup_{task}"] = setup
        info = setup.trained.info
        ctx.tables.setdefault("baseline accuracy", pd.DataFrame())
        row = pd.DataFrame([{
            "task": task, "classes": len(setup.labels),
            "train": len(setup.splits.train), "tune": len(setup.splits.tune),
            "test": len(setup.splits.test),
            **{k: info[k] for k in ("train_acc", "tune_acc", "test_acc", "width", "epochs",
                                    "seconds") if k in info}}])
        ctx.tables["baseline accuracy"] = pd.concat([ctx.tables["baseline accuracy"], row],
                                                    ignore_index=True)
        ctx.tables[f"configurations {task}"] = setup.configs[
            [c for c in CONFIG_COLUMNS if c in setup.configs]].copy()
        ctx.tables[f"candidates {task}"] = candidate_decisions(setup.tuned.candidates)
    return run


def candidate_decisions(candidates: pd.DataFrame) -> pd.DataFrame:
    """What became of a tuning's candidates (``TuneResult.candidates``), one row a decision
    (the row it refers to left out), most frequent first: how many, and the speedups
    measured in the candidates' session (median, max) and, for those timed again in a list
    session, there (min, max). A final list shorter than the candidates' spread suggests
    reads against these: a spread narrower than the re-timing noise leaves the final rule
    little to order."""
    decision = candidates["decision"].str.replace(
        r" (over )?row \d+$", "", regex=True).str.replace(" by$", "", regex=True)
    table = candidates.assign(decision=decision).groupby("decision", sort=False).agg(
        candidates=("decision", "size"), speedup_median=("speedup", "median"),
        speedup_max=("speedup", "max"), retimed_min=("retimed_speedup", "min"),
        retimed_max=("retimed_speedup", "max"))
    return table.sort_values("candidates", ascending=False, kind="stable").reset_index()


def _setups(ctx: Context) -> dict:
    return {t: ctx.results[f"setup_{t}"] for t in ("har", "kws")}


def step_offline_figures(ctx: Context) -> None:
    setups = _setups(ctx)
    figure_energy_vs_qos(ctx, setups)
    figure_pareto(ctx, setups)
    for setup in setups.values():
        figure_per_class(ctx, setup)
        figure_confidence(ctx, setup)
    figure_config_knobs(ctx, setups["har"])


def step_energy_calibration(ctx: Context) -> None:
    from .. import energy

    table = energy.load_authors_har_table()
    approx = table[table["config"] > 0]  # conf0 is (1, 1) by definition: no information
    law = energy.fit(approx["speedup"], approx["relative_energy"], fixed_cost=0.0)
    free = energy.fit(approx["speedup"], approx["relative_energy"])
    ctx.tables["energy law fit"] = pd.DataFrame([
        {"model": name, **f.params, "k_stderr": f.stderr["k"], "rmse": f.rmse,
         "max_abs_error": f.max_abs_error, "rmse_of_1_over_speedup": f.rmse_inverse_speedup}
        for name, f in (("speedup^-k (the law used)", law),
                        ("a + (1 - a) speedup^-k (free fit, not used)", free))])
    figure_energy_calibration(ctx, approx["speedup"], approx["relative_energy"], law)


CONTROLLER_COLUMNS = [
    "trace", "controller", "kind", "n_units", "loss_pp", "loss_pp_lo", "loss_pp_hi",
    "accuracy_loss_pp", "relative_inference_energy", "saving_continuous",
    "saving_continuous_lo", "saving_continuous_hi", "saving_duty_cycled",
    "best_static_saving_continuous", "switches"]


def step_controllers(ctx: Context) -> None:
    setups = _setups(ctx)
    runs, tables = experiments.controller_tables(setups, quick=ctx.quick)
    table = pd.concat(tables.values(), ignore_index=True)
    ctx.results["controller_runs"] = runs
    ctx.tables["controllers"] = table[CONTROLLER_COLUMNS]
    head = experiments.headline(setups, tables)
    ctx.results["headline"] = head
    cache.save_json(ctx.out_dir / "headline.json", head)
    ctx.tables["energy accounting check"] = experiments.energy_accounting_check()
    for regime in experiments.REGIMES:
        figure_controllers(ctx, table, regime)
    for name in ("har_sessions", "kws_context"):
        figure_adaptation(ctx, name, setups[experiments.TRACE_TASK[name]], head, tables[name])


def pipeline_steps() -> list[Step]:
    return [
        Step("kernels", step_kernels, title="kernel benchmark and kernel figures"),
        Step("har", _setup_step("har"), title="HAR: data, training, tuning, profiling"),
        Step("kws", _setup_step("kws"), title="KWS: data, training, tuning, profiling"),
        Step("offline", step_offline_figures, needs=("har", "kws"),
             title="paper figures 1-4 (energy, Pareto, per class, confidence)"),
        Step("energy", step_energy_calibration, title="energy model calibration"),
        Step("control", step_controllers, needs=("har", "kws"),
             title="traces and controllers (figures 5-6)"),
    ]


def make_figures(out_dir: str | Path | None = None, *, quick: bool = False, seed: int = 0,
                 steps: list[Step] | None = None) -> int:
    """Run the pipeline; return 0 if every step succeeded, else 1 (the CLI's exit code)."""
    _headless()
    out = Path(out_dir) if out_dir is not None else cache.REPO_ROOT / "figures"
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out_dir=out, quick=quick, seed=seed)
    start = time.perf_counter()
    outcomes = run_steps(pipeline_steps() if steps is None else steps, ctx)
    md, csv = write_summary(ctx, outcomes)
    if "headline" in ctx.results:
        ctx.results["headline"]["pipeline_seconds"] = {
            o.name: round(o.seconds, 1) for o in outcomes}
        cache.save_json(out / "headline.json", ctx.results["headline"])
    if not quick and steps is None and out == cache.REPO_ROOT / "figures" \
            and "headline" in ctx.results:
        update_readme(cache.REPO_ROOT / "README.md", ctx.results["headline"])
    failed = [o for o in outcomes if o.status != "ok"]
    print(f"figures: {sum(p.exists() for p in ctx.figures)} PNG files, {md.name}, {csv.name} "
          f"in {out} ({time.perf_counter() - start:.0f} s)")
    for o in failed:
        print(f"figures: step {o.name!r} {o.status}: {o.error}")
    return 1 if failed else 0
