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
    ax.step(t, trace.y[sl], where="post", color="0.55", lw=2.4, label="true class")
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


def plot_controller_comparison(table: pd.DataFrame, *, path=None):
    """Bars per controller: system-wide energy saving (%) and accuracy change (pp) per trace.

    ``table`` has one row per (trace, controller) with columns ``trace``, ``controller``,
    ``system_saving``, ``relative_inference_energy``, ``accuracy`` and ``baseline_accuracy``
    (as from :func:`mobiprox_lab.experiments.controller_table`).
    """
    traces = list(dict.fromkeys(table["trace"]))
    fig, axes = plt.subplots(len(traces), 3, figsize=(14, 3.2 * len(traces)), squeeze=False)
    for row, name in zip(axes, traces, strict=True):
        sub = table[table["trace"] == name].reset_index(drop=True)
        colours = [controller_colour(c) for c in sub["controller"]]
        y = np.arange(len(sub))
        panels = (
            (100 * (1 - sub["relative_inference_energy"]), "inference energy saving (%)"),
            (100 * sub["system_saving"], "system-wide energy saving (%)"),
            (100 * (sub["accuracy"] - sub["baseline_accuracy"]),
             "accuracy vs exact model (pp)"),
        )
        for ax, (values, label) in zip(row, panels, strict=True):
            ax.barh(y, values, color=colours)
            ax.axvline(0, color="0.3", lw=0.8)
            ax.set_yticks(y)
            ax.set_yticklabels(sub["controller"] if ax is row[0] else [], fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel(label)
            ax.grid(axis="x", alpha=0.3)
        row[0].set_ylabel(name)
    fig.suptitle("Controllers compared (oracle bounds on top)")
    fig.tight_layout()
    return save(fig, path)


def plot_energy_calibration(speedup, relative_energy, fit, *, path=None):
    """Measured relative energy vs measured speedup, the fitted model and 1/speedup.

    ``fit`` is an :class:`~mobiprox_lab.energy.FitResult` (anything with ``predict(s)``
    and ``rmse``).
    """
    s = np.asarray(speedup, dtype=float)
    e = np.asarray(relative_energy, dtype=float)
    grid = np.linspace(1.0, max(1.35, s.max() * 1.05), 200)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter(s, e, color="tab:blue", zorder=3, label="authors' phone measurements")
    ax.plot(grid, fit.predict(grid), color="tab:red",
            label=f"fitted energy model (rmse {fit.rmse:.3f})")
    ax.plot(grid, 1 / grid, color="0.5", ls="--", label="energy = 1 / speedup")
    ax.set_xlabel("measured speedup over exact (x)")
    ax.set_ylabel("energy relative to exact")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("Energy model calibrated on the authors' HAR configurations")
    fig.tight_layout()
    return save(fig, path)
