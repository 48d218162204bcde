"""A synthetic softmax trace for tests, benchmarks and demos (not a model's output)."""

from __future__ import annotations

import numpy as np

from .. import checks


def make_synthetic_probs(n_steps: int, n_configs: int = 10, n_classes: int = 7, *,
                         seed: int = 0, mean_dwell: float = 200.0, noise: float = 0.25,
                         dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic trace for tests, benchmarks and demos (not a model's output).

    Activity bouts with geometric dwell times (mean ``mean_dwell`` steps); config i's logits
    are the true class's one-hot plus Gaussian noise growing with i, so higher configs err
    more. Returns (probs (n_configs, n_steps, n_classes), labels (n_steps,) int64).
    """
    rng = np.random.default_rng(seed)
    n_steps = checks.integer("n_steps", n_steps, 1)
    n_bouts = max(1, int(n_steps / mean_dwell * 2) + 2)
    lengths = rng.geometric(1.0 / mean_dwell, size=n_bouts)
    while lengths.sum() < n_steps:
        lengths = np.concatenate([lengths, rng.geometric(1.0 / mean_dwell, size=n_bouts)])
    labels = np.repeat(rng.integers(0, n_classes, size=len(lengths)), lengths)[:n_steps]
    hard = rng.random(n_steps)  # per-input difficulty shared by all configs
    scale = 1.0 + noise * np.arange(n_configs)
    logits = rng.normal(size=(n_configs, n_steps, n_classes)) * (hard[None, :, None] + 0.2)
    logits *= scale[:, None, None]
    logits[:, np.arange(n_steps), labels] += 3.0
    logits -= logits.max(axis=2, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=2, keepdims=True)
    return probs.astype(dtype), labels.astype(np.int64)
