"""HAPT: the restricted unpickler, the checksum, the window builder, the subject split."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from mobiprox_lab.datasets import hapt, har


def _gz(path: Path, payload: bytes) -> Path:
    path.write_bytes(gzip.compress(payload))
    return path


# ---------------------------------------------------------------- reading the file safely


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # protocol-0 pickle that would call os.system("touch <marker>") if its global were honoured
    evil = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    path = _gz(tmp_path / "evil.pkl.gz", evil)
    with pytest.raises(hapt.UnsafePickleError, match=r"refusing to unpickle global os\.system"):
        hapt.read_hapt_pickle(path, sha256=None)
    assert not marker.exists()
    # any global outside the list, however harmless, is refused by name
    path = _gz(tmp_path / "other.pkl.gz", pickle.dumps({1: [complex(1, 2)]}, protocol=2))
    with pytest.raises(hapt.UnsafePickleError, match=r"builtins\.complex|__builtin__\.complex"):
        hapt.read_hapt_pickle(path, sha256=None)
    assert hapt.RestrictedUnpickler  # the class is public for reuse


def test_wrong_checksum_is_refused_before_unpickling(tmp_path: Path) -> None:
    path = _gz(tmp_path / "HAPT.pkl.gz", f"cos\nsystem\n(S'touch {tmp_path}/x'\ntR.".encode())
    with pytest.raises(hapt.ChecksumError, match=r"path: .*HAPT\.pkl\.gz: SHA-256 [0-9a-f]{64} "
                                                 r"is not the pinned"):
        hapt.read_hapt_pickle(path)
    assert not (tmp_path / "x").exists()
    with pytest.raises(hapt.ChecksumError, match="path: "):
        hapt.load_recordings(path)  # checked even when the cache is warm
    with pytest.raises(FileNotFoundError, match="path: "):
        hapt.load_recordings(tmp_path / "missing.pkl.gz")


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="path: .*nothing.pkl.gz: no such file"):
        hapt.read_hapt_pickle(tmp_path / "nothing.pkl.gz", sha256=None)
    (tmp_path / "empty.pkl.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="path: .*truncated or corrupt"):
        hapt.read_hapt_pickle(tmp_path / "empty.pkl.gz", sha256=None)
    blob = gzip.compress(pickle.dumps({1: [{"a": list(range(1000))}]}, protocol=2))
    (tmp_path / "cut.pkl.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="path: .*truncated or corrupt"):
        hapt.read_hapt_pickle(tmp_path / "cut.pkl.gz", sha256=None)
    for name, obj, what in (("list", [1, 2], "top level is list"),
                            ("emptydict", {}, "empty"),
                            ("notframe", {1: [3]}, "not a DataFrame"),
                            ("notlist", {1: 3}, "key 1")):
        path = _gz(tmp_path / f"{name}.pkl.gz", pickle.dumps(obj, protocol=2))
        with pytest.raises(ValueError, match=f"path: .*unexpected layout.*{what}"):
            hapt.read_hapt_pickle(path, sha256=None)


def test_real_file_located_verified_and_read() -> None:
    path = hapt.find_hapt_file()  # from the distribution's metadata, not by importing it
    assert path.name == "HAPT.pkl.gz" and path.stat().st_size == hapt.HAPT_BYTES
    assert hapt.sha256_of(path) == hapt.HAPT_SHA256
    rec = hapt.read_hapt_pickle(path)
    assert len(rec) == 61 and rec.signals.shape == (1_122_772, 6)
    np.testing.assert_array_equal(np.unique(rec.subject), np.arange(1, 31))
    assert np.sum(rec.subject == 10) == 3 and rec.start[-1] == len(rec.label)
    assert set(np.unique(rec.label).tolist()) == set(hapt.LABEL_NAMES)
    acc_norm = np.linalg.norm(rec.signals[:, :3], axis=1)  # in g: ~1 on average
    assert 0.9 < np.median(acc_norm) < 1.1


# ---------------------------------------------------------------- the window builder


def _labels() -> np.ndarray:
    """walking 300, stand_to_sit 50, unlabelled 200, sitting 130, standing 127, lying 320."""
    parts = [(1, 300), (7, 50), (-1, 200), (4, 130), (5, 127), (6, 320)]
    return np.concatenate([np.full(n, c) for c, n in parts]).astype(np.int8)


def test_activity_windows_cut_within_runs_only() -> None:
    start, y = hapt.activity_windows(_labels())
    # walking 300 -> 1 + 172 // 64 = 3 at 0, 64, 128; sitting 130 -> 1 at 550;
    # standing 127 -> none; lying 320 at 807 -> 1 + 192 // 64 = 4
    np.testing.assert_array_equal(start, [0, 64, 128, 550, 807, 871, 935, 999])
    np.testing.assert_array_equal(y, [0, 0, 0, 3, 5, 5, 5, 5])
    lab = _labels()
    for s, k in zip(start, y, strict=True):
        assert np.all(lab[s:s + 128] == k + 1)  # no transition / unlabelled sample inside


def test_grid_windows_marks_transitions_and_unlabelled() -> None:
    lab = _labels()
    start, y, mark = hapt.grid_windows(lab)
    assert len(start) == 1 + (len(lab) - 128) // 64
    np.testing.assert_array_equal(start, 64 * np.arange(len(start)))
    for s, k, m in zip(start, y, mark, strict=True):
        w = lab[s:s + 128]
        if np.all(w == w[0]) and 1 <= w[0] <= 6:
            assert (m, k) == (hapt.MARK_ACTIVITY, w[0] - 1)
        elif np.any((w >= 7) & (w <= 12)):
            assert (m, k) == (hapt.MARK_TRANSITION, -1)
        else:
            assert (m, k) == (hapt.MARK_UNLABELLED, -1)
    assert {0, 1, 2} <= set(mark.tolist())
    # the window holding standing (127 samples) and its neighbours is mixed -> unlabelled
    assert mark[start == 640][0] == hapt.MARK_UNLABELLED


def test_uci_channels_order_and_gravity() -> None:
    fs, n = 50.0, 3000
    t = np.arange(n) / fs
    gravity = np.array([0.2, -0.3, 0.93])
    body = np.stack([0.3 * np.sin(2 * np.pi * 2.0 * t), 0.1 * np.sin(2 * np.pi * 1.5 * t),
                     np.zeros(n)], axis=1)
    gyro = np.stack([0.5 * np.cos(2 * np.pi * 1.0 * t), np.full(n, 0.05), np.zeros(n)], axis=1)
    ch = hapt.uci_channels(np.concatenate([gravity + body, gyro], axis=1))
    assert ch.shape == (n, 9) and ch.dtype == np.float32
    mid = slice(500, n - 500)  # away from the zero-phase filters' edges
    np.testing.assert_allclose(ch[mid, 0:3], body[mid], atol=0.02)  # body_acc
    np.testing.assert_allclose(ch[mid, 3:6], gyro[mid], atol=0.02)  # body_gyro
    np.testing.assert_allclose(ch[mid, 6:9], (gravity + body)[mid], atol=0.02)  # total_acc
    np.testing.assert_allclose((ch[:, 6:9] - ch[:, 0:3])[mid].mean(0), gravity, atol=0.005)
    # windows in CHANNELS order: x[n, c, i] = channels[start + i, c]
    start, _ = hapt.activity_windows(np.ones(n, np.int8))
    x = hapt.cut(ch, start)
    assert x.shape == (len(start), 9, 128) == (1 + (n - 128) // 64, 9, 128)
    np.testing.assert_array_equal(x[3, 7], ch[192:320, 7])
    with pytest.raises(ValueError, match="signals: expected shape"):
        hapt.uci_channels(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="start: expected windows inside"):
        hapt.cut(ch, np.array([n - 10]))


# ---------------------------------------------------------------- loader and split


# These use the default data folder: the converted recordings are cached there keyed by
# the file's pinned SHA-256 and the format version, so a warm cache is always valid.


def test_load_hapt_and_uci_counts() -> None:
    test = har.load_hapt("test")
    assert test.x.shape[1:] == (9, 128) and test.labels == har.UCI_LABELS
    assert set(np.unique(test.subject).tolist()) == set(hapt.UCI_TEST_SUBJECTS)
    published = np.array(har.UCI_PUBLISHED_COUNTS["test"])
    assert np.all(np.abs(test.class_counts() / published - 1) < 0.06)
    # windows of a session are in time order, 64 samples apart inside a run
    one = test.subset(test.recording == test.recording[0])
    assert np.all(np.diff(one.start) >= 64) and np.array_equal(one.order, np.arange(len(one)))
    grid = har.load_hapt(windows="grid", subjects=[2])
    assert set(grid.mark.tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(grid.y == -1, grid.mark != 0)
    with pytest.raises(ValueError, match="split: expected"):
        har.load_hapt("dev")
    with pytest.raises(ValueError, match="windows: expected"):
        har.load_hapt(windows="sliding")
    with pytest.raises(ValueError, match="subjects: expected volunteer ids"):
        har.load_hapt(subjects=[31])


def test_prepare_hapt_subject_split() -> None:
    s = har.prepare()
    sub = s.meta["subjects"]
    assert s.meta["source"] == "hapt"
    assert sub["train"] == list(hapt.UCI_TRAIN_SUBJECTS)
    assert sorted(sub["tune"] + sub["test"]) == list(hapt.UCI_TEST_SUBJECTS)
    assert not set(sub["tune"]) & set(sub["test"])
    groups = [set(np.unique(getattr(s, k).group).tolist()) for k in ("train", "tune", "test")]
    assert groups == [set(sub["train"]), set(sub["tune"]), set(sub["test"])]
    assert abs(len(s.tune) - len(s.test)) < 0.1 * (len(s.tune) + len(s.test))
    for name in ("train", "tune", "test"):
        assert np.all(np.bincount(getattr(s, name).y, minlength=6) > 0)
    table = har.window_counts(s)
    assert list(table["class"]) == [*har.UCI_LABELS, "total"]
    assert table["train_vs_uci"].abs().max() < 5 and table["tune+test_vs_uci"].abs().max() < 5
    assert table["train"].iloc[-1] == len(s.train)
    q = har.prepare(quick=True)
    assert len(q.train) == 6 * har.QUICK_PER_CLASS["train"]


def test_posture_script_tells_who_sits_upright():
    """``benchmarks/har_posture.py``: every volunteer once, UCI-HAR's split, and the
    upright sitters its docstring names (sitting - standing < 0.05 g along y)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "har_posture.py"
    spec = importlib.util.spec_from_file_location("har_posture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.posture_table()
    assert table["subject"].tolist() == list(range(1, 31))
    assert table["split"].value_counts().to_dict() == {"train": 21, "test": 5, "tune": 4}
    upright = table.loc[[abs(d[1]) < 0.05 for d in table["sit - stand"]], "subject"]
    assert upright.tolist() == [9, 10, 16]
    # motion: everyone moves more standing than sitting; upright sitters 10 and 16 sit
    # stiller than anyone stands, 9 more actively than many others stand
    assert (table["gyro standing"] > table["gyro sitting"]).all()
    for subject, below in ((9, 10), (10, 0), (16, 0)):
        sits = float(table.loc[table["subject"] == subject, "gyro sitting"].iloc[0])
        others = table.loc[table["subject"] != subject, "gyro standing"]
        assert (others < sits).sum() >= below if below else (others > sits).all()
