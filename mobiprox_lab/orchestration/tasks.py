"""Task name -> data, trained model, tuned configuration list and profile.

The one place that turns a task name ("har" / "kws") into what the layers below take as
arguments: :func:`prepare` (the data splits and the trained network), :func:`tune_task`
(the tuner on them; the CLI's ``tune`` / ``profile``) and :func:`task_setup` (everything the
controllers need, memoised per process).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import control, energy, evaluation


@dataclass
class TaskSetup:
    """A trained, tuned and profiled task: what the controllers need.

    configs : the final list conf0 (exact) .. confN (``tuner.TuneResult.configs``).
    relative_energy : float64 (n_configs,) inference energy relative to conf0, from each
        configuration's measured speedup (profiling batch) through the energy law.
    relative_energy_b1 : the same from the measured batch-1 speedup (one inference per
        sensing window: the duty-cycled regime).
    shares : {"continuous": s, "duty_cycled": s}: the exact inference's share of the
        phone's energy in each regime (see :mod:`mobiprox_lab.energy`).
    tune_probs : float32 (n_configs, N_tune, n_classes) softmax of each configuration on
        the tune split, the only data controllers are fitted on.
    temperature : the softmax temperature fitted on the exact model's tune softmax.
    traces, runs : per-process caches of the traces built on this setup and the controller
        tables run on them (``experiments.build_trace`` / ``controller_runs``).
    """

    task: str
    trained: object
    tuned: object
    model: object
    splits: object
    configs: pd.DataFrame
    relative_energy: np.ndarray
    relative_energy_b1: np.ndarray
    shares: dict[str, float]
    tune_probs: np.ndarray
    temperature: float
    traces: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)

    @property
    def n_configs(self) -> int:
        return len(self.configs)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.splits.labels)

    def confidence_tables(self, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(conf_correct, conf_wrong), each (n_configs, n_classes), on the tune split at
        ``temperature``."""
        probs = self.tune_probs if temperature == 1.0 else evaluation.temper(
            self.tune_probs, temperature)
        return control.confidence_tables(probs, self.splits.tune.y)


def _check_task(task) -> str:
    from .. import datasets

    if task not in datasets.TASKS:
        raise ValueError(f"task: expected one of {datasets.TASKS}, got {task!r}")
    return task


def prepare(task: str, *, quick: bool = False, seed: int = 0, **train_kwargs):
    """(splits, trained): ``datasets.prepare(task)`` and the network trained on its train
    split (``models.load_or_train``: loaded when cached or shipped).

    quick : shrunken data and training budget; seed : the training seed.
    """
    from .. import datasets, models

    _check_task(task)
    splits = datasets.prepare(task, quick=quick)
    trained = models.load_or_train(task, quick=quick, seed=seed, splits=splits, **train_kwargs)
    return splits, trained


def tune_task(task: str, *, quick: bool = False, model_seed: int = 0, tune_data=None,
              test_data=None, **tune_kwargs):
    """``tuner.tune`` on the trained network of ``task`` ("har" / "kws").

    The data are the task's tune / test splits unless ``tune_data`` / ``test_data`` are
    given; model_seed : the training seed; ``quick`` and every other keyword go to
    :func:`mobiprox_lab.tuner.tune`. Returns its ``TuneResult``.
    """
    from .. import tuner

    splits, trained = prepare(task, quick=quick, seed=model_seed)
    return tuner.tune(trained, quick=quick,
                      tune_data=splits.tune if tune_data is None else tune_data,
                      test_data=splits.test if test_data is None else test_data,
                      **tune_kwargs)


_SETUPS: dict[tuple, TaskSetup] = {}


def task_setup(task: str, *, quick: bool = False, seed: int = 0, trials: int | None = None,
               progress: bool = True) -> TaskSetup:
    """Train (or load), tune and profile ``task`` ("har" or "kws"); memoised per process."""
    from .. import profiler, tuner

    _check_task(task)
    key = (task, quick, seed, trials)
    if key in _SETUPS:
        return _SETUPS[key]
    splits, trained = prepare(task, quick=quick, seed=seed)
    tuned = tuner.tune(trained, quick=quick, seed=seed, trials=trials,
                       tune_data=splits.tune, test_data=splits.test, progress=progress,
                       profile_kwargs={"energy_profile": energy.profile_for(task)})
    configs = tuned.configs.reset_index(drop=True)
    rel = configs["relative_energy"].to_numpy(np.float64)
    if not np.all(np.isfinite(rel)):
        raise ValueError(f"{task}: the final list has no measured energy (tune with "
                         f"measure=True); refusing to invent one")
    tune_probs = profiler.profile_probs(tuned.model, tuned.config_list, splits.tune.x,
                                        progress=progress)
    temperature = evaluation.fit_temperature(tune_probs[0], splits.tune.y)
    rel_b1 = energy.energy_from_speedup(configs["speedup_b1"].to_numpy(np.float64),
                                        configs["fp16_fraction"].to_numpy(np.float64))
    setup = TaskSetup(task=task, trained=trained, tuned=tuned, model=tuned.model, splits=splits,
                      configs=configs, relative_energy=rel / rel[0],
                      relative_energy_b1=np.asarray(rel_b1) / rel_b1[0],
                      shares=energy_shares(tuned), tune_probs=tune_probs,
                      temperature=temperature)
    _SETUPS[key] = setup
    return setup


def energy_shares(tuned) -> dict[str, float]:
    """{"continuous", "duty_cycled"}: the exact inference's share of the phone's energy.

    Continuous inference: 1 (the energy law is the whole phone's energy under continuous
    inference, :mod:`mobiprox_lab.energy`). Duty-cycled: one inference per sensing window,
    as the profile derived it from the exact configuration's measured batch-1 time and the
    task's phone profile (``inference_share_duty_cycled`` of ``tuned.configs``).
    """
    return {"continuous": 1.0,
            "duty_cycled": float(tuned.configs.at[0, "inference_share_duty_cycled"])}
