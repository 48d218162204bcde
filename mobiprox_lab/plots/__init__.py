"""Figure functions, one per figure, shared by the figure pipeline and the notebooks.

Every function returns a matplotlib ``Figure`` and, given ``path``, also writes it
as PNG. Submodules: :mod:`.kernels` (kernel speed and breakdown), :mod:`.tuning`
(the paper's energy / Pareto / per-class / confidence figures) and
:mod:`.control` (adaptation traces and the controller comparison).
"""

from __future__ import annotations

from pathlib import Path

# The colour of each controller is fixed across every figure and widget.
CONTROLLER_COLOURS = {
    "none": "#4d4d4d",
    "oracle": "#000000",
    "oracle-correct": "#7f7f7f",
    "naive": "#1f77b4",
    "state": "#2ca02c",
    "kalman": "#d62728",
    "confidence": "#9467bd",
    "budget": "#ff7f0e",
    "static": "#8c564b",
    "custom": "#e377c2",
}
TASK_COLOURS = {"har": "#1f77b4", "kws": "#d62728"}
TASK_NAMES = {"har": "HAR MobileNet", "kws": "KWS CNN"}


def controller_colour(name: str) -> str:
    """Colour of a controller by its name ("kalman x2", "Budget(state)" ... use the family)."""
    key = name.lower().replace("controller", "").strip()
    for family, colour in CONTROLLER_COLOURS.items():
        if key.startswith(family):
            return colour
    return CONTROLLER_COLOURS["custom"]


def save(fig, path: str | Path | None, dpi: int = 150):
    """Write ``fig`` to ``path`` (PNG) when given; return the figure."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return fig

