"""Kernel figures: measured vs nominal speedup, time breakdown, feature maps under each knob.

Inputs are the frames of :mod:`mobiprox_lab.kernelbench` (``bench_layers`` or its
``speedups``; ``bench_breakdown``) and, for the feature maps, any conv layer.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import kernelbench, kernels, knobs
from . import save

STRIDE_COLOURS = {2: "#1f77b4", 3: "#ff7f0e", 4: "#2ca02c"}
PHASE_COLOURS = {"prep": "#bdbdbd", "im2col": "#6baed6", "gemm": "#fd8d3c",
                 "interp": "#74c476", "direct": "#9e9ac8"}
PHASE_LABELS = {"prep": "prep (checks, weight packing)", "im2col": "im2col (reduced)",
                "gemm": "GEMM", "interp": "scatter + interpolation + bias",
                "direct": "direct depthwise loop"}
FAMILY_TITLES = {"perf row": "row perforation", "perf col": "column perforation",
                 "samp": "filter sampling"}


def plot_kernel_speedups(df: pd.DataFrame, *, what: str = "median wall time", path=None):
    """Measured speedup over our exact conv per layer, one panel per knob family.

    ``df``: :func:`kernelbench.bench_layers` or its :func:`kernelbench.speedups`;
    ``what`` names the time the speedups come from (for the title). Bars:
    strides 2, 3, 4 (offset 0); dashed lines: their nominal speedups.
    """
    sp = df if "speedup" in df.columns else kernelbench.speedups(df)
    layers = list(dict.fromkeys(sp["layer"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), sharey=True)
    width = 0.27
    x = np.arange(len(layers))
    top = max(2.5, float(np.nanmax(sp["speedup"])) * 1.1)
    for ax, family in zip(axes, kernelbench.FAMILIES, strict=True):
        sel = sp[sp["family"] == family]
        for i, stride in enumerate((2, 3, 4)):
            rows = sel[sel["knob_stride"] == stride].set_index("layer").reindex(layers)
            ax.bar(x + (i - 1) * width, rows["speedup"], width, color=STRIDE_COLOURS[stride],
                   label=f"measured, stride {stride}")
            nominal = stride / (stride - 1)
            ax.axhline(nominal, color=STRIDE_COLOURS[stride], ls="--", lw=1.2,
                       label=f"nominal {nominal:.2f}x")
        ax.axhline(1.0, color="0.3", lw=0.8)
        ax.set_xticks(x, layers, rotation=60, ha="right", fontsize=8)
        ax.set_title(FAMILY_TITLES[family])
        ax.set_ylim(0, top)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("speedup over our exact conv (x)")
    entries = dict(zip(*reversed(axes[0].get_legend_handles_labels()), strict=True))
    labels = (sorted(t for t in entries if t.startswith("measured"))  # stride 2, 3, 4
              + sorted((t for t in entries if t.startswith("nominal")), reverse=True))
    fig.legend([entries[t] for t in labels], labels, ncol=6, fontsize=9, loc="lower center",
               bbox_to_anchor=(0.5, -0.02))
    threads = _threads_note(df)
    fig.suptitle(f"Measured vs nominal speedup of the approximate kernels ({what}{threads})")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save(fig, path)


def _threads_note(df: pd.DataFrame) -> str:
    if "kernel_threads" in df.columns:
        return f", {int(df['kernel_threads'].iloc[0])} threads"
    return ""


def plot_kernel_breakdown(df: pd.DataFrame, *, path=None):
    """Share of CPU time per phase, by layer (sorted by output tensor size), per variant.

    ``df``: :func:`kernelbench.bench_breakdown`. The total CPU time (ms, summed
    over worker threads) is written above each bar.
    """
    variants = list(dict.fromkeys(df["variant"]))
    n_layers = df["layer"].nunique()
    fig, axes = plt.subplots(len(variants), 1, figsize=(max(12.0, 0.62 * n_layers),
                                                         3.3 * len(variants)))
    axes = np.atleast_1d(axes)
    phases = [p for p in kernels.PHASES if p in set(df["phase"])]
    for ax, variant in zip(axes, variants, strict=True):
        sel = df[df["variant"] == variant]
        wide = sel.pivot_table(index=["layer", "out_elems"], columns="phase", values="seconds")
        wide = wide.reindex(columns=phases).fillna(0.0).sort_index(level="out_elems")
        total = wide.sum(axis=1)
        share = wide.div(total, axis=0) * 100
        x = np.arange(len(wide))
        bottom = np.zeros(len(wide))
        for phase in phases:
            ax.bar(x, share[phase], bottom=bottom, color=PHASE_COLOURS[phase],
                   label=PHASE_LABELS[phase], width=0.75)
            bottom += share[phase].to_numpy()
        for xi, t in zip(x, total.to_numpy(), strict=True):
            ax.text(xi, 101, f"{t * 1e3:.1f}", ha="center", va="bottom", fontsize=7)
        labels = [f"{layer}\n{_si(n)}" for layer, n in wide.index]
        ax.set_xticks(x, labels, fontsize=7, rotation=40, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.6, len(wide) - 0.4)
        ax.set_ylim(0, 112)
        ax.set_ylabel("share of CPU time (%)")
        ax.set_title(f"{variant}  (numbers: total CPU ms per call, summed over threads)",
                     fontsize=10)
    axes[-1].set_xlabel("layer and output tensor size (elements, batch included)")
    axes[0].legend(fontsize=8, ncol=len(phases), loc="lower left", bbox_to_anchor=(0, 1.12))
    fig.tight_layout()
    return save(fig, path)


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(int(n))


def demo_layer() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A real image (matplotlib's Grace Hopper sample, grey, 128x128) and a vertical-edge
    filter: ``x`` (1, 1, 128, 128), ``w`` (1, 1, 3, 3), ``b`` (1,)."""
    from matplotlib import cbook

    img = plt.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    grey = img[:512, :512].astype(np.float32).mean(axis=2) / 255.0
    grey = grey.reshape(128, 4, 128, 4).mean(axis=(1, 3))
    sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32)
    return grey[None, None], sobel[None, None], np.zeros(1, np.float32)


def plot_feature_maps(x: np.ndarray | None = None, w: np.ndarray | None = None,
                      b: np.ndarray | None = None, *, stride=1, padding=1, sample: int = 0,
                      channel: int = 0, knob_ids=(11, 123, 121, 231), path=None):
    """One output feature map under each knob, side by side, and its error vs exact.

    ``x`` (N, C, H, W), ``w`` (K, C, KH, KW), ``b`` as for ``kernels.conv2d``;
    default: :func:`demo_layer`. Top row: the map ``[sample, channel]`` on one
    colour scale; bottom row: |approximate - exact| on another, with the
    relative L2 error of the whole map in the title.
    """
    if x is None or w is None:
        x, w, b = demo_layer()
    maps = {kid: kernels.conv2d(x, w, b, stride=stride, padding=padding, knob=kid)
            [sample, channel] for kid in knob_ids}
    exact = kernels.conv2d(x, w, b, stride=stride, padding=padding)[sample, channel]
    lim = float(np.abs(exact).max()) or 1.0
    errors = {kid: np.abs(m - exact) for kid, m in maps.items()}
    err_max = max(float(e.max()) for e in errors.values()) or 1.0
    n = len(knob_ids)
    fig, axes = plt.subplots(2, n, figsize=(3.3 * n + 1.2, 6.8), squeeze=False)
    for i, kid in enumerate(knob_ids):
        im = axes[0, i].imshow(maps[kid], cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[0, i].set_title(knobs.get(kid).describe(), fontsize=10)
        em = axes[1, i].imshow(errors[kid], cmap="magma", vmin=0, vmax=err_max)
        rel = np.linalg.norm(maps[kid] - exact) / (np.linalg.norm(exact) or 1.0)
        axes[1, i].set_title(f"|error|, relative L2 {rel:.1%}", fontsize=9)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("output map")
    axes[1, 0].set_ylabel("|approx - exact|")
    fig.colorbar(im, ax=axes[0, :].tolist(), shrink=0.85, label="activation (a.u.)")
    fig.colorbar(em, ax=axes[1, :].tolist(), shrink=0.85, label="absolute error (a.u.)")
    h, wd = exact.shape
    fig.suptitle(f"Feature map [{sample}, {channel}] ({h}x{wd} pixels) under each knob")
    return save(fig, path)
