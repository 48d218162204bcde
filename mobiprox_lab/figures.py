"""Former home of the figure pipeline; it lives in :mod:`mobiprox_lab.orchestration.figures`
(summary and README block in :mod:`mobiprox_lab.orchestration.summary`).

Kept so that ``from mobiprox_lab import figures`` (the CLI, scripts) still works; the CLI
looks ``make_figures`` up here at call time.
"""

from __future__ import annotations

from .orchestration.figures import EXPECTED_FIGURES, make_figures, pipeline_steps
from .orchestration.summary import (
    RESULTS_BEGIN,
    RESULTS_END,
    results_markdown,
    timings_markdown,
    update_readme,
    write_summary,
)

__all__ = [
    "EXPECTED_FIGURES", "RESULTS_BEGIN", "RESULTS_END", "make_figures", "pipeline_steps",
    "results_markdown", "timings_markdown", "update_readme", "write_summary",
]
