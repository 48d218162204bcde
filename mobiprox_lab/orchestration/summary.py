"""The figure pipeline's text outputs: ``summary.md`` / ``summary.csv`` (every table a step
recorded) and the README's generated results block, rendered from ``headline.json``."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from .. import cache
from .runner import Context, outcomes_frame


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
    lines = ["| task | train / tune accuracy | test accuracy [95% CI over held-out groups] | "
             "tune + test accuracy [95% CI] (groups) | configurations | "
             "measured speedup by index, batch 32 (batch 1) | relative inference energy by "
             "index, batch 32 (batch 1) | cost-model median error |",
             "|---|---|---|---|---|---|---|---|"]

    def pairs(a, b) -> str:
        return " ".join(f"{x:.2f} ({y:.2f})" for x, y in zip(a, b, strict=True))

    for task, h in head.items():
        lines.append(
            f"| {task.upper()} | {h['train_accuracy']:.3f} / {h['tune_accuracy']:.3f} | "
            f"{h['test_accuracy']:.3f} [{h['test_accuracy_ci'][0]:.3f}, "
            f"{h['test_accuracy_ci'][1]:.3f}] ({h['test_groups']} {h['test_group_kind']}) | "
            f"{h['held_out_accuracy']:.3f} [{h['held_out_accuracy_ci'][0]:.3f}, "
            f"{h['held_out_accuracy_ci'][1]:.3f}] ({h['held_out_groups']}) | "
            f"{h['n_configs']} | "
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
