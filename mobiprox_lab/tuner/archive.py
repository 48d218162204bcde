"""Storage and resumption of a search: a study folder of per-generation checkpoints.

Storage and resumption
    Every generation is written atomically as one file ``gen-<g>.npz`` (its new trials:
    knob matrix, predicted QoS and speedup, and the surviving population) in the study's
    folder (default ``cache_dir("tuning", "studies", <study>)``; ``storage`` names another
    parent folder). ``trials`` is the *total* budget: a rerun loads the generations,
    restores the population and continues; each generation draws from an RNG seeded by
    (seed, generation), so a search killed and rerun ends exactly as an uninterrupted one,
    and a kill loses only the generation in flight (never a finished one).
"""


from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cache
from .space import EXACT

__all__ = ["SearchArchive", "open_study", "trials_frame"]


class SearchArchive:
    """A study: the folder of one search's per-generation checkpoints.

    Files: ``meta.json`` (space, seed, population size, baseline QoS, tuner threshold) and
    one ``gen-<g>.npz`` per finished generation, written atomically: ``K`` int16 (n, d)
    knob ids of its new trials, ``qos`` / ``speedup`` float64 (n,), ``population`` int64
    (the trial numbers of the survivors). Trials are numbered in order of evaluation.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.meta: dict = {}
        self.K = np.zeros((0, 0), np.int16)
        self.qos = np.zeros(0)
        self.speedup = np.zeros(0)
        self.generation = np.zeros(0, np.int64)
        self.population = np.zeros(0, np.int64)
        self.n_generations = 0
        meta = self.folder / "meta.json"
        if meta.exists():
            self.meta = json.loads(meta.read_text())
            self._load()

    @property
    def name(self) -> str:
        return self.folder.name

    def _load(self) -> None:
        files = sorted(self.folder.glob("gen-*.npz"))
        ks, qs, ss, gs = [], [], [], []
        for g, f in enumerate(files):
            if f.name != f"gen-{g:06d}.npz":
                raise ValueError(f"storage: {self.folder} lacks generation {g} "
                                 f"(found {f.name}); the study is damaged")
            d = cache.load_npz(f)
            ks.append(d["K"])
            qs.append(d["qos"])
            ss.append(d["speedup"])
            gs.append(np.full(len(d["qos"]), g, np.int64))
            self.population = d["population"]
        self.n_generations = len(files)
        if files:
            self.K = np.concatenate(ks)
            self.qos, self.speedup = np.concatenate(qs), np.concatenate(ss)
            self.generation = np.concatenate(gs)

    def __len__(self) -> int:
        return len(self.qos)

    def start(self, meta: dict) -> None:
        """Create the study with ``meta``, or check that an existing one matches it."""
        if self.meta:
            for key, value in meta.items():
                if self.meta.get(key) != value:
                    raise ValueError(
                        f"{key}: the study {self.name!r} in {self.folder.parent} was run with "
                        f"{key}={self.meta.get(key)!r}, got {value!r}; use another study name "
                        f"or storage to start afresh")
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        cache.save_json(self.folder / "meta.json", meta)
        self.meta = dict(meta)
        self.K = np.zeros((0, len(meta["ops"])), np.int16)

    def append(self, K: np.ndarray, qos: np.ndarray, speedup: np.ndarray,
               population: np.ndarray) -> None:
        """Write one finished generation (atomically), then add it to memory."""
        g = self.n_generations
        cache.save_npz(self.folder / f"gen-{g:06d}.npz", K=K.astype(np.int16), qos=qos,
                       speedup=speedup, population=population.astype(np.int64))
        self.K = np.concatenate([self.K, K.astype(np.int16)])
        self.qos = np.concatenate([self.qos, qos])
        self.speedup = np.concatenate([self.speedup, speedup])
        self.generation = np.concatenate([self.generation, np.full(len(qos), g, np.int64)])
        self.population = population.astype(np.int64)
        self.n_generations += 1

    def configs(self) -> list[dict[str, int]]:
        """Sparse configuration (non-exact knobs) of every trial."""
        ops = self.meta.get("ops", [])
        return [{op: int(k) for op, k in zip(ops, row, strict=True) if k != EXACT}
                for row in self.K.tolist()]

    @property
    def trials(self) -> pd.DataFrame:
        """Every finished trial (see :func:`trials_frame`), with the study's baseline QoS
        and tuner threshold."""
        return trials_frame(self, self.meta.get("baseline_qos", np.nan),
                            self.meta.get("tuner_threshold", np.nan))


def _study_folder(study_name: str, storage) -> Path:
    if not isinstance(study_name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", study_name):
        raise ValueError(f"study_name: expected a non-empty name of letters, digits, '.', '_' "
                         f"or '-', got {study_name!r}")
    if storage is None:
        return cache.cache_dir("tuning", "studies") / study_name
    if isinstance(storage, (str, Path)) and "://" not in str(storage) and str(storage) != "sqlite":
        parent = Path(storage)
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"storage: expected a folder (studies are kept as its sub-folders), "
                             f"got the file {parent} (an Optuna journal of an older version?)")
        return parent / study_name
    raise ValueError(f"storage: expected None (cache_dir('tuning', 'studies')) or a folder "
                     f"path; Optuna storages are no longer used (the search checkpoints each "
                     f"generation itself), got {storage!r}")


def open_study(study_name: str, storage=None) -> SearchArchive:
    """The study ``study_name`` under ``storage`` (None: ``cache_dir("tuning", "studies")``;
    else a folder), as saved so far (empty if it does not exist)."""
    return SearchArchive(_study_folder(study_name, storage))


def trials_frame(study, baseline_qos: float, tuner_threshold: float) -> pd.DataFrame:
    """The finished trials of ``study`` (a :class:`SearchArchive`) as a frame, one row per
    trial: trial (number), qos (predicted, %), qos_loss (pp), speedup (predicted), feasible
    (qos_loss <= ``tuner_threshold``), config (dict of the non-exact knobs), generation."""
    if not isinstance(study, SearchArchive):
        raise ValueError(f"study: expected a SearchArchive (open_study), "
                         f"got {type(study).__name__}")
    q = study.qos.astype(np.float64)
    loss = baseline_qos - q
    return pd.DataFrame({"trial": np.arange(len(q)), "qos": q, "qos_loss": loss,
                         "speedup": study.speedup.astype(np.float64),
                         "feasible": loss <= tuner_threshold + 1e-9, "config": study.configs(),
                         "generation": study.generation})
