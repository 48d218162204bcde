"""ipywidgets panels: the controller playground and the configuration explorer.

Both only arrange package results; everything they show comes from
:mod:`mobiprox_lab.control` and :mod:`mobiprox_lab.plots`, on data the caller passes
(``experiments.trace_data`` builds a :class:`TraceData` from a task setup).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from . import control
from .plots import control as control_plots
from .plots import tuning as tuning_plots


@dataclass
class TraceData:
    """One trace ready for interactive simulation.

    probs : prepared softmax of every config on every step (``control.prepare_probs``).
    relative_energy : (n_configs,) energy per inference relative to exact (from measured
    speedup); conf_correct / conf_wrong : (n_configs, n_classes), from the tune split;
    shares : {"continuous": 1.0, "duty_cycled": s}: the exact inference's share of the
    phone's energy in each regime (``experiments.TaskSetup.shares``).
    """

    trace: object
    probs: control.PreparedProbs
    relative_energy: np.ndarray
    conf_correct: np.ndarray
    conf_wrong: np.ndarray
    shares: dict

    @property
    def n_configs(self) -> int:
        return self.probs.n_configs


def _slider(kind, description, **kw):
    s = kind(description=description, continuous_update=False,
             style={"description_width": "150px"}, layout=W.Layout(width="420px"), **kw)
    s.add_class("mobiprox-slider")
    return s


# factory(data, params) -> Controller, and the parameter names it reads
_Factory = Callable[[TraceData, dict], control.Controller]


class ControllerPlayground:
    """Pick a trace, a controller, its factor and parameters; see the adaptation trace and
    the summary metrics update live.

    traces : {name: TraceData}. ``add_controller(name, factory)`` adds a strategy:
    ``factory(n_configs) -> Controller`` (e.g. a user-defined subclass).
    ``widget`` is the panel to display; ``metrics`` the HTML widget holding the numbers
    (CSS class ``mobiprox-metrics``); ``last_seconds`` the time the last update took.
    """

    def __init__(self, traces: dict[str, TraceData], *, window_steps: int = 2400) -> None:
        if not traces:
            raise ValueError("traces: expected at least one {name: TraceData}")
        self.traces = dict(traces)
        self.window_steps = int(window_steps)
        self.factories: dict[str, _Factory] = {}
        # the sliders each controller reads (besides the factor)
        self.uses = {
            "state": ("window", "vote_limit"), "kalman": ("q", "r", "lower", "upper"),
            "confidence": ("lower_frac", "upper_frac"), "budget (state)": ("target",),
            "static": ("index",),
        }
        self._builtin_factories()
        self.trace_w = W.Dropdown(options=list(self.traces), description="trace")
        self.ctrl_w = W.Dropdown(options=list(self.factories), value="state",
                                 description="controller")
        self.factor_w = W.ToggleButtons(options=[("linear (1)", 1), ("exponential (2)", 2)],
                                        description="factor")
        self.params = {
            "window": _slider(W.IntSlider, "state window", value=3, min=2, max=8),
            "vote_limit": _slider(W.IntSlider, "state vote limit", value=2, min=1, max=6),
            "q": _slider(W.FloatLogSlider, "Kalman Q", value=0.1, base=10, min=-3, max=1),
            "r": _slider(W.FloatLogSlider, "Kalman R", value=1.0, base=10, min=-2, max=2),
            "lower": _slider(W.FloatSlider, "Kalman lower x", value=0.5, min=0.05, max=0.9,
                             step=0.05),
            "upper": _slider(W.FloatSlider, "Kalman upper x", value=0.95, min=0.5, max=0.999,
                             step=0.005, readout_format=".3f"),
            "lower_frac": _slider(W.FloatSlider, "confidence lower frac", value=0.5, min=0.0,
                                  max=1.0, step=0.05),
            "upper_frac": _slider(W.FloatSlider, "confidence upper frac", value=0.75,
                                  min=0.0, max=1.0, step=0.05),
            "target": _slider(W.FloatSlider, "budget: rel. energy", value=0.9, min=0.5,
                              max=1.0, step=0.01),
            "index": _slider(W.IntSlider, "static index", value=1, min=0, max=1),
        }
        self.regime_w = W.ToggleButtons(options=[("continuous", "continuous"),
                                                 ("duty-cycled", "duty_cycled")],
                                        description="energy regime")
        self.share_w = _slider(W.FloatLogSlider, "inference share", value=1.0, base=10,
                               min=-4, max=0, step=0.05, readout_format=".4f")
        self.start_w = _slider(W.IntSlider, "plot from step", value=0, min=0, max=1,
                               step=100)
        self.metrics = W.HTML()
        self.metrics.add_class("mobiprox-metrics")
        self.plot = W.Output(layout=W.Layout(min_height="520px"))
        self.last_seconds = float("nan")
        self.result: control.SimResult | None = None
        controls = W.VBox([self.trace_w, self.ctrl_w, self.factor_w,
                           *self.params.values(), self.regime_w, self.share_w, self.start_w])
        self.widget = W.VBox([W.HBox([controls, self.metrics]), self.plot])
        for w in (self.trace_w, self.ctrl_w, self.factor_w, self.start_w, self.regime_w,
                  self.share_w, *self.params.values()):
            w.observe(self._on_change, names="value")
        self._sync_ranges()
        self._sync_share()
        self.update()

    # ----------------------------------------------------------------- controllers
    def _builtin_factories(self) -> None:
        """Every ``control.BUILTINS`` controller, then the budget wrapper and the oracle."""
        for name in control.BUILTINS:
            self.factories[name] = self._builtin_factory(name)
        self.factories["budget (state)"] = lambda d, p: control.BudgetController(
            control.StateController(d.n_configs, factor=p["factor"]), d.relative_energy,
            max(p["target"], float(d.relative_energy.min() / d.relative_energy[0])))
        self.factories["oracle"] = lambda d, p: control.OracleController(d.n_configs,
                                                                         d.relative_energy)

    def _builtin_factory(self, name: str) -> _Factory:
        """factory(data, params) for ``control.BUILTINS[name]`` reading its sliders."""
        cls = control.BUILTINS[name]

        def factory(d: TraceData, p: dict) -> control.Controller:
            kw = {k: p[k] for k in self.uses.get(name, ())}
            args = (d.conf_correct, d.conf_wrong) if name == "confidence" else ()
            if name == "static":  # the slider may still hold another trace's range
                kw["index"] = min(kw["index"], d.n_configs - 1)
            return cls(d.n_configs, *args, factor=p["factor"], **kw)

        return factory

    def add_controller(self, name: str, factory: Callable[[int], control.Controller]) -> None:
        """Add a strategy to the dropdown: ``factory(n_configs)`` returns a fresh controller."""
        if not callable(factory):
            raise TypeError(f"factory: expected a callable (n_configs) -> Controller, got "
                            f"{type(factory).__name__}")
        self.factories[name] = lambda d, p: factory(d.n_configs)
        self.ctrl_w.options = list(self.factories)
        self.ctrl_w.value = name

    # ---------------------------------------------------------------------- update
    def _sync_ranges(self) -> None:
        data = self.traces[self.trace_w.value]
        self.params["index"].max = data.n_configs - 1
        # a list with no cheaper configuration leaves the budget slider pinned at 1.0
        cheapest = float(data.relative_energy.min() / data.relative_energy[0])
        self.params["target"].min = min(round(cheapest, 2) + 0.01, self.params["target"].max)
        self.start_w.max = max(0, len(data.trace) - self.window_steps)
        used = self.uses.get(self.ctrl_w.value, ())
        for name, w in self.params.items():
            w.layout.display = None if name in used else "none"

    def _sync_share(self) -> None:
        """Set the share slider to the selected trace's share in the selected regime."""
        share = self.traces[self.trace_w.value].shares[self.regime_w.value]
        self.share_w.unobserve(self._on_change, names="value")
        self.share_w.value = max(share, 10 ** self.share_w.min)
        self.share_w.observe(self._on_change, names="value")

    def _on_change(self, change) -> None:
        if change["owner"] in (self.trace_w, self.ctrl_w):
            self._sync_ranges()
        if change["owner"] in (self.trace_w, self.regime_w):
            self._sync_share()
        self.update()

    def current_params(self) -> dict:
        p = {name: w.value for name, w in self.params.items()}
        p["factor"] = self.factor_w.value
        return p

    def simulate(self) -> control.SimResult:
        """Run the selected controller on the selected trace (all steps)."""
        data = self.traces[self.trace_w.value]
        ctrl = self.factories[self.ctrl_w.value](data, self.current_params())
        res = control.simulate(data.probs, ctrl, data.relative_energy,
                               inference_share=self.share_w.value)
        res.controller = f"{self.ctrl_w.value} x{self.factor_w.value}"
        return res

    def update(self) -> None:
        start = time.perf_counter()
        data = self.traces[self.trace_w.value]
        res = self.result = self.simulate()
        s = res.summary()
        self.metrics.value = metrics_html(s, data.trace, res, self.regime_w.value)
        self.plot.clear_output(wait=True)
        with self.plot:
            fig = control_plots.plot_adaptation_trace(data.trace, res, start=self.start_w.value,
                                                      steps=self.window_steps)
            display(fig)
            plt.close(fig)
        self.last_seconds = time.perf_counter() - start


def metrics_html(summary: dict, trace, result: control.SimResult, regime: str) -> str:
    """The playground's metric panel as HTML. Accuracy counts the trace's labelled steps
    only (transitions / unlabelled stretches are scored by agreement with exact)."""
    known = np.asarray(trace.y) >= 0
    acc = float(np.mean(result.pred[known] == trace.y[known])) if known.any() else np.nan
    base = float(np.mean(result.baseline_pred[known] == trace.y[known])) if known.any() \
        else np.nan
    rows = [
        ("steps", f"{summary['steps']:,} ({trace.duration_s / 3600:.2f} h; "
                  f"{int(known.sum()):,} labelled)"),
        ("accuracy (labelled)", f"{100 * acc:.2f} % (exact {100 * base:.2f} %)"),
        ("agreement with exact", f"{100 * summary['agreement']:.2f} %"),
        ("relative inference energy", f"{summary['relative_inference_energy']:.4f}"),
        (f"system-wide saving, {regime.replace('_', '-')}",
         f"{100 * summary['system_saving']:.3f} % (share {summary['inference_share']:.4f})"),
        ("switches", f"{summary['switches']:,}"),
        ("mean config index", f"{summary['mean_index']:.2f}"),
    ]
    body = "".join(f"<tr><td style='padding-right:12px'>{k}</td><td><b>{v}</b></td></tr>"
                   for k, v in rows)
    return f"<h4>{summary['controller']}: metrics (energy, accuracy)</h4><table>{body}</table>"


class ConfigExplorer:
    """Pick a configuration of a tuned list; see its per-layer knobs as a heatmap and its
    accuracy / speedup / energy.

    configs : the final list (``tuner.TuneResult.configs``); ops : op names in execution
    order (``ApproxModel.tunable_ops``).
    """

    def __init__(self, configs: pd.DataFrame, ops: list[str]) -> None:
        self.configs = configs.reset_index(drop=True)
        self.ops = list(ops)
        names = self.configs["name"] if "name" in self.configs else self.configs.index
        self.pick = W.Dropdown(options=[(str(n), i) for i, n in enumerate(names)],
                               description="config")
        self.info = W.HTML()
        self.plot = W.Output()
        self.widget = W.VBox([W.HBox([self.pick, self.info]), self.plot])
        self.pick.observe(lambda _: self.update(), names="value")
        self.update()

    def update(self) -> None:
        row = self.configs.iloc[self.pick.value]
        fields = [("predicted speedup", "predicted_speedup", "{:.2f}x"),
                  ("measured speedup", "speedup", "{:.2f}x"),
                  ("test accuracy", "accuracy", "{:.2f} %"),
                  ("QoS loss (test)", "qos_loss", "{:.2f} pp"),
                  ("relative energy", "relative_energy", "{:.3f}")]
        cells = "".join(f"<tr><td>{label}</td><td><b>{fmt.format(row[col])}</b></td></tr>"
                        for label, col, fmt in fields if col in row and pd.notna(row[col]))
        self.info.value = f"<table>{cells}</table>"
        self.plot.clear_output(wait=True)
        with self.plot:
            fig = tuning_plots.plot_config_knobs(self.configs, self.ops,
                                                 highlight=int(self.pick.value))
            display(fig)
            plt.close(fig)
