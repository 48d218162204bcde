"""Ordered input streams ("traces") with ground truth and a time axis, for the controllers.

A trace does not copy its inputs: it indexes a pool of model-ready inputs, so a
24-hour trace of ~67k windows costs a few hundred kilobytes and the softmax of
every configuration needs computing only once per pool item.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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

    def __post_init__(self) -> None:
        self.t = np.asarray(self.t, dtype=np.float64)
        self.y = np.asarray(self.y, dtype=np.int64)
        self.context = np.asarray(self.context, dtype=np.int64)
        self.pool_index = np.asarray(self.pool_index, dtype=np.int64)
        n = len(self.t)
        for attr in ("y", "context", "pool_index"):
            if len(getattr(self, attr)) != n:
                raise ValueError(f"{attr}: expected length {n} (len(t)), got {len(getattr(self, attr))}")
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
