"""The inputs every controller run reads: a validated softmax trace, its labels and the
energy per configuration.

:func:`prepare_probs` validates a (n_configs, T, n_classes) softmax array once and keeps
each config's predicted class and confidence (:class:`PreparedProbs`), so re-running
controllers on the same trace skips the validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import checks
from ._loops import validate_softmax


@dataclass(frozen=True)
class PreparedProbs:
    """A validated trace with its per-config argmax / max precomputed (reuse it across runs).

    probs : (n_configs, T, n_classes) softmax. pred : int64 (n_configs, T) predicted class.
    conf : float64 (n_configs, T) softmax at the predicted class.
    """

    probs: np.ndarray
    pred: np.ndarray
    conf: np.ndarray

    @property
    def n_configs(self) -> int:
        return self.probs.shape[0]

    @property
    def n_steps(self) -> int:
        return self.probs.shape[1]

    @property
    def n_classes(self) -> int:
        return self.probs.shape[2]


def prepare_probs(probs_by_config, *, atol: float = 1e-3) -> PreparedProbs:
    """Validate a (n_configs, T, n_classes) softmax array and precompute argmax / max.

    Rows must be finite, >= 0 and sum to 1 within ``atol``. A :class:`PreparedProbs` is
    returned as it is.
    """
    if isinstance(probs_by_config, PreparedProbs):
        return probs_by_config
    try:
        p = np.asarray(probs_by_config)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"probs_by_config: expected an array of shape (n_configs, T, "
                         f"n_classes), got {type(probs_by_config).__name__} ({exc})") from None
    if p.ndim != 3:
        raise ValueError(f"probs_by_config: expected shape (n_configs, T, n_classes), got "
                         f"{p.ndim}-D shape {p.shape}")
    if min(p.shape) == 0:
        raise ValueError(f"probs_by_config: expected non-empty axes, got shape {p.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        raise ValueError(f"probs_by_config: expected a float array of softmax outputs, got "
                         f"dtype {p.dtype}")
    if p.dtype not in (np.float32, np.float64):  # float16 / longdouble: compute in float64
        p = p.astype(np.float64)
    pred = np.empty(p.shape[:2], dtype=np.int64)
    conf = np.empty(p.shape[:2], dtype=np.float64)
    atol = checks.number("atol", atol, 0.0)
    code, c, t, value = validate_softmax(np.ascontiguousarray(p), atol, pred, conf)
    if code == 1:
        raise ValueError(f"probs_by_config: expected finite softmax values, got NaN/inf at "
                         f"config {c}, step {t}")
    if code == 2:
        raise ValueError(f"probs_by_config: expected values >= 0 (softmax), got {value:.6g} at "
                         f"config {c}, step {t}")
    if code == 3:
        raise ValueError(f"probs_by_config: expected rows summing to 1 (softmax, atol {atol}), "
                         f"got {value:.6g} at config {c}, step {t}")
    return PreparedProbs(p, pred, conf)


def check_energy(energy_by_config, n_configs: int) -> np.ndarray:
    """``energy_by_config`` as float64 (n_configs,), every value finite and > 0."""
    e = checks.float_array("energy_by_config", energy_by_config)
    if e.ndim != 1 or len(e) != n_configs:
        raise ValueError(f"energy_by_config: expected {n_configs} values (one per config), got "
                         f"shape {e.shape}")
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError(f"energy_by_config: expected finite values > 0, got {e.tolist()}")
    return e


def check_labels(labels, prep: PreparedProbs) -> np.ndarray:
    """``labels`` as int64 (T,) class indices in [0, n_classes) of the trace ``prep``."""
    try:
        y = np.asarray(labels)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"labels: expected {prep.n_steps} integer class indices, got "
                         f"{type(labels).__name__} ({exc})") from None
    if y.ndim != 1 or len(y) != prep.n_steps:
        raise ValueError(f"labels: expected {prep.n_steps} values (the trace's T), got shape "
                         f"{y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels: expected integer class indices, got dtype {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= prep.n_classes):
        raise ValueError(f"labels: expected values in [0, {prep.n_classes}), got "
                         f"[{y.min()}, {y.max()}]")
    return y.astype(np.int64)
