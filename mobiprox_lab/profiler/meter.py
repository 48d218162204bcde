"""Energy counters: joules of a code window from the hardware, read through Zeus.

:class:`EnergyMeter` reads hardware energy counters through **Zeus** (``pip install zeus``;
``zeus.monitor.ZeusMonitor``: CPU packages and DRAM through Intel/AMD RAPL, NVIDIA GPUs
through NVML), chosen over CodeCarbon because it measures a code window's joules from the
counters themselves with little overhead, where CodeCarbon samples power every few seconds for
emission reports and, without counters, falls back to a TDP-based estimate (an invented
number). The import is lazy: without Zeus or without counters :func:`counters_available`
says why and callers use the law.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["Availability", "EnergyMeter", "counters_available", "rapl_available"]


@dataclass
class Availability:
    """``bool(x)``: whether energy counters can be read; ``reason`` says which, or why not.
    Unpacks as ``ok, reason = counters_available()``."""

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok

    def __iter__(self) -> Iterator:
        return iter((self.ok, self.reason))


def _monitor(gpus: bool):
    from zeus.monitor import ZeusMonitor

    return ZeusMonitor(gpu_indices=None if gpus else [])


def counters_available(*, gpus: bool = False) -> Availability:
    """Whether Zeus is installed and sees CPU (RAPL) or, with ``gpus``, GPU (NVML) counters."""
    try:
        import zeus.monitor  # noqa: F401
    except ImportError:
        return Availability(False, "the zeus package is not installed (pip install zeus)")
    try:
        mon = _monitor(gpus)
    except Exception as exc:  # permission errors, driver errors: say so, use the law
        return Availability(False, f"zeus could not open the counters: {exc}")
    cpus, gpu_ids = list(mon.cpu_indices or []), list(mon.gpu_indices or [])
    if not cpus and not gpu_ids:
        return Availability(False, "zeus found no energy counters (no RAPL under "
                                   "/sys/class/powercap, e.g. a VM; no NVIDIA GPU)")
    return Availability(True, f"zeus: CPU packages {cpus}, GPUs {gpu_ids}")


def rapl_available() -> Availability:
    """Alias of :func:`counters_available` (CPU counters, read through Zeus)."""
    return counters_available()


@dataclass
class EnergyMeter:
    """Joules over a ``with`` block (or ``start()`` / ``stop()``) from Zeus's counters.

    joules : {"cpu<i>": J, "dram<i>": J, "gpu<i>": J} of the last window.
    total_j : their sum. elapsed_s : the window's wall time (s).
    """

    gpus: bool = False
    joules: dict[str, float] = field(default_factory=dict, init=False)
    elapsed_s: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        avail = counters_available(gpus=self.gpus)
        if not avail:
            raise RuntimeError(f"counters: unavailable: {avail.reason}")
        self._mon = _monitor(self.gpus)
        self._n = 0
        self._key: str | None = None

    def start(self) -> EnergyMeter:
        if self._key is not None:
            raise RuntimeError("start: the meter is already running; call stop() first")
        self._n += 1
        self._key = f"mobiprox-{id(self)}-{self._n}"
        self._mon.begin_window(self._key, sync_execution=False)
        return self

    def stop(self) -> dict[str, float]:
        if self._key is None:
            raise RuntimeError("stop: the meter is not running; call start() first")
        m = self._mon.end_window(self._key, sync_execution=False)
        self._key = None
        out: dict[str, float] = {}
        for prefix, part in (("cpu", m.cpu_energy), ("dram", m.dram_energy),
                             ("gpu", m.gpu_energy)):
            for i, j in (part or {}).items():
                out[f"{prefix}{i}"] = float(j)
        self.joules, self.elapsed_s = out, float(m.time)
        return out

    @property
    def total_j(self) -> float:
        return float(sum(self.joules.values()))

    def __enter__(self) -> EnergyMeter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
