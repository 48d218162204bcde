"""Where artefacts live and how they are written: keyed, atomic, resumable.

Everything generated (datasets, weights, profiles, tuning studies) goes under
``data_dir() / "cache"``. ``data_dir()`` is ``$MOBIPROX_DATA`` when set, else
the repository's ``data/`` folder. Files are written to a temporary name in the
same folder and renamed, so an interrupted run never leaves a half-written
artefact behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The data folder: ``$MOBIPROX_DATA`` or ``<repo>/data``."""
    env = os.environ.get("MOBIPROX_DATA")
    return Path(env) if env else REPO_ROOT / "data"


def cache_dir(*parts: str) -> Path:
    """``data_dir()/cache/<parts...>``, created on demand."""
    path = data_dir().joinpath("cache", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def save_npz(path: str | os.PathLike, **arrays) -> Path:
    """Atomically write ``arrays`` to an uncompressed ``.npz`` file."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file into memory."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


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
