"""Selection: Pareto sets, 2-D hypervolume, candidate choice and the authors' final rule."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .. import knobs

__all__ = ["final_rule", "final_rule_decisions", "hypervolume_2d", "is_exact", "pareto_mask",
           "select_candidates"]


def _pair(qos, speedup) -> tuple[np.ndarray, np.ndarray]:
    q = np.asarray(qos, np.float64).ravel()
    s = np.asarray(speedup, np.float64).ravel()
    if q.shape != s.shape:
        raise ValueError(f"speedup: expected {len(q)} values (len(qos)), got {len(s)}")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(s))):
        raise ValueError("qos, speedup: expected finite values")
    return q, s


def pareto_mask(qos, speedup) -> np.ndarray:
    """bool (n,): the points no other point dominates, maximising both QoS and speedup.

    A point is dominated by one with >= QoS and >= speedup, better in at least one; equal
    points are all kept.
    """
    q, s = _pair(qos, speedup)
    mask = np.zeros(len(q), bool)
    order = np.lexsort((-s, -q))  # QoS descending, then speedup descending
    best = -np.inf  # best speedup among points of strictly higher QoS
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and q[order[j]] == q[order[i]]:
            j += 1
        group = order[i:j]
        top = s[group[0]]
        if top > best:
            mask[group[s[group] == top]] = True
        best = max(best, top)
        i = j
    return mask


def hypervolume_2d(qos, speedup, ref_qos: float, ref_speedup: float = 1.0) -> float:
    """Area dominated by the points and bounded below by (``ref_qos``, ``ref_speedup``),
    in QoS-% x speedup units (sweep over the Pareto front, by speedup)."""
    q, s = _pair(qos, speedup)
    keep = (q > ref_qos) & (s > ref_speedup)
    q, s = q[keep], s[keep]
    if not len(q):
        return 0.0
    front = pareto_mask(q, s)
    q, s = q[front], s[front]
    order = np.argsort(s, kind="stable")
    q, s = q[order], s[order]
    widths = np.diff(np.concatenate([[ref_speedup], s]))
    return float(np.sum(widths * (q - ref_qos)))


def is_exact(config) -> bool:
    """Whether a configuration (mapping, or its JSON text) runs every op exact (11)."""
    if isinstance(config, str):
        config = json.loads(config)
    if config is None:
        return True
    if not isinstance(config, Mapping):
        raise ValueError(f"config: expected a mapping op name -> knob id, "
                         f"got {type(config).__name__}")
    return all(int(k) == knobs.EXACT for k in config.values())


SAME_SPEEDUP = 0.01  # the final rule's minimum speedup gain


def select_candidates(trials: pd.DataFrame, *, baseline_qos: float, keep_threshold: float,
                      n_nearest: int = 20) -> pd.DataFrame:
    """The configurations to validate: the Pareto set over (qos, speedup) of the distinct
    trials with QoS loss <= ``keep_threshold`` (pp), plus the ``n_nearest`` other such points
    nearest to it (Euclidean distance to the nearest Pareto point, QoS scaled by
    ``keep_threshold`` and speedup by its range).

    Trials with the same predicted QoS and speedups within the same ``SAME_SPEEDUP`` bin
    count once (the fastest is kept).

    trials : columns qos (%), speedup, config (see ``search.SearchResult.trials``).
    Returns those rows sorted by speedup, with ``pareto`` (bool) and ``front_distance``.
    """
    for col in ("qos", "speedup", "config"):
        if col not in trials:
            raise ValueError(f"trials: missing column {col!r} (expected qos, speedup, config)")
    if not np.isfinite(keep_threshold) or keep_threshold < 0:
        raise ValueError(f"keep_threshold: expected a number >= 0 (pp), got {keep_threshold!r}")
    if not isinstance(n_nearest, (int, np.integer)) or n_nearest < 0:
        raise ValueError(f"n_nearest: expected an int >= 0, got {n_nearest!r}")
    t = trials[(baseline_qos - trials["qos"]) <= keep_threshold + 1e-9]
    # Configurations that differ only where it barely matters (fp16 on a ReLU: same QoS,
    # speedup +1e-4) are one point to the final rule, which needs a 0.01 speedup gain:
    # validate the fastest of each such group, so n_nearest buys distinct points. Repeats
    # of one configuration fall in one group too (the stable sort keeps the first trial).
    t = t.assign(_point=list(zip(np.round(t["qos"].to_numpy(float), 6),
                                 np.floor(t["speedup"].to_numpy(float) / SAME_SPEEDUP),
                                 strict=True)))
    t = t.sort_values("speedup", ascending=False, kind="stable").drop_duplicates("_point")
    t = t.drop(columns="_point")
    cols = list(trials.columns) + ["pareto", "front_distance"]
    if t.empty:
        return pd.DataFrame(columns=cols)
    q, s = t["qos"].to_numpy(float), t["speedup"].to_numpy(float)
    front = pareto_mask(q, s)
    sq = max(float(keep_threshold), 1e-9)
    ss = max(float(np.ptp(s)), 1e-9)
    d = np.sqrt(((q[:, None] - q[front][None, :]) / sq) ** 2
                + ((s[:, None] - s[front][None, :]) / ss) ** 2).min(axis=1)
    t = t.assign(pareto=front, front_distance=d)
    near = t[~front].nsmallest(int(n_nearest), "front_distance", keep="first")
    out = pd.concat([t[front], near]).sort_values(["speedup", "qos"], kind="stable")
    return out.reset_index(drop=True)[cols]


def final_rule_decisions(table: pd.DataFrame, *, loss: str = "qos_loss",
                         speedup: str = "speedup", min_gain: float = 0.01,
                         merge_within: float = 0.1,
                         eligible=None) -> tuple[list[int], list[str]]:
    """Walk the authors' final rule (see :func:`final_rule`) and say what became of each row.

    ``eligible`` (optional, one bool per row) limits the rule to those rows; the others
    are skipped and get the decision "not eligible". The exact row must be eligible.
    Returns (the accepted row positions in list order, one decision per row of ``table``):
    "conf0 (exact)", "accepted", "negative loss", "speedup gain <= min_gain over <row>",
    "replaced by <row>" (a later row within ``merge_within`` pp took its place),
    "not eligible".
    """
    for col in (loss, speedup, "config"):
        if col not in table:
            raise ValueError(f"table: missing column {col!r}")
    for name, value in (("min_gain", min_gain), ("merge_within", merge_within)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name}: expected a number >= 0, got {value!r}")
    exact = np.array([is_exact(c) for c in table["config"]], bool)
    if exact.sum() != 1:
        raise ValueError(f"table: expected exactly one exact configuration (config all 11), "
                         f"found {int(exact.sum())}")
    if eligible is None:
        eligible = np.ones(len(table), bool)
    else:
        eligible = np.asarray(eligible)
        if eligible.dtype != bool or eligible.shape != (len(table),):
            raise ValueError(f"eligible: expected {len(table)} bools (one per row of table), "
                             f"got {eligible.dtype} of shape {eligible.shape}")
        if not eligible[exact].all():
            raise ValueError("eligible: the exact configuration's row must be eligible")
    rows = table.reset_index(drop=True)
    lo = rows[loss].to_numpy(float)
    sp = rows[speedup].to_numpy(float)
    decision = ["not eligible" if not eligible[i]
                else "negative loss" if (not exact[i] and lo[i] < 0) else ""
                for i in range(len(rows))]
    first = int(np.flatnonzero(exact)[0])
    decision[first] = "conf0 (exact)"
    approx = np.flatnonzero(~exact & (lo >= 0) & eligible)
    order = approx[np.lexsort((-sp[approx], lo[approx]))]
    accepted = [first]
    for i in order:
        last = accepted[-1]
        if sp[i] > sp[last] + min_gain:
            if len(accepted) > 1 and lo[i] - lo[last] <= merge_within + 1e-12:
                decision[last] = f"replaced by row {i}"
                accepted[-1] = int(i)
            else:
                accepted.append(int(i))
            decision[i] = "accepted"
        else:
            decision[i] = f"speedup gain <= {min_gain:g} over row {last}"
    return accepted, decision


def final_rule(table: pd.DataFrame, *, loss: str = "qos_loss", speedup: str = "speedup",
               min_gain: float = 0.01, merge_within: float = 0.1) -> pd.DataFrame:
    """The authors' final configuration list, conf0 (exact) .. confN (most approximate).

    Sort the approximate configurations by QoS loss (ties: faster first) and drop those with
    negative loss; walk them keeping a list that starts with the exact configuration: a
    configuration is accepted only if its ``speedup`` beats the last accepted one's by more
    than ``min_gain``; if its loss is also within ``merge_within`` pp of the last accepted
    one's, it **replaces** that one (never the exact conf0), otherwise it is appended.

    table : one row per configuration with columns ``loss`` (pp), ``speedup`` and ``config``
        (mapping; the exact one is all 11 / empty). Exactly one row must be exact.
    Returns the accepted rows (all columns) with ``name`` = conf0..confN (a previous ``name``
    column is kept as ``candidate``). :func:`final_rule_decisions` says why each row was
    kept or not.
    """
    accepted, _ = final_rule_decisions(table, loss=loss, speedup=speedup, min_gain=min_gain,
                                       merge_within=merge_within)
    out = table.reset_index(drop=True).loc[accepted].reset_index(drop=True)
    if "name" in out:
        out = out.rename(columns={"name": "candidate"})
    out.insert(0, "name", [f"conf{i}" for i in range(len(out))])
    return out
