"""Every notebook executes headless in quick mode, and none is committed with outputs."""

import os
import time
from pathlib import Path
from queue import Empty

import nbformat
import pytest
from nbclient import NotebookClient

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


class SlicedWaitClient(NotebookClient):
    """nbclient, waiting for each cell's ``execute_reply`` in short polls.

    Why: nbclient waits for the reply with one ``zmq.asyncio`` poll as long as the cell
    timeout. In this stack (pyzmq 27.3, jupyter_client 8.10, nbclient 0.11) that poll now
    and then misses the wake-up for a reply that has already arrived; only the poll's
    final ``poll(0)`` at its timeout sees it. Notebook 04 "hung on an idle kernel" this way
    for the whole 300 s. Trigger: cells that draw into an ``ipywidgets.Output`` (the
    playground); nbclient's Output-widget emulation sends each captured output back to
    the kernel as a ``comm_msg`` on the *shell* socket, from its IOPub handler, while the
    reply poll is pending on that socket. Diagnosis: py-spy showed the kernel idle after
    ``status: idle``; a reply poll in 5-s slices found the reply at a slice end in 5 of 10
    runs of the playground cells, and in none of 8 with that state sync switched off.
    Short polls bound a missed wake-up to ``slice_s``.
    """

    slice_s = 1.0

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        shell = kc.shell_channel
        get_msg = shell.get_msg

        async def sliced_get_msg(timeout=None):
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Empty
                try:
                    return await get_msg(timeout=self.slice_s if left is None
                                         else min(self.slice_s, left))
                except Empty:
                    continue

        shell.get_msg = sliced_get_msg
        return kc


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
    env_before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"
    try:
        SlicedWaitClient(nb, timeout=300, kernel_name="python3",
                         resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_before
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    nbformat.write(nb, tmp_path / path.name)
