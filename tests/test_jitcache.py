"""jitcache: Numba's cached machine code is dropped when any jitted source changes."""

from __future__ import annotations

from pathlib import Path

from mobiprox_lab import jitcache


def _package(root: Path, name: str, files: dict[str, str]) -> Path:
    folder = root / name
    (folder / "__pycache__").mkdir(parents=True)
    for file, text in files.items():
        (folder / file).write_text(text)
    return folder


def _cached(folder: Path, *names: str) -> list[Path]:
    paths = [folder / "__pycache__" / n for n in names]
    for p in paths:
        p.write_bytes(b"machine code")
    return paths


def test_cache_dropped_when_a_source_of_any_jitted_package_changes(tmp_path):
    a = _package(tmp_path, "a", {"caller.py": "def f(): return g()\n", "callee.py": "x = 1\n"})
    b = _package(tmp_path, "b", {"loops.py": "y = 2\n"})
    stale = _cached(a, "caller.f-1.py311.nbi", "caller.f-1.py311.1.nbc") + \
        _cached(b, "loops.h-3.py311.nbi")
    assert jitcache.guard([a, b])  # no stamp yet: what is there predates the guard
    assert not any(p.exists() for p in stale)
    kept = _cached(a, "caller.f-1.py311.nbi") + _cached(b, "loops.h-3.py311.nbi")
    assert not jitcache.guard([a, b])  # sources unchanged: the cache stays
    assert all(p.exists() for p in kept)
    (a / "callee.py").write_text("x = 2\n")  # only the callee's file changes
    assert jitcache.guard([a, b])
    assert not any(p.exists() for p in kept)  # the other package's cache goes too
    other = _cached(a, "notes.txt")  # anything but Numba's files is left alone
    (b / "loops.py").write_text("y = 3\n")
    jitcache.guard([a, b])
    assert other[0].exists()


def test_digest_covers_names_and_bytes(tmp_path):
    a = _package(tmp_path, "a", {"m.py": "x = 1\n"})
    d0 = jitcache.sources_digest([a])
    (a / "m.py").rename(a / "n.py")
    d1 = jitcache.sources_digest([a])
    (a / "n.py").write_text("x = 2\n")
    assert len({d0, d1, jitcache.sources_digest([a])}) == 3


def test_the_package_guards_its_own_jitted_folders():
    root = Path(jitcache.__file__).resolve().parent
    for name in jitcache.JIT_PACKAGES:
        sources = "".join((root / name / f).read_text() for f in
                          sorted(p.name for p in (root / name).glob("*.py")))
        assert "cache=True" in sources
    jitted = {p.parent.name for p in root.rglob("*.py") if "cache=True" in p.read_text()
              and p.parent != root}
    assert jitted == set(jitcache.JIT_PACKAGES)


def test_cache_dropped_when_the_link_environment_changes(tmp_path):
    a = _package(tmp_path, "a", {"m.py": "x = 1\n"})
    jitcache.guard([a], environment="numpy 2.4.6\nlibscipy_openblas64_-old.so")
    kept = _cached(a, "m.f-1.py311.nbi")
    assert not jitcache.guard([a], environment="numpy 2.4.6\nlibscipy_openblas64_-old.so")
    assert kept[0].exists()
    assert jitcache.guard([a], environment="numpy 2.4.6\nlibscipy_openblas64_-new.so")
    assert not kept[0].exists()  # code linked against the old BLAS must not load


def test_link_environment_names_the_libraries_cached_code_links_against():
    env = jitcache.link_environment()
    for dist in ("numpy", "scipy", "numba", "llvmlite"):
        assert env.count(f"{dist} ") == 1
