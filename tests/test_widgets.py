"""The controller playground and the configuration explorer, driven without a browser."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from mobiprox_lab import control, widgets
from mobiprox_lab.datasets.traces import Trace

matplotlib.use("Agg")


def _trace_data(n_configs: int, steps: int = 3000, n_classes: int = 5) -> widgets.TraceData:
    probs, labels = control.make_synthetic_probs(steps, n_configs=n_configs,
                                                 n_classes=n_classes, seed=1)
    trace = Trace(name="synthetic", t=np.arange(steps) * 1.28, y=labels,
                  context=np.zeros(steps), pool_index=np.arange(steps),
                  pool_x=np.zeros((steps, 1), np.float32),
                  labels=tuple(f"c{i}" for i in range(n_classes)), context_names=("all",))
    energy = np.linspace(1.0, 0.4, n_configs)
    conf_c = np.full((n_configs, n_classes), 0.9)
    conf_w = np.full((n_configs, n_classes), 0.5)
    return widgets.TraceData(trace, control.prepare_probs(probs), energy, conf_c, conf_w,
                             {"continuous": 1.0, "duty_cycled": 0.02})


def test_every_controller_and_slider_updates_the_metrics():
    pg = widgets.ControllerPlayground({"many": _trace_data(6)}, window_steps=500)
    for name in pg.factories:
        pg.ctrl_w.value = name
        assert name in pg.metrics.value and "energy" in pg.metrics.value
    pg.ctrl_w.value = "static"
    before = pg.metrics.value
    pg.params["index"].value = 5
    assert pg.metrics.value != before
    assert pg.result.summary()["relative_inference_energy"] == pytest.approx(0.4)
    assert pg.last_seconds < 5.0  # interactive (the 24 h trace target is benchmarked)


def test_energy_regime_and_share_controls():
    pg = widgets.ControllerPlayground({"many": _trace_data(6)}, window_steps=500)
    pg.ctrl_w.value = "static"
    pg.params["index"].value = 5  # relative energy 0.4: saves 60 % of the inference energy
    assert pg.share_w.value == pytest.approx(1.0)
    assert pg.result.summary()["system_saving"] == pytest.approx(0.6)
    pg.regime_w.value = "duty_cycled"
    assert pg.share_w.value == pytest.approx(0.02)
    assert pg.result.summary()["system_saving"] == pytest.approx(0.02 * 0.6)
    assert "duty-cycled" in pg.metrics.value
    pg.share_w.value = 0.1  # the user's own share
    assert pg.result.summary()["system_saving"] == pytest.approx(0.1 * 0.6, rel=1e-3)


def test_a_list_without_cheaper_configurations_still_builds():
    # a one-configuration list (a tune that kept nothing) must not break the sliders
    pg = widgets.ControllerPlayground({"one": _trace_data(1), "many": _trace_data(4)})
    pg.ctrl_w.value = "budget (state)"
    pg.trace_w.value = "many"
    pg.trace_w.value = "one"
    assert pg.params["target"].min <= pg.params["target"].max
    assert pg.result.summary()["relative_inference_energy"] == pytest.approx(1.0)


def test_custom_controller_joins_the_dropdown():
    class Always(control.Controller):
        def update(self, probs):
            return self._more()

    pg = widgets.ControllerPlayground({"many": _trace_data(4)})
    pg.add_controller("always more", lambda n: Always(n))
    assert pg.ctrl_w.value == "always more"
    assert pg.result.summary()["mean_index"] > 2.5
    with pytest.raises(TypeError, match="factory"):
        pg.add_controller("bad", 3)


def test_config_explorer_shows_each_configuration():
    configs = pd.DataFrame({"name": ["conf0", "conf1"], "config": [{}, {"a": 121}],
                            "speedup": [1.0, 1.5], "accuracy": [90.0, 89.0],
                            "qos_loss": [0.0, 1.0], "relative_energy": [1.0, 0.7]})
    ex = widgets.ConfigExplorer(configs, ["a", "b"])
    ex.pick.value = 1
    assert "1.50x" in ex.info.value and "0.700" in ex.info.value
