"""The trace simulator: replay precomputed softmax outputs under a controller and report
accuracy, agreement with the exact model and energy (:class:`SimResult`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import checks
from .controllers import Controller
from .prepared import PreparedProbs, check_energy, check_labels, prepare_probs


@dataclass
class SimResult:
    """Per-step outcome of :func:`simulate` (arrays of length T).

    index : config used. pred : its predicted class. baseline_pred : config ``baseline``'s.
    agree : pred == baseline_pred. correct / baseline_correct : vs labels (None without).
    step_energy : energy_by_config[index]. relative_energy : step_energy / energy_by_config[0].
    cumulative_saving : 1 - (inference energy so far) / (exact inference energy so far).
    inference_share : the exact inference's share of the system energy (None: not given).
    """

    controller: str
    index: np.ndarray
    pred: np.ndarray
    baseline_pred: np.ndarray
    agree: np.ndarray
    correct: np.ndarray | None
    baseline_correct: np.ndarray | None
    step_energy: np.ndarray
    relative_energy: np.ndarray
    cumulative_saving: np.ndarray
    energy_by_config: np.ndarray
    inference_share: float | None

    def __len__(self) -> int:
        return len(self.index)

    def summary(self) -> dict:
        """Scalars: accuracy, baseline_accuracy (nan without labels), agreement,
        relative_inference_energy, inference_saving, relative_system_energy, system_saving,
        inference_share, switches, mean_index, steps, controller. The system-wide figures
        are NaN when no ``inference_share`` was given to :func:`simulate`."""
        rel = float(self.relative_energy.mean())
        share = math.nan if self.inference_share is None else self.inference_share
        return {
            "controller": self.controller,
            "steps": len(self),
            "accuracy": float(self.correct.mean()) if self.correct is not None else math.nan,
            "baseline_accuracy": (float(self.baseline_correct.mean())
                                  if self.baseline_correct is not None else math.nan),
            "agreement": float(self.agree.mean()),
            "relative_inference_energy": rel,
            "inference_saving": 1.0 - rel,
            "inference_share": share,
            "relative_system_energy": 1.0 - share * (1.0 - rel),
            "system_saving": share * (1.0 - rel),
            "switches": int(np.count_nonzero(np.diff(self.index))),
            "mean_index": float(self.index.mean()),
        }

    def to_frame(self):
        """Per-step DataFrame: index, pred, baseline_pred, agree, [correct], step_energy,
        relative_energy, cumulative_saving."""
        import pandas as pd

        cols = {"index": self.index, "pred": self.pred, "baseline_pred": self.baseline_pred,
                "agree": self.agree}
        if self.correct is not None:
            cols["correct"] = self.correct
        cols.update(step_energy=self.step_energy, relative_energy=self.relative_energy,
                    cumulative_saving=self.cumulative_saving)
        return pd.DataFrame(cols)


def summary_table(results: Sequence[SimResult]):
    """One row of :meth:`SimResult.summary` per result, as a DataFrame."""
    import pandas as pd

    return pd.DataFrame([r.summary() for r in results])


def _python_loop(prep: PreparedProbs, controller: Controller, labels) -> np.ndarray:
    """The generic path: ``lookahead`` (if needed), read ``index``, ``update`` per step."""
    T, C = prep.n_steps, prep.n_configs
    out = np.empty(T, dtype=np.int64)
    look = controller.needs_lookahead
    probs = prep.probs
    for t in range(T):
        if look:
            controller.lookahead(probs[:, t, :], None if labels is None else int(labels[t]))
        j = controller.index
        if not (isinstance(j, int | np.integer) and 0 <= j < C):
            raise ValueError(f"controller: {controller.name}.index must be an int in [0, {C}), "
                             f"got {j!r} at step {t}")
        out[t] = j
        controller.update(probs[j, t])
    return out


def simulate(probs_by_config, controller: Controller, energy_by_config, labels=None, *,
             baseline: int = 0, inference_share: float | None = None,
             fast: bool | None = None) -> SimResult:
    """Replay a trace under ``controller``.

    probs_by_config : (n_configs, T, n_classes) softmax of every config on every input, or
        a :class:`PreparedProbs` from :func:`prepare_probs` (skips validation on re-runs).
    energy_by_config : (n_configs,) energy per inference of each config (J or relative).
    labels : (T,) true classes, optional. baseline : the config agreement is measured against.
    inference_share : the exact inference's share of the system energy (see
        :func:`mobiprox_lab.energy.inference_share`; 1.0 under continuous inference);
        None (default): no system-wide figures (NaN in the summary), never an assumed share.
    fast : None = the jitted path when the controller has one
        (:meth:`Controller.fast_indices`); False = always the Python ``update`` loop;
        True = require the jitted path.
    The controller is reset first. After a jitted run its Python state is left reset.
    """
    prep = prepare_probs(probs_by_config)
    if not isinstance(controller, Controller):
        raise TypeError(f"controller: expected a mobiprox_lab.control.Controller, got "
                        f"{type(controller).__name__}")
    C, T = prep.n_configs, prep.n_steps
    if controller.n_configs != C:
        raise ValueError(f"controller: expected n_configs == {C} (probs_by_config's first axis), "
                         f"got {controller.n_configs}")
    e = check_energy(energy_by_config, C)
    y = None if labels is None else check_labels(labels, prep)
    baseline = checks.integer("baseline", baseline, 0, C - 1)
    share = (None if inference_share is None
             else checks.number("inference_share", inference_share, 0.0, 1.0))

    controller.reset()
    idx = None if fast is False else controller.fast_indices(prep, y)
    if idx is None:
        if fast:
            raise ValueError(f"fast: {controller.name} has no jitted path; use fast=None/False")
        idx = _python_loop(prep, controller, y)
    else:
        controller.reset()

    steps = np.arange(T)
    pred = prep.pred[idx, steps]
    base = prep.pred[baseline]
    step_e = e[idx]
    rel = step_e / e[0]
    cum = 1.0 - np.cumsum(step_e) / (e[0] * np.arange(1, T + 1))
    return SimResult(
        controller=controller.name, index=idx, pred=pred, baseline_pred=base.copy(),
        agree=pred == base, correct=None if y is None else pred == y,
        baseline_correct=None if y is None else base == y, step_energy=step_e,
        relative_energy=rel, cumulative_saving=cum, energy_by_config=e, inference_share=share)
