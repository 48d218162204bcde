"""kernelbench.settle: waits while another thread of the process burns CPU (as torch's
OpenMP workers do after a parallel call), returns at once when none does."""

from __future__ import annotations

import threading
import time

from mobiprox_lab import kernelbench


def test_settle_returns_when_idle_and_waits_for_a_spinning_thread():
    assert kernelbench.settle(max_s=0.5) < 0.1
    stop = time.perf_counter() + 0.15

    def spin():
        while time.perf_counter() < stop:
            pass

    t = threading.Thread(target=spin)
    t.start()
    try:
        waited = kernelbench.settle(max_s=1.0)
    finally:
        t.join()
    assert waited >= 0.1


def test_layer_shapes_follow_the_har_network_width():
    """layer_shapes(har_width): the distinct regular-conv shapes of HarMobileNet(width)."""
    import pytest
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
