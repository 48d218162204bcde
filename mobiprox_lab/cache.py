"""Where artefacts live and how they are written: keyed, atomic, checked, resumable.

Everything generated (datasets, weights, profiles, tuning studies) goes under
``data_dir() / "cache"``. ``data_dir()`` is ``$MOBIPROX_DATA`` when set, else
the repository's ``data/`` folder.

Writing: :func:`atomic_path` hands out a temporary name in the same folder
(``.<name>.<pid>-<random>.tmp<suffix>``) and renames it onto the target only when
the block succeeds, so an interrupted run (Ctrl-C, SIGKILL, power loss) never leaves
a half-written artefact under the target's name. Inside the cache it first records
the file's SHA-256 in a sidecar ``.<name>.sha256``.

Reading: :func:`cache_dir` checks the files of the folder it returns (once per
process, again when the folder or a file changes): a file whose SHA-256 differs from
its sidecar, or, without a sidecar, that fails a format check (``.npz`` / ``.pt`` zip
CRCs, ``.json`` parse), is moved aside to ``.<name>.corrupt`` with a
:class:`CacheCorruptWarning` naming it, so the caller's ``path.exists()`` is False
and it rebuilds the artefact. Temporary files left by a killed writer are removed.
:func:`load_npz` checks the file it reads in the same way and raises
:class:`CacheCorruptError` (a ``ValueError`` naming the file) instead of returning
wrong data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent

SIDECAR_SUFFIX = ".sha256"
CORRUPT_SUFFIX = ".corrupt"
_TMP_RE = re.compile(r"^\..+\.(?:(\d+)-)?[a-z0-9_]+\.tmp")
_STALE_TMP_S = 3600.0  # a temporary file without a writer pid is stale after an hour
_RESCAN_S = 1.0  # an unchanged folder is re-checked at most once a second


class CacheCorruptWarning(UserWarning):
    """A cache file failed its checksum or format check and was moved aside."""


class CacheCorruptError(ValueError):
    """A cache file failed its checksum or format check (the message names it)."""


# every corrupt file is reported, also when the same path goes bad twice in one process
warnings.filterwarnings("always", category=CacheCorruptWarning)


def data_dir() -> Path:
    """The data folder: ``$MOBIPROX_DATA`` or ``<repo>/data``."""
    env = os.environ.get("MOBIPROX_DATA")
    return Path(env) if env else REPO_ROOT / "data"


def cache_root() -> Path:
    """``data_dir()/cache`` (not created)."""
    return data_dir() / "cache"


def cache_dir(*parts: str) -> Path:
    """``data_dir()/cache/<parts...>``, created on demand, its files checked (see module doc)."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    check_folder(path)
    return path


# ------------------------------------------------------------------------------ keys
def _jsonable(value):
    if isinstance(value, np.ndarray):
        return {"__array__": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest(),
                "shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return repr(value)


def cache_key(**inputs) -> str:
    """A short stable hash of keyword inputs (JSON-able values, arrays hashed by content)."""
    text = json.dumps(inputs, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------- checksums
def sidecar_path(path: str | os.PathLike) -> Path:
    """The checksum file of ``path``: ``.<name>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}{SIDECAR_SUFFIX}")


def corrupt_path(path: str | os.PathLike) -> Path:
    """Where a corrupt ``path`` is moved: ``.<name>.corrupt`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}{CORRUPT_SUFFIX}")


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _read_sidecar(path: Path) -> tuple[str, int] | None:
    try:
        digest, size = sidecar_path(path).read_text().split()[:2]
        return digest, int(size)
    except (OSError, ValueError):
        return None


def _write_sidecar(path: Path, digest: str, size: int) -> None:
    side = sidecar_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{side.name}.{os.getpid()}-", suffix=".tmp",
                               dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{digest} {size}\n")
        os.replace(tmp, side)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _format_problem(path: Path) -> str | None:
    """Without a sidecar: a structural check by suffix. None = fine or not checkable."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".npz", ".pt", ".pth", ".zip"):
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            return None if bad is None else f"member {bad!r} fails its CRC"
        if suffix == ".json":
            json.loads(path.read_text())
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _in_cache(path: Path) -> bool:
    try:
        path.resolve().relative_to(cache_root().resolve())
    except ValueError:
        return False
    return True


def verify(path: str | os.PathLike) -> str | None:
    """Check one file; return what is wrong with it, or None if it is fine / uncheckable.

    With a sidecar: size and SHA-256 must match. Without: ``.npz`` / ``.pt`` must be
    readable zips with good CRCs and ``.json`` must parse; a cache file that passes gets
    a sidecar, so later checks are checksum checks.
    """
    path = Path(path)
    recorded = _read_sidecar(path)
    if recorded is None:
        problem = _format_problem(path)
        if problem is None and _in_cache(path) and path.suffix.lower() in (
                ".npz", ".pt", ".pth", ".zip", ".json"):
            _write_sidecar(path, file_sha256(path), path.stat().st_size)
        return problem
    for attempt in range(2):
        digest, size = recorded
        actual_size = path.stat().st_size
        if actual_size == size and file_sha256(path) == digest:
            return None
        again = _read_sidecar(path)  # a writer may have replaced both meanwhile
        if attempt or again == recorded or again is None:
            break
        recorded = again
    if actual_size != size:
        return f"{actual_size} bytes, its checksum file records {size} (truncated?)"
    return "SHA-256 differs from its checksum file"


def quarantine(path: str | os.PathLike, reason: str) -> Path:
    """Move a bad file aside (``.<name>.corrupt``), drop its sidecar, and warn by name."""
    path = Path(path)
    dest = corrupt_path(path)
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, dest)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sidecar_path(path))
    with _lock:
        _verified.pop(path, None)
    warnings.warn(f"cache: {path} is corrupt ({reason}); moved to {dest.name}, it will be "
                  f"rebuilt", CacheCorruptWarning, stacklevel=3)
    return dest


# ------------------------------------------------------------------- folder checks
_lock = threading.RLock()
_verified: dict[Path, tuple[int, int]] = {}  # file -> (size, mtime_ns) when it checked fine
_scanned: dict[Path, tuple[int, float]] = {}  # folder -> (mtime_ns, monotonic time of scan)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale_tmp(entry: os.DirEntry) -> bool:
    m = _TMP_RE.match(entry.name)
    if not m:
        return False
    if m.group(1):
        pid = int(m.group(1))
        return pid != os.getpid() and not _pid_alive(pid)
    return time.time() - entry.stat().st_mtime > _STALE_TMP_S


def _signature(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def check_folder(folder: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Check the files directly in ``folder``; move corrupt ones aside (warning by name) and
    delete temporary files of writers that died. Returns the paths moved aside.

    Files already checked and unchanged (size, mtime) are not hashed again; an unchanged
    folder is not re-listed within a second unless ``force``.
    """
    folder = Path(folder)
    try:
        mtime = folder.stat().st_mtime_ns
    except FileNotFoundError:
        return []
    bad: list[Path] = []
    with _lock:
        seen = _scanned.get(folder)
        if not force and seen and seen[0] == mtime and time.monotonic() - seen[1] < _RESCAN_S:
            return bad
        _scanned[folder] = (mtime, time.monotonic())
        for entry in os.scandir(folder):
            if not entry.is_file(follow_symlinks=False):
                continue
            name = entry.name
            if name.endswith((SIDECAR_SUFFIX, CORRUPT_SUFFIX)):
                continue
            if _TMP_RE.match(name):
                if _stale_tmp(entry):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                continue
            path = Path(entry.path)
            try:
                sig = _signature(path)
                if _verified.get(path) == sig:
                    continue
                problem = verify(path)
            except FileNotFoundError:  # replaced or removed meanwhile
                continue
            if problem is None:
                _verified[path] = _signature(path)
            else:
                quarantine(path, problem)
                bad.append(path)
    return bad


def check_file(path: str | os.PathLike) -> None:
    """Raise :class:`CacheCorruptError` naming ``path`` (after moving it aside) if it fails
    its checksum / format check; a no-op for a file already checked and unchanged."""
    path = Path(path)
    with _lock:
        sig = _signature(path)
        if _verified.get(path) == sig:
            return
        problem = verify(path)
        if problem is None:
            _verified[path] = _signature(path)
            return
    quarantine(path, problem)
    raise CacheCorruptError(f"path: {path} is corrupt ({problem}); it was moved aside, "
                            f"run again to rebuild it")


# --------------------------------------------------------------------------- writing
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, checksum: bool | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    checksum : write the SHA-256 sidecar (default: when ``path`` is inside the cache). The
    sidecar is written before the rename, so a crash in between leaves a mismatch that the
    next check catches, never an unchecked file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-",
                               suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if checksum if checksum is not None else _in_cache(path):
            _write_sidecar(path, file_sha256(tmp_path), tmp_path.stat().st_size)
        os.replace(tmp_path, path)
        with _lock:
            with contextlib.suppress(FileNotFoundError):
                _verified[path] = _signature(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def save_npz(path: str | os.PathLike, **arrays) -> Path:
    """Atomically write ``arrays`` to an uncompressed ``.npz`` file."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file into memory, after :func:`check_file`.

    Raises FileNotFoundError / :class:`CacheCorruptError` naming ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {path}")
    check_file(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        quarantine(path, f"{type(exc).__name__}: {exc}")
        raise CacheCorruptError(f"path: {path} is not a readable .npz ({exc}); it was moved "
                                f"aside, run again to rebuild it") from exc


def save_json(path: str | os.PathLike, obj) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_jsonable))
    return path


def save_frame(path: str | os.PathLike, frame) -> Path:
    """Atomically write a pandas DataFrame as CSV (``index=False``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path
