"""Cache files are written atomically with a checksum; a corrupt one is named, moved aside
and never loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mobiprox_lab import cache


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBIPROX_DATA", str(tmp_path / "data"))
    return cache.cache_dir("unit")


def rescan(folder):
    return cache.check_folder(folder, force=True)


def test_round_trip_writes_a_checksum(folder):
    path = cache.save_npz(folder / "a.npz", x=np.arange(10))
    assert cache.sidecar_path(path).read_text().split()[0] == cache.file_sha256(path)
    assert cache.load_npz(path)["x"].tolist() == list(range(10))
    assert cache.verify(path) is None
    assert sorted(os.listdir(folder)) == [".a.npz.sha256", "a.npz"]


def test_truncated_npz_is_named_moved_aside_and_not_loaded(folder):
    path = cache.save_npz(folder / "a.npz", x=np.arange(10_000))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.warns(cache.CacheCorruptWarning, match="a.npz is corrupt"), \
            pytest.raises(cache.CacheCorruptError, match=r"path: .*a\.npz.*truncated"):
        cache.load_npz(path)
    assert not path.exists() and cache.corrupt_path(path).exists()
    assert not cache.sidecar_path(path).exists()


def test_folder_check_catches_a_flipped_byte_so_callers_rebuild(folder):
    path = cache.save_frame(folder / "t.csv", __import__("pandas").DataFrame({"a": [1, 2]}))
    good = cache.save_json(folder / "ok.json", {"a": 1})
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.warns(cache.CacheCorruptWarning, match=r"t\.csv is corrupt \(SHA-256"):
        assert rescan(folder) == [path]
    assert not path.exists() and good.exists()
    assert cache.cache_dir("unit") == folder  # a later call finds nothing more to report


def test_files_without_checksum_get_a_format_check(folder):
    import torch

    np.savez(folder / "old.npz", x=np.arange(100))
    np.savez(folder / "cut.npz", x=np.arange(100))
    (folder / "cut.npz").write_bytes((folder / "cut.npz").read_bytes()[:-40])
    torch.save({"w": torch.ones(50)}, folder / "m.pt")
    (folder / "m.pt").write_bytes((folder / "m.pt").read_bytes()[:-100])
    (folder / "bad.json").write_text('{"a": ')
    (folder / "notes.txt").write_text("uncheckable: left alone")
    with pytest.warns(cache.CacheCorruptWarning) as record:
        bad = rescan(folder)
    assert sorted(p.name for p in bad) == ["bad.json", "cut.npz", "m.pt"]
    assert {str(p) for p in bad} <= {str(w.message).split()[1] for w in record}
    assert cache.sidecar_path(folder / "old.npz").exists()  # adopted: checksummed from now
    assert (folder / "notes.txt").exists()


def test_temporary_files_of_dead_writers_are_removed(folder):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = folder / f".a.npz.{int(dead.stdout)}-abcd1234.tmp.npz"
    mine = folder / f".b.npz.{os.getpid()}-abcd1234.tmp.npz"
    for p in (stale, mine):
        p.write_bytes(b"half")
    rescan(folder)
    assert not stale.exists() and mine.exists()


def test_failed_block_leaves_nothing_and_outside_the_cache_no_sidecar(folder, tmp_path):
    target = folder / "x.json"
    with pytest.raises(RuntimeError), cache.atomic_path(target) as tmp:
        tmp.write_text("{}")
        raise RuntimeError("boom")
    assert os.listdir(folder) == []
    outside = cache.save_json(tmp_path / "figures" / "s.json", {"a": 1})
    assert json.loads(outside.read_text()) == {"a": 1}
    assert not cache.sidecar_path(outside).exists()


def test_missing_file_is_a_file_not_found_error_naming_it(folder):
    with pytest.raises(FileNotFoundError, match="path: no such file .*nope.npz"):
        cache.load_npz(folder / "nope.npz")
