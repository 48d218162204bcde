"""The figure pipeline survives SIGINT and SIGKILL mid-step, resumes, and rebuilds a corrupt
cache file instead of loading it.

A small step list runs through the public pipeline API (``figures.make_figures(steps=...)``)
in a subprocess: ``first`` caches a small array, ``second`` writes a ~16 MB artefact in
slow chunks (the signal lands mid-write), ``third`` needs ``second``. Each step logs when
it computes (rather than loads), so the log shows what a rerun recomputed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mobiprox_lab import cache

SCRIPT = r'''
import io, sys, time
from pathlib import Path
import numpy as np
from mobiprox_lab import cache
from mobiprox_lab.orchestration import figures
from mobiprox_lab.orchestration.runner import Step

LOG, READY, SLOW = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "slow"

def note(text):
    with open(LOG, "a") as fh:
        fh.write(text + "\n")

def first(ctx):
    path = cache.cache_dir("interrupt") / "first.npz"
    if not path.exists():
        note("computed first")
        cache.save_npz(path, x=np.arange(1000, dtype=np.int64))
    ctx.results["first"] = cache.load_npz(path)["x"]

def second(ctx):
    path = cache.cache_dir("interrupt") / "second.npz"
    if path.exists():
        ctx.results["second"] = cache.load_npz(path)["y"]
        return
    note("computed second")
    buf = io.BytesIO()
    np.savez(buf, y=np.arange(2_000_000, dtype=np.float64))
    data = buf.getvalue()
    chunk = len(data) // 40
    with cache.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        for i in range(0, len(data), chunk):
            fh.write(data[i:i + chunk])
            fh.flush()
            if SLOW:
                READY.touch()
                time.sleep(0.25)
    ctx.results["second"] = cache.load_npz(path)["y"]

def third(ctx):
    path = cache.cache_dir("interrupt") / "third.json"
    if not path.exists():
        note("computed third")
        cache.save_json(path, {"sum": float(ctx.results["second"].sum())})

steps = [Step("first", first), Step("second", second, needs=("first",)),
         Step("third", third, needs=("second",))]
raise SystemExit(figures.make_figures(LOG.parent / "out", steps=steps))
'''

EXPECTED_SUM = float(np.arange(2_000_000, dtype=np.float64).sum())


class Pipeline:
    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.script = tmp_path / "pipeline.py"
        self.script.write_text(SCRIPT)
        self.log = tmp_path / "log.txt"
        self.ready = tmp_path / "ready"
        self.folder = tmp_path / "data" / "cache" / "interrupt"
        self.env = {**os.environ, "MOBIPROX_DATA": str(tmp_path / "data"), "MPLBACKEND": "Agg",
                    "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

    def start(self, slow: bool) -> subprocess.Popen:
        self.ready.unlink(missing_ok=True)
        # a user's Ctrl-C: the pipeline starts with SIGINT's default action even where the
        # test itself runs as a background job, which inherits SIGINT ignored (the child then
        # ran to the end and exited 0, seen in a fresh-clone run)
        return subprocess.Popen([sys.executable, str(self.script), str(self.log),
                                 str(self.ready), "slow" if slow else "fast"],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def run(self) -> subprocess.CompletedProcess:
        proc = self.start(slow=False)
        out, err = proc.communicate(timeout=120)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def interrupt(self, sig: int) -> tuple[int, str]:
        proc = self.start(slow=True)
        deadline = time.monotonic() + 60
        while not self.ready.exists():  # "second" has written its first chunk
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the slow step never started"
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        return proc.returncode, out + err

    def computed(self) -> list[str]:
        return self.log.read_text().split("\n")[:-1] if self.log.exists() else []

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if ".tmp" in p.name)

    def check_cache(self) -> None:
        """Every artefact is whole: its checksum matches and it loads to the right values."""
        names = sorted(p.name for p in self.folder.iterdir() if not p.name.startswith("."))
        assert names == ["first.npz", "second.npz", "third.json"]
        for name in names:
            assert cache.sidecar_path(self.folder / name).exists(), name
            assert cache.verify(self.folder / name) is None, name
        assert cache.load_npz(self.folder / "second.npz")["y"].sum() == EXPECTED_SUM
        assert self.leftovers() == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_pipeline_resumes_without_recomputing(tmp_path, sig):
    pipe = Pipeline(tmp_path)
    code, output = pipe.interrupt(sig)
    assert code != 0, output
    assert pipe.computed() == ["computed first", "computed second"]
    assert (pipe.folder / "first.npz").exists()
    assert not (pipe.folder / "second.npz").exists()  # never a half-written artefact
    if sig == signal.SIGINT:
        assert "INTERRUPTED" in output and "resumes from 'second'" in output, output
        assert pipe.leftovers() == []  # the temporary file was removed on the way out
    else:
        assert len(pipe.leftovers()) == 1  # killed mid-write: only its temporary file

    done = pipe.run()
    assert done.returncode == 0, done.stdout + done.stderr
    # first is loaded, not recomputed; second starts over; third runs once
    assert pipe.computed() == ["computed first", "computed second", "computed second",
                               "computed third"]
    assert "CacheCorruptWarning" not in done.stderr
    pipe.check_cache()  # the killed writer's temporary file is gone too


def test_corrupt_cache_file_is_named_and_rebuilt(tmp_path):
    pipe = Pipeline(tmp_path)
    assert pipe.run().returncode == 0
    second = pipe.folder / "second.npz"
    second.write_bytes(second.read_bytes()[: second.stat().st_size // 2])  # truncated

    again = pipe.run()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "CacheCorruptWarning" in again.stderr and str(second) in again.stderr
    assert "truncated" in again.stderr
    assert pipe.computed() == ["computed first", "computed second", "computed third",
                               "computed second"]
    pipe.check_cache()
    assert cache.corrupt_path(second).exists()  # kept aside for inspection

    # a flipped byte (same size) is caught by the checksum; nothing else is recomputed
    data = bytearray(second.read_bytes())
    data[len(data) // 2] ^= 0xFF
    second.write_bytes(bytes(data))
    third = pipe.run()
    assert third.returncode == 0
    assert "SHA-256 differs" in third.stderr and str(second) in third.stderr
    assert pipe.computed()[-1] == "computed second" and len(pipe.computed()) == 5
    pipe.check_cache()
