"""Former home of the step runner; it lives in :mod:`mobiprox_lab.orchestration.runner`.

Kept so that ``from mobiprox_lab.pipeline import Step`` (scripts, tests) still works.
"""

from __future__ import annotations

from .orchestration.runner import Context, Step, StepOutcome, outcomes_frame, run_steps

__all__ = ["Context", "Step", "StepOutcome", "outcomes_frame", "run_steps"]
