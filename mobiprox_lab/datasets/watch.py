"""seglearn's smartwatch recordings converted to UCI-style ``ImuWindows`` (``load_watch``).

Burns et al. 2018 (arXiv 1802.01489), shipped inside ``seglearn``: 10 subjects, 7
shoulder exercises, each done with the left and the right arm, 50 Hz, accel in g, gyro
in rad/s. Converted to the UCI representation: total_acc = accel, body_gyro = gyro,
body_acc = accel minus its gravity component (3rd-order Butterworth at 0.3 Hz, zero
phase, per recording). Windows are cut per recording with 50 % overlap (stride 64
samples = 1.28 s).
"""

from __future__ import annotations

import numpy as np

from .. import cache, checks
from .imu import FS_HZ, GRAVITY_CUTOFF_HZ, GRAVITY_ORDER, STRIDE, WINDOW, ImuWindows

__all__ = ["WATCH_LABEL_NAMES", "WATCH_TEST_SUBJECTS", "WATCH_TUNE_SUBJECTS", "load_watch",
           "sliding_windows", "split_gravity", "watch_to_channels"]

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
_WATCH_FORMAT = 1  # bump when the conversion changes, to invalidate the cache


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
    order = checks.integer("order", order, lo=1)
    sos = signal.butter(order, cutoff_hz, btype="low", fs=fs_hz, output="sos")
    gravity = signal.sosfiltfilt(sos, total, axis=axis)
    return total - gravity, gravity


def sliding_windows(a: np.ndarray, width: int = WINDOW, stride: int = STRIDE) -> np.ndarray:
    """Windows of ``a`` (T, C) along time -> (n, C, width), n = 1 + (T - width) // stride
    (0 when T < width). Window i covers samples [i*stride, i*stride + width)."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"a: expected a (T, C) array, got shape {a.shape}")
    width = checks.integer("width", width, lo=1)
    stride = checks.integer("stride", stride, lo=1)
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

    width = checks.integer("width", width, lo=1)
    stride = checks.integer("stride", stride, lo=1)
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

