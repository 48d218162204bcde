r"""Device energy model: what an inference costs, alone and as part of the whole phone.

The model
---------
A phone running a sensing application draws a **baseline power** ``P_base`` (W)
all the time: the SoC awake with the screen off, the sensors sampling, the
radio idle -- "the rest of the phone". During an inference the processor adds an
**active power** ``P_active`` (W) for the inference latency ``L`` (s). The
application makes one inference per **sensing window** of ``W`` seconds
(HAR: 2.56-s windows with 50% overlap, so one inference every ``W = 1.28`` s;
keyword spotting: one per ``W = 1`` s).

Energy of one inference (J), with a share ``f`` of its work in fp16::

    E_inf(L, f) = P_active * L * (1 - f * (1 - phi))

``phi`` (``fp16_energy_factor``) is the energy of fp16 work as a fraction of the
same work in fp32 (half the bytes moved, twice the SIMD lanes: ~0.5). The
workbench emulates fp16 on a CPU that cannot measure this, so the credit is
applied by the model, not by a measured latency.

System energy per window (J)::

    E_sys(L, f) = P_base * max(W, L) + E_inf(L, f)

``max(W, L)``: an inference slower than the window runs back to back, so a
"window" lasts ``L``. ``W = 0`` therefore models **continuous inference** (the
authors' measuring regime: the phone doing nothing but inferring).

Relative figures against the exact configuration (latency ``L0``, fp32)::

    relative inference energy  r   = E_inf(L, f) / E_inf(L0, 0)
    inference share            s   = E_inf(L0, 0) / E_sys(L0, 0)
    relative system energy         = E_sys(L, f) / E_sys(L0, 0)
                                   = 1 - s * (1 - r)          (when L, L0 <= W)
    system-wide saving             = s * (1 - r)

So a controller that saves 20% of the inference energy saves ``0.2 * s`` of the
phone's energy: a lot under continuous inference (``s = P_active / (P_base +
P_active)``), little at a 1.28-s cadence with a fast model.

Default numbers (approximate)
-----------------------------
``PHONE``: ``P_base = 0.30 W``, ``P_active = 1.5 W``, ``phi = 0.5``,
``W = 1.28 s``. These are order-of-magnitude figures, not a measurement of a
particular phone: Carroll & Heiser, "An analysis of power consumption in a
smartphone" (USENIX ATC 2010) measured a few hundred mW for an awake phone with
the display off and the radio idle (their Openmoko Freerunner: ~0.27 W idle),
and one big core of a recent mobile SoC under sustained load draws roughly
1-2 W above idle. ``DEFAULT_EXACT_LATENCY_S = 0.05`` (50 ms for the exact HAR
MobileNet on a phone CPU) is an **assumption** used only for a default
inference share; pass your own latency. Build a profile for your own phone from
two battery-current readings with :meth:`PowerProfile.from_battery`.

Calibration
-----------
:func:`fit` calibrates the empirical law ``relative_energy = a + (1 - a) *
speedup**(-k) * (1 - f (1 - phi))`` to measured (speedup, relative energy)
pairs: ``a`` is a fixed per-inference cost that does not scale with speed,
``k`` says how energy falls with latency (``k = 1``: energy proportional to
time, as in the linear model above; ``k > 1``: the active power itself drops in
the approximated configurations, e.g. less memory traffic).

Real counters
-------------
:class:`RaplMeter` reads Intel RAPL energy counters from
``/sys/class/powercap/intel-rapl:*`` where the machine exposes them;
:func:`rapl_available` says whether it does (and why not), so callers fall back
to the model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_EXACT_LATENCY_S",
    "HAR_WINDOW_S",
    "KWS_WINDOW_S",
    "PHONE",
    "PHONE_KWS",
    "FitResult",
    "PowerProfile",
    "RaplAvailability",
    "RaplMeter",
    "authors_har_table_path",
    "default_inference_share",
    "fit",
    "inference_energy",
    "inference_share",
    "load_authors_har_table",
    "rapl_available",
    "relative_inference_energy",
    "relative_system_energy",
    "relative_system_from_inference",
    "system_energy",
    "system_saving",
]

HAR_WINDOW_S = 1.28
"""Seconds between HAR inferences: 2.56-s windows (128 samples at 50 Hz), 50% overlap."""
KWS_WINDOW_S = 1.0
"""Seconds between keyword-spotting inferences: one 1-s clip per second."""
DEFAULT_EXACT_LATENCY_S = 0.05
"""Assumed latency (s) of the exact HAR model on a phone CPU; only for default shares."""


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class PowerProfile:
    """Power figures of one device.

    name : label.
    p_base_w : W, drawn all the time (awake, screen off, sensors on, radio idle).
    p_active_w : W, added by the processor while an inference runs.
    fp16_energy_factor : energy of fp16 work as a fraction of the same work in fp32, in [0, 1].
    window_s : s between inferences (one inference per sensing window); 0 = continuous.
    source : where the numbers come from.
    """

    name: str
    p_base_w: float
    p_active_w: float
    fp16_energy_factor: float = 0.5
    window_s: float = HAR_WINDOW_S
    source: str = "user supplied"

    def __post_init__(self) -> None:
        for attr in ("p_base_w", "p_active_w", "window_s"):
            v = getattr(self, attr)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{attr}: expected a finite number >= 0, got {v!r}")
        if self.p_active_w <= 0:
            raise ValueError(f"p_active_w: expected > 0 W, got {self.p_active_w!r}")
        f = self.fp16_energy_factor
        if not (isinstance(f, int | float) and 0.0 <= f <= 1.0):
            raise ValueError(f"fp16_energy_factor: expected a number in [0, 1], got {f!r}")

    @classmethod
    def from_battery(
        cls,
        name: str,
        idle_current_ma: float,
        busy_current_ma: float,
        voltage_v: float = 3.85,
        *,
        window_s: float = HAR_WINDOW_S,
        fp16_energy_factor: float = 0.5,
    ) -> PowerProfile:
        """A profile for your own phone from two battery-current readings.

        idle_current_ma : mA drawn with the app's sensors on but no inference (screen off).
        busy_current_ma : mA drawn while the model infers back to back (screen off).
        voltage_v : battery voltage (V), ~3.85 V nominal for a Li-ion cell.

        On Android, ``BatteryManager.BATTERY_PROPERTY_CURRENT_NOW`` (or ``dumpsys
        batterystats``) averaged over a minute gives both readings.
        """
        if not (idle_current_ma >= 0):
            raise ValueError(f"idle_current_ma: expected >= 0 mA, got {idle_current_ma!r}")
        if not (busy_current_ma > idle_current_ma):
            raise ValueError(f"busy_current_ma: expected > idle_current_ma ({idle_current_ma}), "
                             f"got {busy_current_ma!r}")
        if not (voltage_v > 0):
            raise ValueError(f"voltage_v: expected > 0 V, got {voltage_v!r}")
        return cls(name=name,
                   p_base_w=idle_current_ma * 1e-3 * voltage_v,
                   p_active_w=(busy_current_ma - idle_current_ma) * 1e-3 * voltage_v,
                   fp16_energy_factor=fp16_energy_factor, window_s=window_s,
                   source=f"battery readings: idle {idle_current_ma} mA, busy "
                          f"{busy_current_ma} mA at {voltage_v} V")


PHONE = PowerProfile(
    name="phone",
    p_base_w=0.30,
    p_active_w=1.5,
    fp16_energy_factor=0.5,
    window_s=HAR_WINDOW_S,
    source=("approximate: awake-idle ~0.3 W after Carroll & Heiser, 'An analysis of power "
            "consumption in a smartphone', USENIX ATC 2010; ~1.5 W for one busy big core of a "
            "recent mobile SoC; fp16 at half the fp32 energy. Not a measurement."),
)
"""The default phone, at the HAR cadence (one inference every 1.28 s)."""

PHONE_KWS = PowerProfile(
    name="phone-kws", p_base_w=PHONE.p_base_w, p_active_w=PHONE.p_active_w,
    fp16_energy_factor=PHONE.fp16_energy_factor, window_s=KWS_WINDOW_S, source=PHONE.source)
"""The default phone at the keyword-spotting cadence (one inference per second)."""


# --------------------------------------------------------------------------- model


def _nonneg(name: str, value, *, positive: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(arr) | ((arr <= 0) if positive else (arr < 0))
    if np.any(bad):
        what = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}: expected finite values {what}, got {value!r}")
    return arr


def _fraction(name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if np.any(~np.isfinite(arr) | (arr < 0) | (arr > 1)):
        raise ValueError(f"{name}: expected values in [0, 1], got {value!r}")
    return arr


def _profile(profile) -> PowerProfile:
    if not isinstance(profile, PowerProfile):
        raise TypeError(f"profile: expected a PowerProfile, got {type(profile).__name__}")
    return profile


def _out(x: np.ndarray):
    return float(x) if np.ndim(x) == 0 else x


def inference_energy(latency_s, fp16_fraction=0.0, profile: PowerProfile = PHONE):
    """Energy (J) of one inference: ``P_active * L * (1 - f (1 - phi))``. Array friendly."""
    p = _profile(profile)
    lat = _nonneg("latency_s", latency_s)
    f = _fraction("fp16_fraction", fp16_fraction)
    return _out(p.p_active_w * lat * (1.0 - f * (1.0 - p.fp16_energy_factor)))


def relative_inference_energy(latency_s, exact_latency_s, fp16_fraction=0.0,
                              profile: PowerProfile = PHONE):
    """Inference energy relative to the exact fp32 inference of latency ``exact_latency_s`` (s)."""
    _nonneg("exact_latency_s", exact_latency_s, positive=True)
    return _out(np.asarray(inference_energy(latency_s, fp16_fraction, profile))
                / np.asarray(inference_energy(exact_latency_s, 0.0, profile)))


def _window(profile: PowerProfile, window_s) -> np.ndarray:
    return _nonneg("window_s", profile.window_s if window_s is None else window_s)


def system_energy(latency_s, fp16_fraction=0.0, profile: PowerProfile = PHONE, window_s=None):
    """Whole-phone energy (J) per sensing window: ``P_base * max(W, L) + E_inf(L, f)``.

    window_s : s between inferences; default ``profile.window_s``; 0 = continuous inference.
    """
    p = _profile(profile)
    lat = _nonneg("latency_s", latency_s)
    w = _window(p, window_s)
    return _out(p.p_base_w * np.maximum(w, lat)
                + np.asarray(inference_energy(lat, fp16_fraction, p)))


def relative_system_energy(latency_s, exact_latency_s, fp16_fraction=0.0,
                           profile: PowerProfile = PHONE, window_s=None):
    """Whole-phone energy per window relative to running the exact model at the same cadence."""
    _nonneg("exact_latency_s", exact_latency_s, positive=True)
    return _out(np.asarray(system_energy(latency_s, fp16_fraction, profile, window_s))
                / np.asarray(system_energy(exact_latency_s, 0.0, profile, window_s)))


def inference_share(exact_latency_s, profile: PowerProfile = PHONE, window_s=None):
    """The exact inference's share of the whole phone's energy per window, in (0, 1]."""
    _nonneg("exact_latency_s", exact_latency_s, positive=True)
    return _out(np.asarray(inference_energy(exact_latency_s, 0.0, profile))
                / np.asarray(system_energy(exact_latency_s, 0.0, profile, window_s)))


def default_inference_share(profile: PowerProfile = PHONE) -> float:
    """``inference_share(DEFAULT_EXACT_LATENCY_S, profile)``: an assumed latency, see module doc."""
    return float(inference_share(DEFAULT_EXACT_LATENCY_S, profile))


def system_saving(relative_inference_energy, inference_share):
    """Fraction of the whole phone's energy saved: ``share * (1 - relative inference energy)``."""
    r = _nonneg("relative_inference_energy", relative_inference_energy)
    s = _fraction("inference_share", inference_share)
    return _out(s * (1.0 - r))


def relative_system_from_inference(relative_inference_energy, inference_share):
    """Whole-phone energy relative to exact: ``1 - share * (1 - relative inference energy)``."""
    return _out(1.0 - np.asarray(system_saving(relative_inference_energy, inference_share)))


# --------------------------------------------------------------------------- calibration


@dataclass
class FitResult:
    """Calibrated law ``E = a + (1 - a) * speedup**(-k) * (1 - f (1 - phi))``.

    params : {"a": fixed-cost fraction, "k": exponent, "phi": fp16 energy factor or nan}.
    rmse, max_abs_error : over the points fitted (relative-energy units).
    predicted, residuals : (n,) model value and measured - model at each point.
    rmse_inverse_speedup : rmse of the naive law ``E = 1 / speedup`` on the same points.
    stderr : standard error of each fitted parameter (nan if not fitted or not identifiable).
    """

    params: dict[str, float]
    rmse: float
    max_abs_error: float
    predicted: np.ndarray
    residuals: np.ndarray
    rmse_inverse_speedup: float
    n: int
    stderr: dict[str, float] = field(default_factory=dict)
    model: str = "relative_energy = a + (1 - a) * speedup**(-k) * (1 - f * (1 - phi))"

    def predict(self, speedup, fp16_fraction=0.0):
        """Relative energy predicted at ``speedup`` (> 0) with fp16 work share ``fp16_fraction``."""
        s = _nonneg("speedup", speedup, positive=True)
        f = _fraction("fp16_fraction", fp16_fraction)
        a, k, phi = self.params["a"], self.params["k"], self.params["phi"]
        if np.any(f) and np.isnan(phi):
            raise ValueError("fp16_fraction: this fit has no fp16 energy factor (phi); "
                             "expected 0, or refit with fp16_fraction / fp16_energy_factor")
        credit = 1.0 - f * (1.0 - phi) if np.any(f) else 1.0
        return _out(a + (1.0 - a) * s ** (-k) * credit)


def fit(
    speedup: Sequence[float] | np.ndarray,
    relative_energy: Sequence[float] | np.ndarray,
    fp16_fraction: Sequence[float] | np.ndarray | None = None,
    *,
    fixed_cost: float | None = None,
    exponent: float | None = None,
    fp16_energy_factor: float | None = None,
) -> FitResult:
    """Least-squares fit of ``E = a + (1 - a) s^-k (1 - f (1 - phi))`` to measured pairs.

    speedup, relative_energy : (n,) measured speedup (> 0) and energy relative to exact (> 0).
    fp16_fraction : (n,) fp16 work share per point, or None (all fp32: phi is not fitted).
    fixed_cost, exponent, fp16_energy_factor : fix ``a`` / ``k`` / ``phi`` instead of fitting.

    Bounds: a in [0, 0.99], k in [0.05, 8], phi in [0, 1]. The law passes through (1, 1)
    for fp32, so an exact point in the data adds a zero residual: leave it out for an
    honest error. ``stderr`` holds the parameters' standard errors (from the Jacobian).

    On the authors' phone table (configs 1-9) the measured energy falls faster than
    ``1 / speedup`` (rmse of ``1/s``: 0.040). Free fit: a = 0.69, k = 5.8, rmse 0.011;
    power law (``fixed_cost=0``): k = 1.33, rmse 0.015. Their speedups span only
    1.06-1.22, so a and k trade off against each other (large stderr): both laws fit the
    measured range, neither should be extrapolated far beyond it.
    """
    from scipy.optimize import least_squares

    s = _nonneg("speedup", speedup, positive=True).ravel()
    e = _nonneg("relative_energy", relative_energy, positive=True).ravel()
    if s.shape != e.shape:
        raise ValueError(f"relative_energy: expected length {len(s)} (len(speedup)), got {len(e)}")
    if fp16_fraction is None:
        f = np.zeros_like(s)
    else:
        f = _fraction("fp16_fraction", fp16_fraction).ravel()
        if f.shape != s.shape:
            raise ValueError(f"fp16_fraction: expected length {len(s)} (len(speedup)), "
                             f"got {len(f)}")
    fit_phi = fp16_fraction is not None and np.any(f > 0) and fp16_energy_factor is None
    names, x0, lo, hi = [], [], [], []
    if fixed_cost is None:
        names.append("a"), x0.append(0.1), lo.append(0.0), hi.append(0.99)
    elif not 0.0 <= fixed_cost < 1.0:
        raise ValueError(f"fixed_cost: expected a number in [0, 1), got {fixed_cost!r}")
    if exponent is None:
        names.append("k"), x0.append(1.0), lo.append(0.05), hi.append(8.0)
    elif not exponent > 0:
        raise ValueError(f"exponent: expected > 0, got {exponent!r}")
    if fit_phi:
        names.append("phi"), x0.append(0.5), lo.append(0.0), hi.append(1.0)
    elif fp16_energy_factor is not None and not 0.0 <= fp16_energy_factor <= 1.0:
        raise ValueError(f"fp16_energy_factor: expected a number in [0, 1], "
                         f"got {fp16_energy_factor!r}")
    if len(s) < max(len(names), 1):
        raise ValueError(f"speedup: expected at least {max(len(names), 1)} points, got {len(s)}")

    def unpack(x):
        p = dict(zip(names, x, strict=True))
        return (p.get("a", fixed_cost if fixed_cost is not None else 0.0),
                p.get("k", exponent if exponent is not None else 1.0),
                p.get("phi", fp16_energy_factor if fp16_energy_factor is not None else np.nan))

    def model(x):
        a, k, phi = unpack(x)
        credit = 1.0 - f * (1.0 - (0.0 if np.isnan(phi) else phi)) if np.any(f) else 1.0
        return a + (1.0 - a) * s ** (-k) * credit

    stderr = {"a": np.nan, "k": np.nan, "phi": np.nan}
    if names:
        sol = least_squares(lambda x: model(x) - e, np.array(x0), bounds=(lo, hi))
        x = sol.x
        dof = len(s) - len(names)
        if dof > 0:
            jtj = sol.jac.T @ sol.jac
            if np.linalg.matrix_rank(jtj) == len(names):
                cov = np.linalg.inv(jtj) * float(np.sum(sol.fun**2)) / dof
                stderr.update({n_: float(np.sqrt(max(c, 0.0)))
                               for n_, c in zip(names, np.diag(cov), strict=True)})
    else:
        x = np.array([])
    a, k, phi = unpack(x)
    pred = model(x)
    resid = e - pred
    return FitResult(
        params={"a": float(a), "k": float(k), "phi": float(phi)},
        rmse=float(np.sqrt(np.mean(resid**2))),
        max_abs_error=float(np.max(np.abs(resid))),
        predicted=pred,
        residuals=resid,
        rmse_inverse_speedup=float(np.sqrt(np.mean((e - 1.0 / s) ** 2))),
        n=len(s),
        stderr=stderr,
    )


def authors_har_table_path() -> Path:
    """``<repo>/../shared/reference/har_configs_mobiprox.csv``."""
    repo_root = Path(__file__).resolve().parents[1]  # == Path(mobiprox_lab.__file__).parents[1]
    return repo_root.parent / "shared" / "reference" / "har_configs_mobiprox.csv"


def load_authors_har_table(path: str | Path | None = None):
    """The authors' measured HAR configurations as a DataFrame.

    Columns: config (int), qos_loss_pp (float, pp), speedup (float, x), relative_energy
    (float, vs conf0; phone under continuous inference, power monitor).
    """
    import pandas as pd

    p = Path(path) if path is not None else authors_har_table_path()
    if not p.is_file():
        raise FileNotFoundError(f"path: the authors' HAR table was expected at {p} "
                                "(../shared/reference/har_configs_mobiprox.csv next to the "
                                "repository) but is absent")
    df = pd.read_csv(p)
    need = {"config", "qos_loss_pp", "speedup", "relative_energy"}
    if not need <= set(df.columns):
        raise ValueError(f"path: {p} must have columns {sorted(need)}, got {list(df.columns)}")
    return df


# --------------------------------------------------------------------------- RAPL


@dataclass
class RaplAvailability:
    """``bool(x)`` says whether RAPL counters are readable; ``reason`` says why not.

    Unpacks as ``ok, reason = rapl_available()``.
    """

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok

    def __iter__(self) -> Iterator:
        return iter((self.ok, self.reason))


@dataclass
class _Zone:
    zone_id: str          # "0", "0:1" ...
    name: str             # "package-0", "core", "dram" ...
    path: Path
    max_range_uj: int

    @property
    def top_level(self) -> bool:
        return ":" not in self.zone_id


def _discover(root: Path) -> list[_Zone]:
    zones = []
    for d in sorted(root.glob("intel-rapl:*")):
        zid = d.name.split(":", 1)[1]
        name_f, energy_f, range_f = d / "name", d / "energy_uj", d / "max_energy_range_uj"
        if not energy_f.exists():
            continue
        name = name_f.read_text().strip() if name_f.exists() else d.name
        max_range = int(range_f.read_text().strip()) if range_f.exists() else 2**32 - 1
        zones.append(_Zone(zid, name, d, max_range))
    return zones


def rapl_available(root: str | Path = "/sys/class/powercap") -> RaplAvailability:
    """Whether ``root`` has readable ``intel-rapl:*`` counters (falsy, with a reason, if not)."""
    r = Path(root)
    if not r.is_dir():
        return RaplAvailability(False, f"{r} does not exist (no powercap driver: not Linux, a VM "
                                       "or container without it, or a non-Intel/AMD CPU)")
    try:
        zones = _discover(r)
    except OSError as exc:
        return RaplAvailability(False, f"cannot list {r}: {exc}")
    if not zones:
        return RaplAvailability(False, f"{r} has no intel-rapl:* zone with an energy_uj file")
    try:
        (zones[0].path / "energy_uj").read_text()
    except PermissionError:
        return RaplAvailability(False, f"{zones[0].path / 'energy_uj'} is not readable (root only "
                                       "since Linux 5.10; chmod it or run as root)")
    except OSError as exc:
        return RaplAvailability(False, f"cannot read {zones[0].path / 'energy_uj'}: {exc}")
    return RaplAvailability(True, f"{len(zones)} zone(s): " + ", ".join(
        f"intel-rapl:{z.zone_id} ({z.name})" for z in zones))


@dataclass
class RaplMeter:
    """Joules drawn over a ``with`` block, from Intel RAPL counters.

    >>> with RaplMeter() as m:          # doctest: +SKIP
    ...     run_model()
    >>> m.total_j, m.joules, m.elapsed_s  # doctest: +SKIP

    joules : {zone label: J} for every zone, e.g. ``"intel-rapl:0 (package-0)"``.
    total_j : sum over top-level zones (sub-zones such as core / dram are parts of, or
        reported beside, a package and are not added again).
    Wrap-around: a counter that reads lower than before wrapped once at
    ``max_energy_range_uj``; ``delta = end - start + max_energy_range_uj``. Over long blocks
    call :meth:`sample` more often than a counter can wrap (hours at package power).
    """

    root: str | Path = "/sys/class/powercap"
    joules: dict[str, float] = field(default_factory=dict, init=False)
    elapsed_s: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        avail = rapl_available(self.root)
        if not avail:
            raise RuntimeError(f"root: RAPL counters unavailable: {avail.reason}")
        self._zones = _discover(Path(self.root))
        self._last: list[int] | None = None
        self._acc = [0] * len(self._zones)
        self._t0 = 0.0

    @staticmethod
    def _label(z: _Zone) -> str:
        return f"intel-rapl:{z.zone_id} ({z.name})"

    def read_uj(self) -> list[int]:
        """Raw counter values (µJ), one per zone."""
        return [int((z.path / "energy_uj").read_text().strip()) for z in self._zones]

    def start(self) -> RaplMeter:
        self._acc = [0] * len(self._zones)
        self._last = self.read_uj()
        self._t0 = time.perf_counter()
        return self

    def sample(self) -> None:
        """Accumulate the energy since the last read (call periodically in long blocks)."""
        if self._last is None:
            raise RuntimeError("sample: the meter is not running; use start() or a with block")
        now = self.read_uj()
        for i, (z, a, b) in enumerate(zip(self._zones, self._last, now, strict=True)):
            d = b - a
            if d < 0:
                d += z.max_range_uj
            self._acc[i] += d
        self._last = now
        self.joules = {self._label(z): acc * 1e-6 for z, acc in zip(self._zones, self._acc,
                                                                    strict=True)}
        self.elapsed_s = time.perf_counter() - self._t0

    def stop(self) -> dict[str, float]:
        self.sample()
        self._last = None
        return self.joules

    @property
    def total_j(self) -> float:
        return sum(self.joules[self._label(z)] for z in self._zones if z.top_level)

    def __enter__(self) -> RaplMeter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
