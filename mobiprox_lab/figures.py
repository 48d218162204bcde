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
    "adaptation_har_replay", "adaptation_kws_context", "controllers",
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
        cols = ["name", "predicted_speedup", "speedup", "accuracy", "qos_loss",
                "qos_loss_tune", "rel_inference_energy", "rel_system_energy",
                "fp16_fraction", "n_approx_ops"]
        table = setup.configs[[c for c in cols if c in setup.configs]].copy()
        ctx.tables[f"configurations {task}"] = table
    return run


def step_offline_figures(ctx: Context) -> None:
    from . import energy
    from .plots import tuning as tplots

    setups = {t: ctx.results[f"setup_{t}"] for t in ("har", "kws")}
    _close(tplots.plot_energy_vs_qos({t: s.configs for t, s in setups.items()},
                                     tuner_threshold=TUNER_THRESHOLD,
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
    fit = energy.fit(table["speedup"], table["relative_energy"])
    ctx.tables["energy model fit"] = pd.DataFrame([{
        "model": "a + (1 - a) * speedup^-k", **{k: v for k, v in fit.params.items()},
        "rmse": fit.rmse, "max_abs_error": fit.max_abs_error,
        "rmse_of_1_over_speedup": fit.rmse_inverse_speedup}])
    _close(cplots.plot_energy_calibration(table["speedup"], table["relative_energy"], fit,
                                          path=ctx.figure_path("energy_calibration")))


def step_controllers(ctx: Context) -> None:
    from . import experiments
    from .plots import control as cplots

    tables, featured = [], {}
    for name in experiments.TRACES:
        setup = ctx.results[f"setup_{experiments.TRACE_TASK[name]}"]
        trace = experiments.build_trace(name, setup, quick=ctx.quick, seed=ctx.seed)
        table, results = experiments.run_controllers(setup, trace)
        tables.append(table)
        featured[name] = (trace, results)
    table = pd.concat(tables, ignore_index=True)
    ctx.tables["controllers"] = table[[
        "trace", "controller", "accuracy", "baseline_accuracy", "agreement",
        "relative_inference_energy", "system_saving", "switches"]]
    ctx.tables["headline"] = experiments.headline(table)
    ctx.tables["authors' mechanics check"] = experiments.authors_mechanics_check()
    _close(cplots.plot_controller_comparison(table, path=ctx.figure_path("controllers")))
    for name, steps in (("har_replay", None), ("kws_context", None)):
        trace, results = featured[name]
        best = _best_controller(table[table["trace"] == trace.name])
        _close(cplots.plot_adaptation_trace(
            trace, results[best], steps=steps,
            title=f"{best} on {name} (best saving within 1 pp)",
            path=ctx.figure_path(f"adaptation_{name}")))


def _best_controller(sub: pd.DataFrame) -> str:
    loss = sub["baseline_accuracy"] - sub["accuracy"]
    ok = sub[~sub["controller"].str.startswith(("oracle", "none")) & (loss <= 0.01)]
    if not len(ok):
        ok = sub[~sub["controller"].str.startswith("oracle")]
    return str(ok.loc[ok["system_saving"].idxmax(), "controller"])


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
