"""Accuracy and confidence statistics of a softmax, and per-class columns of a profile."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["confidence_arrays", "per_class", "softmax_stats"]


def softmax_stats(probs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy and confidence statistics of one softmax ``probs`` (N, C) against ``y`` (N,).

    Returns ``accuracy`` (%), ``conf_mean`` / ``conf_correct`` / ``conf_wrong`` (mean softmax at
    the predicted class over all / correct / wrong predictions; NaN if there are none), and
    per class lists (length C): ``acc_class`` (% of the inputs of true class k predicted
    right, NaN if k is absent), ``conf_mean_class`` / ``conf_correct_class`` /
    ``conf_wrong_class`` over the inputs **predicted** as k (what a controller sees).
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] != len(y):
        raise ValueError(f"probs: expected (N={len(y)}, n_classes), got {probs.shape}")
    n_classes = probs.shape[1]
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(len(pred)), pred].astype(np.float64)
    ok = pred == y

    def mean(mask) -> float:
        return float(conf[mask].mean()) if mask.any() else math.nan

    acc_class = [float(ok[y == k].mean() * 100) if (y == k).any() else math.nan
                 for k in range(n_classes)]
    return {
        "accuracy": float(ok.mean() * 100),
        "conf_mean": float(conf.mean()),
        "conf_correct": mean(ok),
        "conf_wrong": mean(~ok),
        "acc_class": acc_class,
        "conf_mean_class": [mean(pred == k) for k in range(n_classes)],
        "conf_correct_class": [mean((pred == k) & ok) for k in range(n_classes)],
        "conf_wrong_class": [mean((pred == k) & ~ok) for k in range(n_classes)],
    }


def per_class(frame: pd.DataFrame, stat: str) -> np.ndarray:
    """A per-class statistic of a :func:`profile` frame as float64 (n_configs, n_classes).

    stat : "acc", "qos_loss", "conf_mean", "conf_correct" or "conf_wrong".
    """
    stats = ("acc", "qos_loss", "conf_mean", "conf_correct", "conf_wrong")
    if stat not in stats:
        raise ValueError(f"stat: expected one of {stats}, got {stat!r}")
    cols = []
    k = 0
    while f"{stat}_c{k}" in frame.columns:
        cols.append(f"{stat}_c{k}")
        k += 1
    if not cols:
        raise ValueError(f"frame: no {stat}_c0.. columns; expected a profile() frame")
    return frame[cols].to_numpy(np.float64)


def confidence_arrays(frame: pd.DataFrame, *, fill: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(conf_correct, conf_wrong)``, each float64 (n_configs, n_classes), for the
    ``ConfidenceController``: mean confidence on correct / wrong predictions per predicted
    class. ``fill`` replaces a class's NaN (never predicted right / wrong) with the
    configuration's overall value (and that, if NaN too, with 1.0 / 0.0)."""
    cc, cw = per_class(frame, "conf_correct"), per_class(frame, "conf_wrong")
    if fill:
        oc = frame["conf_correct"].to_numpy(np.float64)
        ow = frame["conf_wrong"].to_numpy(np.float64)
        oc, ow = np.where(np.isnan(oc), 1.0, oc), np.where(np.isnan(ow), 0.0, ow)
        cc = np.where(np.isnan(cc), oc[:, None], cc)
        cw = np.where(np.isnan(cw), ow[:, None], cw)
    return cc, cw
