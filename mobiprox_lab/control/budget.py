"""Beyond the authors: :class:`BudgetController`, a wrapper that holds any controller to an
energy budget."""

from __future__ import annotations

import inspect

import numpy as np

from .. import checks
from . import _loops
from .controllers import Controller, fast_path_applies
from .prepared import PreparedProbs, check_energy


class BudgetController(Controller):
    """Holds any controller to an energy budget: the long-run mean of
    ``energy_by_config[i] / energy_by_config[0]`` stays at or below ``target_relative_energy``.

    An integral (token-bucket) loop: ``slack`` accumulates ``target - e[i]`` after every
    inference (the energy saved against the budget so far, in exact-inference units).
    Before each inference the cap is ``target + gain * slack``; if the inner controller's
    choice costs more than the cap, the least approximate config within the cap is used
    instead (the cheapest config if none is). When ``slack <= 0`` the cap is at most the
    target, so ``slack`` never drops below ``min(initial_slack, target - max e)``: over T
    inferences the mean relative energy is at most ``target + max(0, initial_slack + max e
    - target) / T``. Saved-up slack lets the inner controller run above budget later;
    ``gain`` (1 / relative-energy units) sets how fast: larger = tighter tracking, more
    switching.

    inner : the controller whose choices are capped. Its own state steps on its own index;
    it sees the softmax of (and, for Confidence, the tables of) the config actually used.
    energy_by_config : (n_configs,) energies, kept relative to config 0 (``e / e[0]``, the
    unit of the target and the slack).
    """

    def __init__(self, inner: Controller, energy_by_config, target_relative_energy: float,
                 gain: float = 0.05, initial_slack: float = 0.0) -> None:
        if not isinstance(inner, Controller):
            raise TypeError(f"inner: expected a Controller, got {type(inner).__name__}")
        n = inner.n_configs
        e = check_energy(energy_by_config, n)
        self.inner = inner
        self._inner_takes_used = "used_index" in inspect.signature(inner.update).parameters
        self.energy_by_config = e / e[0]
        lo = float(self.energy_by_config.min())
        self.target = checks.number("target_relative_energy", target_relative_energy)
        if self.target < lo:
            raise ValueError(f"target_relative_energy: expected >= {lo:.4g} (the cheapest "
                             f"config's relative energy), got {self.target!r}")
        self.gain = checks.number("gain", gain, 0.0)
        self.initial_slack = checks.number("initial_slack", initial_slack)
        self._cheapest = int(np.argmin(self.energy_by_config))
        super().__init__(n, 1)

    @property
    def name(self) -> str:
        return f"Budget {self.target:.2f} ({self.inner.name})"

    @property
    def needs_lookahead(self) -> bool:  # type: ignore[override]
        return self.inner.needs_lookahead

    def _effective(self, i: int) -> int:
        cap = self.target + self.gain * self.slack
        if self.energy_by_config[i] <= cap:
            return i
        for k in range(self.n_configs):
            if self.energy_by_config[k] <= cap:
                return k
        return self._cheapest

    def reset(self) -> None:
        super().reset()
        self.inner.reset()
        self.slack = self.initial_slack
        self.index = self._effective(self.inner.index)

    def lookahead(self, probs_all, label: int | None = None) -> int:
        self.inner.lookahead(probs_all, label)
        self.index = self._effective(self.inner.index)
        return self.index

    def update(self, probs, used_index: int | None = None) -> int:
        used = self.index if used_index is None else used_index
        if self._inner_takes_used:
            self.inner.update(probs, used_index=used)
        else:
            self.inner.update(probs)
        self.slack += self.target - self.energy_by_config[used]
        self.index = self._effective(self.inner.index)
        return self.index

    def fast_indices(self, prep: PreparedProbs, labels) -> np.ndarray | None:
        """The inner rule and the cap in one compiled loop, when the inner controller has a
        compiled rule (:meth:`Controller.kernel_spec`); else None."""
        if not (fast_path_applies(self, "fast_indices")
                and fast_path_applies(self.inner, "kernel_spec")):
            return None
        spec = self.inner.kernel_spec(prep.n_classes)
        if spec is None:
            return None
        budget = (self.energy_by_config, self.target, self.gain, self.initial_slack)
        return _loops.run_rule(spec, self.n_configs, self.inner.factor, prep.pred, prep.conf,
                               budget)
