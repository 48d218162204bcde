"""kernelbench.settle: waits while another thread of the process burns CPU (as torch's
OpenMP workers do after a parallel call), returns at once when none does."""

from __future__ import annotations

import threading
import time

import pytest

from mobiprox_lab import kernelbench


class _FakeClock:
    """Stands in for the ``time`` module: sleeping advances wall time, and the process
    burns ``busy_s`` of CPU per second of wall time until ``busy_until`` (seconds)."""

    def __init__(self, busy_until: float, busy_s: float = 1.0):
        self.now, self.cpu = 0.0, 0.0
        self.busy_until, self.busy_s = busy_until, busy_s

    def perf_counter(self) -> float:
        return self.now

    def process_time(self) -> float:
        return self.cpu

    def sleep(self, seconds: float) -> None:
        busy = max(0.0, min(self.now + seconds, self.busy_until) - self.now)
        self.cpu += busy * self.busy_s
        self.now += seconds


def test_settle_stops_at_the_first_idle_step_or_at_max_s(monkeypatch):
    clock = _FakeClock(busy_until=0.05)
    monkeypatch.setattr(kernelbench, "time", clock)
    assert kernelbench.settle(max_s=1.0, step_s=0.01) == pytest.approx(0.06)
    clock = _FakeClock(busy_until=10.0)
    monkeypatch.setattr(kernelbench, "time", clock)
    assert 0.1 <= kernelbench.settle(max_s=0.1, step_s=0.01) <= 0.11 + 1e-9  # whole steps
    clock = _FakeClock(busy_until=10.0, busy_s=1e-3)  # 10 us per 10 ms step: idle
    monkeypatch.setattr(kernelbench, "time", clock)
    assert kernelbench.settle(max_s=1.0, step_s=0.01) == pytest.approx(0.01)


def test_settle_sees_the_cpu_time_of_another_thread():
    """process_time counts every thread of the process. Steps of 20 ms, not the default
    2 ms: on a loaded CI machine the spinning thread once got no CPU for one 2 ms step, so
    settle rightly saw an idle process."""
    assert kernelbench.settle(max_s=0.5, step_s=0.02) < 0.1
    stop = time.perf_counter() + 0.4

    def spin():
        while time.perf_counter() < stop:
            pass

    t = threading.Thread(target=spin)
    t.start()
    try:
        waited = kernelbench.settle(max_s=1.0, step_s=0.02)
    finally:
        t.join()
    assert waited >= 0.1


def test_warm_up_runs_at_least_the_calls_and_the_seconds():
    n = [0]

    def call():
        n[0] += 1
        time.sleep(0.002)

    start = time.perf_counter()
    kernelbench.warm_up(call, seconds=0.03, calls=1)
    assert time.perf_counter() - start >= 0.03 and n[0] >= 2
    n[0] = 0
    kernelbench.warm_up(call, seconds=0.0, calls=5)
    assert n[0] == 5


def test_layer_shapes_follow_the_har_network_width():
    """layer_shapes(har_width): the distinct regular-conv shapes of HarMobileNet(width)."""
    from torch import nn

    from mobiprox_lab.models import build_model

    for width in (0.25, 1.0):
        net = build_model("har", 6, (3, 32, 32), width=width)
        want = []
        for m in net.modules():
            if isinstance(m, nn.Conv2d) and m.groups == 1:
                shape = (m.in_channels, m.out_channels, m.kernel_size[0])
                if shape not in want:
                    want.append(shape)
        got = [(lay.c, lay.k, lay.kh) for lay in kernelbench.layer_shapes(width)
               if lay.net == "har" and lay.kind == "conv"]
        assert got == want
    with pytest.raises(ValueError, match="har_width"):
        kernelbench.layer_shapes(0)
