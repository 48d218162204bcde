"""The figure pipeline behind ``make figures`` / ``mobiprox-lab figures``.

Steps (each cached by the modules it calls, so a rerun redoes only what is missing):
kernel benchmark -> HAR / KWS setup (data, training, tuning, profiling) -> the paper's
offline figures -> energy-model calibration -> traces and controllers -> summary
tables. A failing step is named with its error; the others still run and everything
finished is kept. Writes ``<out>/*.png``, ``<out>/summary.md`` and ``<out>/summary.csv``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import cache
from .pipeline import Context, Step, outcomes_frame, run_steps

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


# ------------------------------------------------------------------------------ steps
def step_kernels(ctx: Context) -> None:
    from . import kernelbench
    from .plots import kernels as kplots

    layers = kernelbench.bench_layers(quick=ctx.quick)
    speed = kernelbench.speedups(layers)
    breakdown = kernelbench.bench_breakdown(quick=ctx.quick)
    ctx.results["kernel_speedups"] = speed
    ctx.tables["kernel ratios"] = kernelbench.summary(layers)
    _close(kplots.plot_kernel_speedups(speed, path=ctx.figure_path("kernel_speedups")))
    _close(kplots.plot_kernel_breakdown(breakdown, path=ctx.figure_path("kernel_breakdown")))
    _close(kplots.plot_feature_maps(path=ctx.figure_path("kernel_feature_maps")))


def _setup_step(task: str):
    def run(ctx: Context) -> None:
        from . import experiments

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
        cols = ["name", "predicted_speedup", "speedup", "speedup_b1", "latency_s", "qos_loss_tune",
                "qos_loss_test", "relative_energy", "n_approx_ops"]
        ctx.tables[f"configurations {task}"] = setup.configs[
            [c for c in cols if c in setup.configs]].copy()
        decisions = setup.tuned.candidates["decision"].str.replace(
            r" (over )?row \d+$", "", regex=True).str.replace(" by$", "", regex=True)
        ctx.tables[f"candidates {task}"] = (decisions.value_counts().rename_axis("decision")
                                            .reset_index(name="candidates"))
    return run


def step_offline_figures(ctx: Context) -> None:
    from . import energy
    from .plots import tuning as tplots

    setups = {t: ctx.results[f"setup_{t}"] for t in ("har", "kws")}
    _close(tplots.plot_energy_vs_qos({t: s.configs for t, s in setups.items()},
                                     tuner_threshold=TUNER_THRESHOLD, law=energy.authors_law(),
                                     authors=energy.load_authors_har_table(),
                                     path=ctx.figure_path("energy_vs_qos")))
    _close(tplots.plot_pareto({t: s.tuned for t, s in setups.items()},
                              path=ctx.figure_path("pareto")))
    for task, s in setups.items():
        name = "HAR MobileNet" if task == "har" else "KWS CNN"
        _close(tplots.plot_per_class_heatmaps(s.configs, s.labels, title=name,
                                              path=ctx.figure_path(f"per_class_{task}")))
        _close(tplots.plot_confidence_vs_qos(s.configs, s.labels, title=name,
                                             path=ctx.figure_path(f"confidence_{task}")))
    har = setups["har"]
    _close(tplots.plot_config_knobs(har.configs, har.model.tunable_ops,
                                    path=ctx.figure_path("config_knobs_har")))


def step_energy_calibration(ctx: Context) -> None:
    from . import energy
    from .plots import control as cplots

    table = energy.load_authors_har_table()
    approx = table[table["config"] > 0]  # conf0 is (1, 1) by definition: no information
    law = energy.fit(approx["speedup"], approx["relative_energy"], fixed_cost=0.0)
    free = energy.fit(approx["speedup"], approx["relative_energy"])
    ctx.tables["energy law fit"] = pd.DataFrame([
        {"model": name, **f.params, "k_stderr": f.stderr["k"], "rmse": f.rmse,
         "max_abs_error": f.max_abs_error, "rmse_of_1_over_speedup": f.rmse_inverse_speedup}
        for name, f in (("speedup^-k (the law used)", law),
                        ("a + (1 - a) speedup^-k (free fit, not used)", free))])
    _close(cplots.plot_energy_calibration(approx["speedup"], approx["relative_energy"], law,
                                          path=ctx.figure_path("energy_calibration")))


def step_controllers(ctx: Context) -> None:
    from . import experiments
    from .plots import control as cplots

    setups = {t: ctx.results[f"setup_{t}"] for t in ("har", "kws")}
    runs, tables = [], {}
    for name in experiments.TRACES:
        setup = setups[experiments.TRACE_TASK[name]]
        long = experiments.controller_runs(name, setup, quick=ctx.quick)
        runs.append(long)
        tables[name] = experiments.aggregate(long)
    table = pd.concat(tables.values(), ignore_index=True)
    ctx.results["controller_runs"] = pd.concat(runs, ignore_index=True)
    ctx.tables["controllers"] = table[[
        "trace", "controller", "kind", "n_units", "loss_pp", "loss_pp_lo", "loss_pp_hi",
        "accuracy_loss_pp", "relative_inference_energy", "saving_continuous",
        "saving_continuous_lo", "saving_continuous_hi", "saving_duty_cycled",
        "best_static_saving_continuous", "switches"]]
    head = experiments.headline(setups, tables)
    ctx.results["headline"] = head
    cache.save_json(ctx.out_dir / "headline.json", head)
    ctx.tables["energy accounting check"] = experiments.energy_accounting_check()
    for regime in experiments.REGIMES:
        suffix = "" if regime == "continuous" else "_duty_cycled"
        _close(cplots.plot_controller_comparison(
            table, regime=regime, path=ctx.figure_path(f"controllers{suffix}")))
    for name in ("har_sessions", "kws_context"):
        setup = setups[experiments.TRACE_TASK[name]]
        best = head[setup.task]["traces"][name].get("best_controller")
        why = f"best continuous saving within {experiments.MAX_LOSS_PP:g} pp"
        if best is None:  # none qualifies: show the controller that comes closest
            own = tables[name][tables[name]["kind"] == "controller"]
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


# ---------------------------------------------------------------------------- summary
def _fmt(frame: pd.DataFrame) -> str:
    out = frame.copy()
    for c in out.columns:
        if out[c].dtype.kind == "f":
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    header = "| " + " | ".join(map(str, out.columns)) + " |"
    rule = "|" + "---|" * len(out.columns)
    rows = ["| " + " | ".join(map(str, r)) + " |" for r in out.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def write_summary(ctx: Context, outcomes) -> tuple[Path, Path]:
    """``summary.md`` (every table, then the run's steps) and ``summary.csv`` (long form)."""
    lines = ["# mobiprox_lab: summary of the figure pipeline", "",
             f"Mode: {'quick' if ctx.quick else 'full'}; seed {ctx.seed}; written "
             f"{time.strftime('%Y-%m-%d %H:%M')}.", ""]
    for name, table in ctx.tables.items():
        lines += [f"## {name}", "", _fmt(table), ""]
    lines += ["## pipeline steps", "", _fmt(outcomes_frame(outcomes)), ""]
    lines += ["## figures", ""] + [f"- `{p.name}`" for p in ctx.figures if p.exists()]
    md = ctx.out_dir / "summary.md"
    csv = ctx.out_dir / "summary.csv"
    with cache.atomic_path(md) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    long = [t.astype(object).assign(table=name) for name, t in ctx.tables.items()]
    frame = pd.concat(long, ignore_index=True) if long else pd.DataFrame()
    if len(frame):
        frame = frame[["table"] + [c for c in frame.columns if c != "table"]]
    cache.save_frame(csv, frame)
    return md, csv


RESULTS_BEGIN = "<!-- results:begin (generated from figures/headline.json) -->"
RESULTS_END = "<!-- results:end -->"


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def results_markdown(head: dict) -> str:
    """The README's results section, rendered from ``headline.json``'s dict."""
    head = {k: v for k, v in head.items() if k != "pipeline_seconds"}
    lines = ["| task | test accuracy | configurations | measured speedup by index, batch 32 "
             "(batch 1) | relative inference energy by index, batch 32 (batch 1) | "
             "cost-model median error |",
             "|---|---|---|---|---|---|"]

    def pairs(a, b) -> str:
        return " ".join(f"{x:.2f} ({y:.2f})" for x, y in zip(a, b, strict=True))

    for task, h in head.items():
        lines.append(
            f"| {task.upper()} | {h['test_accuracy']:.3f} | {h['n_configs']} | "
            f"{pairs(h['measured_speedup'], h['measured_speedup_batch1'])} | "
            f"{pairs(h['relative_energy'], h['relative_energy_batch1'])} | "
            f"{100 * h['cost_model_median_error']:.1f} % |")
    lines += ["", "| trace | best controller (loss <= 1 pp vs exact) | agreement loss | "
              "system-wide saving, continuous [95% CI] | duty-cycled | best static "
              "time-share, same loss | oracle | half the oracle? | beats static? |",
              "|---|---|---|---|---|---|---|---|---|"]
    for h in head.values():
        for trace, t in h["traces"].items():
            oracle = t["oracle_saving_continuous"]
            if t.get("best_controller") is None:
                lines.append(f"| {trace} ({t['n_units']} units) | none qualifies | | | | | "
                             f"{_pct(oracle)} | no | no |")
                continue
            lo, hi = t["saving_continuous_ci"]
            ci = "" if lo is None else f" [{100 * lo:.1f}, {100 * hi:.1f}]"
            static = t["best_static_saving_continuous"]
            half = "yes" if t["saving_continuous"] >= 0.5 * oracle else "no"
            beats = "yes" if static is None or t["saving_continuous"] > static else "no"
            lines.append(
                f"| {trace} ({t['n_units']} units) | {t['best_controller']} | "
                f"{t['loss_pp']:.2f} pp | {_pct(t['saving_continuous'])}{ci} | "
                f"{_pct(t['saving_duty_cycled'])} | {_pct(static)} | {_pct(oracle)} | "
                f"{half} | {beats} |")
    return "\n".join(lines)


def timings_markdown(head: dict) -> str:
    """One line: the figure pipeline's seconds per step in the run that wrote ``head``."""
    steps = head.get("pipeline_seconds", {})
    if not steps:
        return ""
    parts = ", ".join(f"{name} {sec:.0f} s" for name, sec in steps.items())
    return f"Pipeline steps of this run: {parts}; total {sum(steps.values()) / 60:.1f} min."


def update_readme(readme: Path, head: dict) -> bool:
    """Replace the README's generated results block with ``results_markdown(head)``;
    return whether the file changed. The block must exist (between the two markers)."""
    text = readme.read_text()
    if RESULTS_BEGIN not in text or RESULTS_END not in text:
        raise ValueError(f"readme: {readme} has no {RESULTS_BEGIN!r} ... {RESULTS_END!r} block")
    before, rest = text.split(RESULTS_BEGIN, 1)
    _, after = rest.split(RESULTS_END, 1)
    block = "\n\n".join(b for b in (results_markdown(head), timings_markdown(head)) if b)
    new = f"{before}{RESULTS_BEGIN}\n{block}\n{RESULTS_END}{after}"
    if new == text:
        return False
    with cache.atomic_path(readme) as tmp:
        tmp.write_text(new)
    return True


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


def check_png(path: Path, *, min_size=(400, 300)) -> None:
    """Raise if ``path`` is not a non-blank PNG of at least ``min_size`` pixels."""
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    h, w = img.shape[:2]
    if w < min_size[0] or h < min_size[1]:
        raise ValueError(f"path: {path.name} is {w}x{h} px, expected >= {min_size}")
    if float(np.asarray(img[..., :3]).std()) < 0.01:
        raise ValueError(f"path: {path.name} looks blank (pixel std < 0.01)")
