"""Figures of the run-time half: adaptation traces, the controller comparison, energy fit."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import controller_colour, save


def plot_adaptation_trace(trace, result, *, start: int = 0, steps: int | None = None,
                          title: str | None = None, path=None):
    """The paper's adaptation trace for one controller on one trace.

    Top: true class and the exact model's prediction over time, with a marker at each
    input where the approximate prediction differs from the exact one. Middle: the
    configuration index used. Bottom: cumulative inference-energy saving (%).
    ``trace`` is a :class:`~mobiprox_lab.datasets.traces.Trace`, ``result`` the
    :class:`~mobiprox_lab.control.SimResult` of simulating it; ``start``/``steps``
    select a window of steps.
    """
    stop = len(result) if steps is None else min(len(result), start + steps)
    sl = slice(start, stop)
    t = np.asarray(trace.t[sl], dtype=float)
    unit, scale = ("h", 3600.0) if t[-1] - t[0] > 3 * 3600 else ("min", 60.0)
    t = t / scale
    colour = controller_colour(result.controller)
    fig, axes = plt.subplots(3, 1, figsize=(11, 7.2), sharex=True,
                             gridspec_kw={"height_ratios": [2.2, 1.2, 1.2]})
    ax = axes[0]
    y = np.asarray(trace.y[sl], dtype=float)
    marked = y < 0  # transitions / unlabelled stretches: no true class
    if marked.any():
        ax.fill_between(t, -0.5, len(trace.labels) - 0.5, where=marked, step="post",
                        color="0.88", lw=0, label="transition / unlabelled")
    ax.step(t, np.where(marked, np.nan, y), where="post", color="0.55", lw=2.4,
            label="true class")
    ax.step(t, result.baseline_pred[sl], where="post", color="tab:blue", lw=1.0,
            label="exact model's prediction")
    wrong = ~result.agree[sl]
    ax.scatter(t[wrong], result.pred[sl][wrong], marker="x", color="tab:red", s=22, zorder=3,
               label=f"approximate differs from exact ({int(wrong.sum())})")
    ax.set_yticks(range(len(trace.labels)))
    ax.set_yticklabels(trace.labels, fontsize=8)
    ax.set_ylabel("class")
    ax.legend(loc="upper right", fontsize=8, ncol=3, framealpha=0.9)
    ax.set_title(title or f"{result.controller} on {trace.name}")
    ax = axes[1]
    ax.step(t, result.index[sl], where="post", color=colour, lw=1.2)
    n_configs = len(result.energy_by_config)
    ax.set_ylim(-0.5, n_configs - 0.5)
    ax.set_yticks(range(n_configs))  # indices are whole numbers
    ax.set_ylabel("config index\n(0 = exact)")
    ax = axes[2]
    ax.plot(t, 100 * result.cumulative_saving[sl], color=colour, lw=1.5)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_ylabel("cumulative inference\nenergy saving (%)")
    ax.set_xlabel(f"time ({unit})")
    for a in axes:
        a.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def plot_controller_comparison(table: pd.DataFrame, *, regime: str = "continuous",
                               max_loss_pp: float = 1.0, path=None):
    """Per trace: system-wide saving (%) vs agreement loss (pp) of every controller, with
    the baselines: each static configuration, the best static time-share (the lower convex
    hull of the statics, drawn as a line) and the oracle.

    ``table`` is :func:`mobiprox_lab.orchestration.experiments.aggregate`'s (means over units with
    ``_lo`` / ``_hi`` 95% intervals): columns trace, controller, kind, loss_pp,
    relative_inference_energy, saving_<regime> (+ _lo / _hi), n_units.
    """
    from ..evaluation import timeshare_frontier

    col = f"saving_{regime}"
    if col not in table:
        raise ValueError(f"regime: expected one of continuous / duty_cycled, got {regime!r}")
    traces = list(dict.fromkeys(table["trace"]))
    fig, axes = plt.subplots(1, len(traces), figsize=(5.6 * len(traces), 4.8), squeeze=False)
    for ax, name in zip(axes[0], traces, strict=True):
        sub = table[table["trace"] == name]
        statics = sub[sub["kind"] == "static"]
        if len(statics):
            # savings mix linearly under time-sharing like energies: the hull of the
            # statics' (loss, 1 - saving) in this regime is the best time-share
            hq, he = timeshare_frontier(statics["loss_pp"], 1.0 - statics[col])
            ax.plot(hq, 100 * (1.0 - he), color="0.45", ls="--", lw=1.2,
                    label="best static time-share")
        ax.scatter(statics["loss_pp"], 100 * statics[col], marker="s", s=22,
                   color=controller_colour("static"), label="static configurations", zorder=3)
        for _, r in sub[sub["kind"] != "static"].iterrows():
            err_y = None
            if np.isfinite(r[f"{col}_lo"]):
                err_y = [[100 * (r[col] - r[f"{col}_lo"])], [100 * (r[f"{col}_hi"] - r[col])]]
            err_x = None
            if np.isfinite(r["loss_pp_lo"]):
                err_x = [[r["loss_pp"] - r["loss_pp_lo"]], [r["loss_pp_hi"] - r["loss_pp"]]]
            oracle = r["kind"] == "oracle"
            ax.errorbar(r["loss_pp"], 100 * r[col], xerr=err_x, yerr=err_y,
                        fmt="*" if oracle else "o", ms=11 if oracle else 5, capsize=2,
                        color=controller_colour(r["controller"]), lw=0.8, zorder=4,
                        label=r["controller"])
        ax.axvline(max_loss_pp, color="tab:red", lw=0.8, ls=":",
                   label=f"{max_loss_pp:g} pp loss budget")
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xlabel("agreement loss vs exact model (pp)")
        ax.set_ylabel(f"system-wide energy saving, {regime.replace('_', '-')} (%)")
        n_units = int(sub["n_units"].max())
        ax.set_title(f"{name} (mean of {n_units} units, 95% CI)", fontsize=10)
        ax.grid(alpha=0.3)
    legend: dict = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(lab, h)
    fig.legend(list(legend.values()), list(legend), loc="center left",
               bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.suptitle("Controllers against static baselines and the oracle "
                 "(energy from measured speedup; fp16 is an accuracy emulation, no credit)")
    fig.tight_layout()
    return save(fig, path)


def plot_energy_calibration(speedup, relative_energy, fit, *, path=None):
    """Measured relative energy vs measured speedup, the fitted law and 1/speedup.

    ``fit`` is an :class:`~mobiprox_lab.energy.FitResult` (anything with ``predict(s)``,
    ``params`` and ``rmse``). The shaded band is the speedup range the law was fitted on;
    outside it the law is an extrapolation.
    """
    s = np.asarray(speedup, dtype=float)
    e = np.asarray(relative_energy, dtype=float)
    grid = np.linspace(0.8, max(2.0, s.max() * 1.05), 300)
    fig, ax = plt.subplots(figsize=(6.6, 4.5))
    ax.axvspan(s.min(), s.max(), color="tab:blue", alpha=0.08,
               label="speedups the authors measured (fit range)")
    ax.scatter(s, e, color="tab:blue", zorder=3,
               label="authors' phone: whole-phone energy, continuous inference")
    k = fit.params.get("k", np.nan)
    ax.plot(grid, fit.predict(grid), color="tab:red",
            label=f"law used: speedup^-{k:.2f} (rmse {fit.rmse:.3f})")
    ax.plot(grid, 1 / grid, color="0.5", ls="--", label="energy = 1 / speedup")
    ax.axhline(1.0, color="0.3", lw=0.6)
    ax.axvline(1.0, color="0.3", lw=0.6)
    ax.set_xlabel("measured speedup over exact (x)")
    ax.set_ylabel("energy per inference relative to exact")
    ax.legend(fontsize=7.5)
    ax.grid(alpha=0.3)
    ax.set_title("Energy law calibrated on the authors' HAR configurations 1-9")
    fig.tight_layout()
    return save(fig, path)
