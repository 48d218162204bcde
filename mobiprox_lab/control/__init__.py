"""Run-time controllers that pick an approximation configuration per inference, and a simulator.

Configurations are numbered 0 (exact) .. N = n_configs - 1 (most approximate). A
controller holds ``index`` (the config for the next inference); after the
inference it is fed that inference's softmax with ``update(probs)`` and returns
the next index. :func:`simulate` replays a trace of precomputed softmax outputs
of every config and reports accuracy, agreement with the exact model and energy.

The authors' controllers (Mobiprox, arXiv 2303.11291, and its Android app) share one step rule:
"more" is ``i = min(i + step, N); step *= factor`` (factor 1 linear, 2
exponential), "less" is ``i //= 2; step = 1``. :class:`Controller` implements
them as ``_more()`` / ``_less()`` / ``_stay()``, so a strategy of your own is a
few lines:

>>> import numpy as np
>>> from mobiprox_lab import control
>>> class Confident(control.Controller):
...     '''More while the top class holds >= 90% of the mass, else back off.'''
...     def update(self, probs):
...         return self._more() if np.max(probs) >= 0.9 else self._less()
>>> c = Confident(n_configs=4)
>>> [c.update(p) for p in ([.95, .05], [.92, .08], [.6, .4], [.99, .01])]
[1, 2, 1, 2]
>>> probs = np.array([[[.95, .05]] * 4, [[.8, .2]] * 4, [[.7, .3]] * 4, [[.6, .4]] * 4])
>>> r = control.simulate(probs, Confident(4), energy_by_config=[1.0, .9, .8, .7])
>>> r.index.tolist(), round(r.summary()["relative_inference_energy"], 3)
([0, 1, 0, 1], 0.95)

Beyond the authors: :class:`OracleController` / :func:`oracle_indices` (the
cheapest schedule that keeps agreement; a lower bound on energy), and
:class:`BudgetController`, a wrapper that holds any controller to an energy
budget. Built-in controllers run in a Numba-compiled loop (``simulate(...,
fast=True)``; see :meth:`Controller.kernel_spec`); user-defined ones run the generic
Python loop; both give the same indices.

Modules, in reading order (each imports only the ones before it):
``prepared`` (the validated trace, labels and energies), ``controllers`` (the protocol,
the authors' controllers, :data:`BUILTINS`), ``budget`` and ``oracle`` (beyond the
authors), ``simulator`` (:func:`simulate`, :class:`SimResult`), ``synthetic`` (a test
trace); ``_loops`` holds the Numba-compiled loops.
"""

from __future__ import annotations

from ._loops import KernelSpec
from .budget import BudgetController
from .controllers import (
    BUILTINS,
    ConfidenceController,
    Controller,
    KalmanController,
    NaiveController,
    NoController,
    StateController,
    StaticController,
    confidence_tables,
    fill_confidence_table,
    make_controller,
)
from .oracle import OracleController, ReplayController, oracle_frontier, oracle_indices
from .prepared import PreparedProbs, prepare_probs
from .simulator import SimResult, simulate, summary_table
from .synthetic import make_synthetic_probs

__all__ = [
    "BUILTINS",
    "BudgetController",
    "ConfidenceController",
    "Controller",
    "KalmanController",
    "KernelSpec",
    "NaiveController",
    "NoController",
    "OracleController",
    "PreparedProbs",
    "ReplayController",
    "SimResult",
    "StateController",
    "StaticController",
    "confidence_tables",
    "fill_confidence_table",
    "make_controller",
    "make_synthetic_probs",
    "oracle_frontier",
    "oracle_indices",
    "prepare_probs",
    "simulate",
    "summary_table",
]
