"""IMU windows: the one representation every HAR source is converted to.

``ImuWindows.x`` float32 (N, 9, 128): 128-sample windows at 50 Hz (2.56 s) of the
channels ``CHANNELS`` = body_acc x,y,z [g], body_gyro x,y,z [rad/s], total_acc x,y,z [g],
with who (subject), which recording and when (order, start) each window came from.
The loaders (``uci_har``, ``hapt_windows``, ``watch``) return it; ``har`` turns it into
model-ready splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .containers import MARK_ACTIVITY, MARK_NAMES

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
    mark : int64 (N,) ``MARK_ACTIVITY`` (0) for a window of one activity, else
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
        if np.any((self.mark < 0) | (self.mark >= len(MARK_NAMES))):
            raise ValueError("mark: expected values 0 (activity), 1 (transition) or "
                             "2 (unlabelled)")
        lab = self.mark == MARK_ACTIVITY
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
        return self.mark == MARK_ACTIVITY

    def class_counts(self) -> np.ndarray:
        """int64 (n_classes,) number of windows of each class (marked windows not counted)."""
        return np.bincount(self.y[self.labelled],
                           minlength=len(self.labels)).astype(np.int64)

