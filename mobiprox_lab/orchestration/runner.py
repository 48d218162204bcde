"""A small step runner for long, resumable workflows (the figure pipeline, :mod:`.figures`).

Each step is a named function of a shared :class:`Context`; steps declare which
earlier steps they need. A failing step is reported by name with its error, its
dependants are skipped, and every other step still runs, so whatever finished
(cached artefacts, figures) is kept. Steps cache their own artefacts through
:mod:`mobiprox_lab.cache`, so a rerun only redoes what is missing.

Interruption: Ctrl-C (KeyboardInterrupt) is reported with the step it stopped and
re-raised; a SIGKILL stops the process where it stands. Either way the cache holds
only complete artefacts (atomic writes, checksummed), so rerunning the same steps
resumes: finished steps load their artefacts, the interrupted one starts over.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Context:
    """What steps share: options, the output folder, results and summary tables."""

    out_dir: Path
    quick: bool = False
    seed: int = 0
    results: dict = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)

    def figure_path(self, name: str) -> Path:
        """``out_dir/<name>.png``, recorded as produced."""
        path = self.out_dir / f"{name}.png"
        self.figures.append(path)
        return path


@dataclass
class Step:
    """A named unit of work: ``run(ctx)``, after the steps named in ``needs`` succeeded."""

    name: str
    run: Callable[[Context], None]
    needs: tuple[str, ...] = ()
    title: str = ""


@dataclass
class StepOutcome:
    name: str
    status: str  # "ok" | "failed" | "skipped"
    seconds: float
    error: str = ""


def run_steps(steps: list[Step], ctx: Context, *, echo: Callable[[str], None] = print
              ) -> list[StepOutcome]:
    """Run ``steps`` in order; return one outcome per step (never raises for a step error;
    a KeyboardInterrupt is reported with the step's name and re-raised)."""
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"steps: names must be unique, got {names}")
    outcomes: dict[str, StepOutcome] = {}
    for i, step in enumerate(steps, 1):
        unknown = [n for n in step.needs if n not in names[: i - 1]]
        if unknown:
            raise ValueError(f"steps: {step.name!r} needs {unknown}, which do not run before it")
        blocked = [n for n in step.needs if outcomes[n].status != "ok"]
        label = f"[{i}/{len(steps)}] {step.title or step.name}"
        if blocked:
            echo(f"{label}: skipped (needs {', '.join(blocked)})")
            outcomes[step.name] = StepOutcome(step.name, "skipped", 0.0,
                                              f"needs {', '.join(blocked)}")
            continue
        echo(f"{label} ...")
        start = time.perf_counter()
        try:
            step.run(ctx)
        except KeyboardInterrupt:
            seconds = time.perf_counter() - start
            done = [n for n, o in outcomes.items() if o.status == "ok"]
            echo(f"{label}: INTERRUPTED after {seconds:.1f} s; finished steps "
                 f"({', '.join(done) or 'none'}) keep their cached artefacts, and a rerun "
                 f"resumes from {step.name!r}")
            raise
        except Exception as exc:  # a failing step must not lose the others' work
            seconds = time.perf_counter() - start
            echo(f"{label}: FAILED after {seconds:.1f} s: {type(exc).__name__}: {exc}")
            echo(traceback.format_exc(limit=6))
            outcomes[step.name] = StepOutcome(step.name, "failed", seconds,
                                              f"{type(exc).__name__}: {exc}")
            continue
        seconds = time.perf_counter() - start
        echo(f"{label}: done in {seconds:.1f} s")
        outcomes[step.name] = StepOutcome(step.name, "ok", seconds)
    return [outcomes[n] for n in names]


def outcomes_frame(outcomes: list[StepOutcome]) -> pd.DataFrame:
    return pd.DataFrame([o.__dict__ for o in outcomes])
