"""A clone of the repository stands alone: nothing it runs reads a path outside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_SCRIPT = """
import sys
from pathlib import Path
import mobiprox_lab
from mobiprox_lab import energy
root = Path(sys.argv[1]).resolve()
here = Path(mobiprox_lab.__file__).resolve()
assert here.is_relative_to(root), f"imported {here}, not the clone under {root}"
table = energy.load_authors_har_table()
assert list(table["config"]) == list(range(10)), table
law = energy.authors_law()
assert 1.2 < law.exponent < 1.5, law
assert Path(str(energy.authors_har_table_path())).resolve().is_relative_to(root)
print(f"ok {len(table)} rows, k = {law.exponent:.3f}")
"""


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to clone the repository")
def test_a_clone_with_nothing_beside_it_loads_the_authors_table(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "alone" / "mobiprox_lab_clone"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{REPO}", str(clone)],
                   check=True, capture_output=True, timeout=120)
    assert sorted(p.name for p in clone.parent.iterdir()) == ["mobiprox_lab_clone"]
    env = {**os.environ, "PYTHONPATH": str(clone), "MOBIPROX_DATA": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(clone)], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok 10 rows")
