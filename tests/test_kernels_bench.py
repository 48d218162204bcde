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
