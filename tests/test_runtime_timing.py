"""ApproxModel.time_steps times the steps as run() executes them: values released after
their last use, so that a step's time does not include writing fresh memory."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import torch

from mobiprox_lab.models import HarMobileNet
from mobiprox_lab.runtime import ApproxModel


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_time_steps_holds_no_more_memory_than_run():
    torch.manual_seed(0)
    am = ApproxModel(HarMobileNet(7, width=0.25).eval(), (3, 32, 32))
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    am.run(x)
    run_peak = _peak(lambda: am.run(x))
    steps_peak = _peak(lambda: am.time_steps(x, repeats=1, clock=time.thread_time))
    # every intermediate value held at once would be several times run()'s peak
    assert steps_peak < 1.5 * run_peak + (1 << 20)
