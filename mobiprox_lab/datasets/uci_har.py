"""The real UCI HAR Dataset read from disk (``load_uci_har(root, split)``).

Anguita et al. 2013 (UCI Machine Learning Repository, CC BY 4.0): 30 volunteers, a
waist-worn phone, 128-sample windows at 50 Hz with 50 % overlap, already filtered and
split into its ``train`` / ``test`` folders. Every error about a missing or malformed
file starts with ``root:`` and names the file and what was expected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import checks
from .imu import CHANNELS, FS_HZ, STRIDE, UCI_LABELS, WINDOW, ImuWindows

__all__ = ["load_uci_har"]


def _read_table(path: Path, ncols: int, what: str) -> np.ndarray:
    """A whitespace-separated numeric table with exactly ``ncols`` columns -> float64 (R, ncols)."""
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"root: {path}: missing file (expected {what})")
    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.float64)
    except (ValueError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError
        raise ValueError(f"root: {path}: malformed file, expected {what} "
                         f"({ncols} whitespace-separated numbers per line): {exc}") from exc
    values = table.to_numpy()
    if values.shape[1] != ncols:
        raise ValueError(f"root: {path}: expected {ncols} values per line ({what}), "
                         f"got {values.shape[1]}")
    bad = np.flatnonzero(np.isnan(values).any(axis=1))
    if len(bad):
        raise ValueError(f"root: {path}: line {bad[0] + 1}: expected {ncols} values ({what}), "
                         f"got {int(np.sum(~np.isnan(values[bad[0]])))}")
    return values


def load_uci_har(root: str | Path, split: str = "train") -> ImuWindows:
    """Read one split of the real UCI HAR Dataset.

    root : the ``UCI HAR Dataset`` folder, holding ``<split>/Inertial Signals/
        {body_acc,body_gyro,total_acc}_{x,y,z}_<split>.txt`` (128 values a line),
        ``<split>/y_<split>.txt`` (labels 1-6) and ``<split>/subject_<split>.txt``.
    split : "train" or "test".
    Returns ``ImuWindows`` with x float32 (N, 9, 128), y in 0..5, recording = subject and
    order = position of the window among its subject's windows in file order.
    """
    checks.choice("split", split, ("train", "test"))
    if root is None or not str(root):
        raise ValueError(f"root: expected the path of the UCI HAR Dataset folder, got {root!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root: {root}: no such folder (expected the UCI HAR Dataset "
                                f"folder holding train/ and test/)")
    folder = root / split
    signals = folder / "Inertial Signals"
    if not signals.is_dir():
        raise FileNotFoundError(
            f"root: {signals}: missing folder (expected the UCI HAR Dataset layout "
            f"<root>/{split}/Inertial Signals/*_{split}.txt under root={str(root)!r})")
    channels = []
    n_rows: int | None = None
    first: Path | None = None
    for name in CHANNELS:
        path = signals / f"{name}_{split}.txt"
        table = _read_table(path, WINDOW, f"{WINDOW} samples of {name} per window")
        if n_rows is not None and len(table) != n_rows:
            raise ValueError(f"root: {path}: expected {n_rows} windows (as in {first}), "
                             f"got {len(table)}")
        n_rows, first = len(table), first or path
        channels.append(table)
    x = np.stack(channels, axis=1).astype(np.float32)

    y_path, s_path = folder / f"y_{split}.txt", folder / f"subject_{split}.txt"
    y = _read_table(y_path, 1, "one activity label 1-6 per window")[:, 0]
    subject = _read_table(s_path, 1, "one subject id per window")[:, 0]
    for path, arr in ((y_path, y), (s_path, subject)):
        if len(arr) != n_rows:
            raise ValueError(f"root: {path}: expected {n_rows} lines (one per window in {first}), "
                             f"got {len(arr)}")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"root: {path}: expected integers, got a non-integer value")
    y = y.astype(np.int64)
    subject = subject.astype(np.int64)
    if len(y) and (y.min() < 1 or y.max() > len(UCI_LABELS)):
        bad = np.flatnonzero((y < 1) | (y > len(UCI_LABELS)))[0]
        raise ValueError(f"root: {y_path}: line {bad + 1}: expected a label in "
                         f"1..{len(UCI_LABELS)}, got {y[bad]}")
    return ImuWindows(x, y - 1, subject, subject.copy(), _running_index(subject), UCI_LABELS,
                      {"source": "uci", "root": str(root), "split": split, "fs_hz": FS_HZ,
                       "window": WINDOW, "stride": STRIDE})


def _running_index(groups: np.ndarray) -> np.ndarray:
    """int64 (N,) 0, 1, 2... within each group value, in array order."""
    out = np.zeros(len(groups), dtype=np.int64)
    for g in np.unique(groups):
        mask = groups == g
        out[mask] = np.arange(int(mask.sum()))
    return out
