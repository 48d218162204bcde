"""The paper's offline figures: energy vs QoS loss, the Pareto plot, per-class heatmaps,
confidence vs QoS loss, and a configuration's per-layer knobs.

Inputs are the frames of :func:`mobiprox_lab.tuner.tune` (``TuneResult.configs``: one row
per final configuration with ``qos_loss`` / ``qos_loss_test``, ``speedup``,
``predicted_speedup``, ``relative_energy``, the timing columns of ``profiler.profile``
(``clock``, ``cpu_s`` / ``cpu_std_s``, ``latency_s`` / ``latency_std_s``) and the per-class columns
``acc_c{k}``, ``qos_loss_c{k}``, ``conf_correct_c{k}``, ``conf_wrong_c{k}``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .. import knobs
from . import TASK_COLOURS, TASK_NAMES, save


def relative_energy_std(configs: pd.DataFrame, exponent: float) -> np.ndarray:
    """Std of the relative energy ``speedup**-exponent``, propagated from the timing spread
    of a configuration and of the exact one on the profile's clock (relative errors add in
    quadrature; the energy's relative error is ``exponent`` times the speedup's)."""
    cpu = configs.get("clock", pd.Series(["wall"])).iloc[0] == "cpu"
    lat = configs["cpu_s" if cpu else "latency_s"].to_numpy(float)
    std = configs["cpu_std_s" if cpu else "latency_std_s"].to_numpy(float)
    rel = np.sqrt((std / lat) ** 2 + (std[0] / lat[0]) ** 2)
    rel[0] = std[0] / lat[0]
    return configs["relative_energy"].to_numpy(float) * exponent * rel


def plot_energy_vs_qos(configs_by_task: dict[str, pd.DataFrame], *, tuner_threshold: float,
                       law, authors: pd.DataFrame | None = None, path=None):
    """Figure 1: energy per inference relative to the exact model vs QoS loss on the test
    set, one series per model with std error bars; dashed lines at the tuner threshold and
    at 1.0.

    Both axes mean the same for every series: the authors' points are whole-phone energy
    measured on their phone under continuous inference; ours are the energy law (``law``,
    an ``energy.EnergyLaw`` calibrated on those points) at the speedup measured on this CPU,
    i.e. the whole-phone energy the law predicts under continuous inference. fp16 is an
    accuracy emulation here and earns no energy credit unless ``law`` sets one (named in
    the legend).
    """
    fig, ax = plt.subplots(figsize=(7.8, 4.9))
    credit = ("" if law.fp16_energy_factor == 1.0
              else f", fp16 energy factor {law.fp16_energy_factor:g} (sensitivity)")
    for task, cfg in configs_by_task.items():
        ax.errorbar(cfg["qos_loss_test"], cfg["relative_energy"],
                    yerr=relative_energy_std(cfg, law.exponent), fmt="o-", capsize=3,
                    color=TASK_COLOURS.get(task), ms=5,
                    label=f"{TASK_NAMES.get(task, task)}: law at speedup measured here{credit}")
        for _, r in cfg.iterrows():
            ax.annotate(str(r.get("name", "")).replace("conf", ""),
                        (r["qos_loss_test"], r["relative_energy"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    if authors is not None:
        ax.plot(authors["qos_loss_pp"], authors["relative_energy"], "s--", color="0.45",
                ms=5, label="authors' HAR MobileNet: measured on their phone")
    ax.axhline(1.0, ls="--", color="0.3", lw=1)
    ax.axvline(tuner_threshold, ls="--", color="tab:red", lw=1,
               label=f"tuner threshold ({tuner_threshold:g} pp)")
    ax.set_xlabel("QoS loss on the test set (accuracy pp below the exact model)")
    ax.set_ylabel("whole-phone energy per inference\nrelative to exact (continuous inference)")
    ax.set_title(f"Energy vs QoS loss of the final configuration lists "
                 f"(law: speedup^-{law.exponent:.2f})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5)
    fig.tight_layout()
    return save(fig, path)


def plot_pareto(results_by_task: dict, *, path=None):
    """Figure 2: speedup vs QoS loss: every search trial (predicted), the validated
    candidates (loss on the tune set, where the list was chosen), and the final list with
    its predicted and measured speedup at its loss on the test set (so its order in loss
    may differ from the tune set's).

    results_by_task : {task: TuneResult} (needs ``trials``, ``candidates``, ``configs``).
    """
    n = len(results_by_task)
    fig, axes = plt.subplots(1, n, figsize=(6.4 * n, 4.6), squeeze=False)
    for ax, (task, res) in zip(axes[0], results_by_task.items(), strict=True):
        tr = res.trials
        ax.scatter(tr["qos_loss"], tr["speedup"], s=5, color="0.75",
                   label=f"search trials ({len(tr):,}, QoS model)")
        cand = res.candidates
        ax.scatter(cand["qos_loss_tune"], cand["predicted_speedup"], s=16,
                   color="tab:orange", label="candidates, validated on tune set")
        cfg = res.configs
        ax.plot(cfg["qos_loss"], cfg["predicted_speedup"], "o-", color=TASK_COLOURS.get(task),
                label="final list, QoS loss on the test set: predicted speedup")
        if "speedup" in cfg:
            ax.plot(cfg["qos_loss"], cfg["speedup"], "^--", color="tab:green",
                    label="final list, test set: measured speedup (this CPU)")
        ax.set_xlabel("QoS loss (accuracy pp below exact)")
        ax.set_ylabel("speedup over exact (x)")
        ax.set_title(TASK_NAMES.get(task, task))
        ax.set_xlim(left=min(-0.5, float(tr["qos_loss"].min()) if len(tr) else 0),
                    right=max(5.0, float(cfg["qos_loss"].max()) + 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Pareto plot: speedup vs QoS loss")
    fig.tight_layout()
    return save(fig, path)


def _per_class(configs: pd.DataFrame, stat: str) -> np.ndarray:
    cols = [c for c in configs.columns if c.startswith(f"{stat}_c") and
            c[len(stat) + 2:].isdigit()]
    cols.sort(key=lambda c: int(c[len(stat) + 2:]))
    return configs[cols].to_numpy(float)


def plot_per_class_heatmaps(configs: pd.DataFrame, labels, *, title: str = "", path=None):
    """Figure 3: per-class accuracy (%) and per-class QoS loss (pp) vs configuration index."""
    acc = _per_class(configs, "acc")
    loss = _per_class(configs, "qos_loss")
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.45 * len(labels) + 2.4))
    idx = [str(i) for i in range(len(configs))]
    sns.heatmap(pd.DataFrame(acc.T, index=labels, columns=idx), ax=axes[0], annot=True,
                fmt=".0f", cmap="viridis", vmin=0, vmax=100, annot_kws={"fontsize": 7},
                cbar_kws={"label": "accuracy (%)"})
    lim = max(1.0, float(np.nanmax(np.abs(loss))))
    sns.heatmap(pd.DataFrame(loss.T, index=labels, columns=idx), ax=axes[1], annot=True,
                fmt=".1f", cmap="RdBu_r", center=0, vmin=-lim, vmax=lim,
                annot_kws={"fontsize": 7}, cbar_kws={"label": "QoS loss (pp)"})
    axes[0].set_title("per-class accuracy")
    axes[1].set_title("per-class QoS loss vs exact")
    for ax in axes:
        ax.set_xlabel("configuration index (0 = exact)")
        ax.set_ylabel("true class")
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def plot_confidence_vs_qos(configs: pd.DataFrame, labels, *, title: str = "", path=None):
    """Figure 4: per-class mean softmax confidence on correct (solid) and wrong (dashed)
    predictions vs the configuration's QoS loss."""
    cc = _per_class(configs, "conf_correct")
    cw = _per_class(configs, "conf_wrong")
    loss = configs["qos_loss"].to_numpy(float)
    order = np.argsort(loss, kind="stable")
    colours = sns.color_palette("tab10", len(labels))
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for k, label in enumerate(labels):
        ax.plot(loss[order], cc[order, k], "-o", ms=3, color=colours[k], label=label)
        ax.plot(loss[order], cw[order, k], "--x", ms=4, color=colours[k])
    ax.plot([], [], "k-", label="on correct predictions")
    ax.plot([], [], "k--", label="on wrong predictions")
    ax.set_xlabel("QoS loss of the configuration (pp)")
    ax.set_ylabel("mean softmax confidence")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title(title or "Confidence per predicted class vs QoS loss")
    fig.tight_layout()
    return save(fig, path)


_TECHNIQUE_CODE = {("exact", "fp32"): 0, ("exact", "fp16"): 1, ("perforation", "fp32"): 2,
                   ("perforation", "fp16"): 3, ("sampling", "fp32"): 4, ("sampling", "fp16"): 5}
_TECHNIQUE_NAMES = ["exact fp32", "exact fp16", "perforation", "perforation fp16",
                    "sampling", "sampling fp16"]


def plot_config_knobs(configs: pd.DataFrame, ops: list[str], *, highlight: int | None = None,
                      path=None):
    """Per-layer knobs of every configuration: colour = technique, text = stride."""
    from matplotlib.colors import ListedColormap

    codes = np.zeros((len(configs), len(ops)))
    text = np.full((len(configs), len(ops)), "", dtype=object)
    for i, cfg in enumerate(configs["config"]):
        for j, op in enumerate(ops):
            k = knobs.get(cfg.get(op, knobs.EXACT))
            codes[i, j] = _TECHNIQUE_CODE[(k.technique, k.precision)]
            text[i, j] = "" if k.technique == "exact" else f"{(k.axis or 's')[0]}{k.stride}"
    cmap = ListedColormap(["#f0f0f0", "#c6dbef", "#fdae6b", "#e6550d", "#a1d99b", "#31a354"])
    fig, ax = plt.subplots(figsize=(max(6, 0.38 * len(ops) + 2), 0.34 * len(configs) + 1.8))
    ax.imshow(codes, cmap=cmap, vmin=-0.5, vmax=5.5, aspect="auto")
    for i in range(codes.shape[0]):
        for j in range(codes.shape[1]):
            if text[i, j]:
                ax.text(j, i, text[i, j], ha="center", va="center", fontsize=6)
    ax.set_xticks(range(len(ops)))
    ax.set_xticklabels(ops, rotation=90, fontsize=6)
    ax.set_yticks(range(len(configs)))
    ax.set_yticklabels(configs["name"] if "name" in configs else range(len(configs)),
                       fontsize=7)
    if highlight is not None:
        ax.axhspan(highlight - 0.5, highlight + 0.5, fill=False, ec="red", lw=2)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(6)]
    ax.legend(handles, _TECHNIQUE_NAMES, fontsize=7, ncol=3, loc="upper center",
              bbox_to_anchor=(0.5, -0.35 if len(ops) > 10 else -0.2))
    ax.set_xlabel("operator (execution order); text: r/c = row/col perforation, s = sampling,"
                  " digit = stride")
    ax.set_title("Per-layer knobs of each configuration")
    fig.tight_layout()
    return save(fig, path)
