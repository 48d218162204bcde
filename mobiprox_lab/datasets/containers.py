"""The data types the dataset modules return: model-ready ``Split`` / ``Splits`` and the
input stream ``Trace`` the controllers replay.

Every dataset module imports its types from here (not from the package
``mobiprox_lab.datasets``), so imports inside the package go one way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: ``Trace.y`` on a marked step (no true class).
UNLABELLED = -1
#: ``Trace.mark`` codes: a step with a true class, a window covering a postural transition,
#: a window covering unlabelled samples.
MARK_ACTIVITY, MARK_TRANSITION, MARK_UNLABELLED = 0, 1, 2
MARK_NAMES = ("activity", "transition", "unlabelled")


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


@dataclass
class Trace:
    """A stream of ``T`` inferences.

    Attributes
    ----------
    name : short identifier, e.g. ``"har_replay"``.
    t : float64 (T,) time stamp of each inference in seconds from the start.
    y : int64 (T,) true class of each input.
    context : int64 (T,) context code of each input (activity bout, noise level...).
    pool_index : int64 (T,) row of ``pool_x`` fed at each step.
    pool_x : float32 (P, ...) model-ready inputs the trace draws from.
    labels : class names, ``labels[y]``.
    context_names : names of the context codes, ``context_names[context]``.
    meta : free-form parameters the trace was built with (seed, dwell times...).
    mark : int64 (T,) 0 (``MARK_ACTIVITY``) for a step with a true class, 1
        (``MARK_TRANSITION``) for a window covering a postural transition, 2
        (``MARK_UNLABELLED``) for unlabelled samples; ``y`` is ``UNLABELLED`` (-1) on
        marked steps. Default: all 0. Score marked steps against the exact model only.
    """

    name: str
    t: np.ndarray
    y: np.ndarray
    context: np.ndarray
    pool_index: np.ndarray
    pool_x: np.ndarray
    labels: tuple[str, ...]
    context_names: tuple[str, ...]
    meta: dict = field(default_factory=dict)
    mark: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.t = np.asarray(self.t, dtype=np.float64)
        self.y = np.asarray(self.y, dtype=np.int64)
        self.context = np.asarray(self.context, dtype=np.int64)
        self.pool_index = np.asarray(self.pool_index, dtype=np.int64)
        n = len(self.t)
        if self.mark is None:
            self.mark = np.zeros(n, dtype=np.int64)
        self.mark = np.asarray(self.mark, dtype=np.int64)
        for attr in ("y", "context", "pool_index", "mark"):
            if len(getattr(self, attr)) != n:
                raise ValueError(f"{attr}: expected length {n} (len(t)), "
                                 f"got {len(getattr(self, attr))}")
        if np.any((self.mark < 0) | (self.mark >= len(MARK_NAMES))):
            raise ValueError(f"mark: expected values in 0..{len(MARK_NAMES) - 1} "
                             f"({', '.join(MARK_NAMES)})")
        lab = self.mark == MARK_ACTIVITY
        if np.any(self.y[lab] < 0) or np.any(self.y[~lab] != UNLABELLED):
            raise ValueError(f"y: expected a class index >= 0 on unmarked steps and "
                             f"{UNLABELLED} on marked (transition / unlabelled) steps")
        if n and (self.pool_index.min() < 0 or self.pool_index.max() >= len(self.pool_x)):
            raise ValueError(f"pool_index: expected values in [0, {len(self.pool_x)}), "
                             f"got [{self.pool_index.min()}, {self.pool_index.max()}]")

    def __len__(self) -> int:
        return len(self.t)

    @property
    def x(self) -> np.ndarray:
        """The model-ready inputs in trace order, float32 (T, ...) (a gathered copy)."""
        return self.pool_x[self.pool_index]

    @property
    def duration_s(self) -> float:
        return float(self.t[-1] - self.t[0]) if len(self) else 0.0

    @property
    def labelled(self) -> np.ndarray:
        """bool (T,) steps with a true class (mark 0): the ones true-label accuracy uses."""
        return self.mark == MARK_ACTIVITY
