"""Numba's on-disk cache, dropped when the jitted sources change.

Numba keys a function cached with ``cache=True`` by the time stamp of *its own* source
file. A jitted function that calls one in another file (``kernels/_pointwise.py`` calls
``kernels/_scatter.py``) keeps running the callee's old machine code after that file
changes, until its own file changes too: after an update a user could run stale kernels
with no error. Cached machine code also links against libraries by name (the kernels'
GEMM calls NumPy's bundled OpenBLAS, ``kernels._blas``), so a reinstalled NumPy must not
meet code built for the old one. :func:`guard` compares a hash of every source of the
packages that jit with ``cache=True``, and of :func:`link_environment`, against the one
stored beside their caches, and drops the cached machine code (``__pycache__/*.nbi``,
``*.nbc``) of all of them when it differs. It covers Numba's
default cache location (``__pycache__`` next to the sources), not ``NUMBA_CACHE_DIR``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["JIT_PACKAGES", "STAMP", "guard", "link_environment", "sources_digest"]

JIT_PACKAGES = ("kernels", "control")  # sub-packages with @njit(cache=True) functions
STAMP = "mobiprox-jit-sources.sha256"
_guarded = False


def sources_digest(folders: Sequence[Path]) -> str:
    """SHA-256 (hex) of the names and bytes of every ``*.py`` file in ``folders``."""
    h = hashlib.sha256()
    for folder in folders:
        for path in sorted(Path(folder).glob("*.py")):
            h.update(f"{Path(folder).name}/{path.name}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def link_environment() -> str:
    """What cached machine code links against: the versions of NumPy, SciPy, Numba and
    llvmlite and the files NumPy's wheel bundles (its OpenBLAS), found without importing
    NumPy."""
    parts = []
    for dist in ("numpy", "scipy", "numba", "llvmlite"):
        try:
            parts.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{dist} missing")
    spec = importlib.util.find_spec("numpy")
    if spec is not None and spec.origin:
        package = Path(spec.origin).parent
        for libs in (package.parent / "numpy.libs", package / ".dylibs"):
            parts += sorted(p.name for p in libs.glob("*")) if libs.is_dir() else []
    return "\n".join(parts)


def guard(folders: Sequence[Path] | None = None, environment: str | None = None) -> bool:
    """Drop the Numba cache files of ``folders`` (default: :data:`JIT_PACKAGES`, once per
    process) if their sources, or ``environment`` (default :func:`link_environment`),
    changed since the last call; True if any were dropped.
    A folder that cannot be written is left alone (Numba then cannot cache there either)."""
    global _guarded
    if folders is None:
        if _guarded:
            return False
        _guarded = True
        root = Path(__file__).resolve().parent
        folders = [root / name for name in JIT_PACKAGES]
    folders = [Path(f) for f in folders]
    if environment is None:
        environment = link_environment()
    digest = hashlib.sha256(f"{sources_digest(folders)}\0{environment}".encode()).hexdigest()
    dropped = False
    for folder in folders:
        cache = folder / "__pycache__"
        stamp = cache / STAMP
        try:
            if stamp.read_text() == digest:
                continue
        except OSError:
            pass  # no stamp yet: whatever is cached there predates the guard
        for path in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:
            try:
                path.unlink()
                dropped = True
            except OSError:  # another process dropped it first, or read-only
                pass
        try:
            cache.mkdir(exist_ok=True)
            tmp = cache / f"{STAMP}.{os.getpid()}.tmp"
            tmp.write_text(digest)
            os.replace(tmp, stamp)
        except OSError:
            pass
    return dropped
