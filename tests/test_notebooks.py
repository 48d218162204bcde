"""Every notebook executes headless in quick mode, and none is committed with outputs."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["01_approximate_kernels", "02_profiling", "03_tuning",
            "04_context_aware_control", "05_paper_figures"]


def quick_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook with ``QUICK = True`` injected after its ``parameters`` cell."""
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            nb.cells.insert(i + 1, nbformat.v4.new_code_cell("QUICK = True",
                                                             metadata={"tags": ["injected"]}))
            return nb
    raise AssertionError(f"{path.name}: no cell tagged 'parameters'")


def test_all_notebooks_are_present():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} carries outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_quick_mode(path, tmp_path):
    nb = quick_notebook(path)
    def execute(nb: nbformat.NotebookNode) -> None:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()

    env_before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"
    try:
        try:
            execute(nb)
        except (DeadKernelError, CellTimeoutError) as exc:
            # 04 died once, and twice the client waited on an idle kernel (py-spy: nothing
            # running), in ~12 runs; never by hand. Retry once on a fresh kernel; a second
            # failure fails the test
            print(f"{path.name}: {type(exc).__name__}; retrying once on a fresh kernel")
            nb = quick_notebook(path)
            execute(nb)
    finally:
        if env_before is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_before
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    nbformat.write(nb, tmp_path / path.name)
