r"""Energy: one law from measured speedup to relative energy, the phone's duty cycle.

The law (one, documented)
-------------------------
The relative energy of a configuration is a power law of its **measured** speedup ``s``
(exact latency / latency, on the machine that ran it)::

    r(s) = s ** (-k)        k = 1.334 +- 0.048   (``authors_law()``)

``r`` is the whole phone's energy per inference relative to the exact configuration,
**under continuous inference**: the quantity the Mobiprox authors measured with a power
monitor on their phone (``load_authors_har_table()``, configurations 1-9), and ``k`` is the
least-squares fit to that table (rmse 0.015, max error 0.028; ``r = 1/s`` has rmse 0.040:
their energy falls faster than time, the active power drops a little as well). Properties
that matter: ``r(1) = 1``; a configuration **slower** than exact (``s < 1``) costs **more**
than exact (``r > 1``); ``r`` is monotone. The authors' speedups span 1.06-1.22, so beyond
that range the law is an extrapolation of a one-parameter fit (a free fixed-cost + power law
fits their points slightly better, rmse 0.011, but its parameters are not identifiable on
nine points and it explodes below ``s = 1``: :func:`fit` keeps it for the calibration figure).

fp16. A CPU only emulates half precision (:mod:`mobiprox_lab.kernels`): no speedup is
claimed, and its time is the measured time of what actually runs. ``EnergyLaw`` keeps an
``fp16_energy_factor`` (energy of fp16 work as a fraction of fp32 work) as a named
**sensitivity parameter** whose default is 1.0 (no credit): ``r = s**-k * (1 - f (1 - phi))``
with ``f`` the fp16 share of the work. Nothing depends on it unless a caller sets it.

System-wide saving, two regimes
-------------------------------
Per sensing window the phone spends ``E_idle`` (the rest of the phone, ``P_base`` over the
time it is not inferring) and ``E_busy`` (the whole phone while it infers). With the exact
inference's **share** ``sigma = E_busy / (E_idle + E_busy)``::

    relative system energy = 1 - sigma * (1 - r)        system saving = sigma * (1 - r)

(:func:`relative_system_from_inference`, :func:`system_saving`). This neglects the idle time a
faster inference frees (spent at ``P_base``): it adds ``(1 - sigma) (L0 - L) / (W - L0)``,
under 0.5% when the inference takes under a few ms of a 1-s window.

(a) ``regime="continuous"``: the phone does nothing but infer (the authors' measuring
    condition): ``sigma = 1`` and the saving is ``1 - r``. This is the number to set beside
    the paper's "up to 15%".
(b) ``regime="duty_cycled"``: one inference per sensing window ``W`` (HAR: 2.56-s windows
    with 50% overlap, ``W = 1.28`` s; KWS: ``W = 1`` s). With the phone's exact latency
    ``L0 = latency_factor * L0_measured``::

        sigma = (P_base + P_active) L0 / ((P_base + P_active) L0 + P_base (W - L0))

    ``L0_measured`` is what the caller measured here (one inference, batch 1); nothing in
    this module assumes a latency.

Phone profile (``PHONE`` / ``PHONE_KWS``; approximate, not a measurement)
    ``P_base = 0.30 W`` (awake, screen off, sensors on, radio idle) after Carroll & Heiser,
    "An analysis of power consumption in a smartphone", USENIX ATC 2010 (~0.27 W for their
    phone awake and idle); ``P_active = 1.5 W`` for one busy big core of a recent mobile SoC.
    ``latency_factor = PHONE_LATENCY_FACTOR = 1.0``: the phone's latency for our runtime as a
    multiple of this machine's. **Assumption, neutral default**: no measurement of our runtime
    on a phone exists; a phone core is likely slower (factor > 1, larger share). Pass your own
    (run ``benchmarks/runtime.py`` on both) or a profile from
    :meth:`PowerProfile.from_battery`. The duty-cycled share scales about linearly with it.

Energy counters
---------------
``EnergyMeter``, ``counters_available`` and ``rapl_available`` (hardware counters read
through Zeus) live in :mod:`mobiprox_lab.profiler.meter`: they measure, this module models.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = [
    "HAR_WINDOW_S",
    "KWS_WINDOW_S",
    "PHONE",
    "PHONE_KWS",
    "PHONE_LATENCY_FACTOR",
    "REGIMES",
    "WINDOWS",
    "EnergyLaw",
    "FitResult",
    "PowerProfile",
    "authors_har_table_path",
    "authors_law",
    "energy_from_speedup",
    "fit",
    "inference_share",
    "inference_share_for",
    "load_authors_har_table",
    "profile_for",
    "relative_inference_energy",
    "relative_system_from_inference",
    "system_saving",
]

HAR_WINDOW_S = 1.28
"""Seconds between HAR inferences: 2.56-s windows (128 samples at 50 Hz), 50% overlap."""
KWS_WINDOW_S = 1.0
"""Seconds between keyword-spotting inferences: one 1-s clip per second."""
WINDOWS = {"har": HAR_WINDOW_S, "kws": KWS_WINDOW_S}
REGIMES = ("continuous", "duty_cycled")
PHONE_LATENCY_FACTOR = 1.0
"""Phone latency / this machine's latency for the same inference: an assumption (module doc)."""


# --------------------------------------------------------------------------- validation


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


def _out(x: np.ndarray):
    return float(x) if np.ndim(x) == 0 else x


# --------------------------------------------------------------------------- the law


@dataclass(frozen=True)
class EnergyLaw:
    """``r = speedup**(-exponent) * (1 - f * (1 - fp16_energy_factor))``, see the module doc.

    exponent : k > 0. fp16_energy_factor : sensitivity parameter in [0, 1]; 1.0 = no credit.
    source : where ``exponent`` comes from.
    """

    exponent: float
    fp16_energy_factor: float = 1.0
    source: str = "user supplied"

    def __post_init__(self) -> None:
        k = self.exponent
        if isinstance(k, bool) or not isinstance(k, int | float) or not (math.isfinite(k)
                                                                          and k > 0):
            raise ValueError(f"exponent: expected a finite number > 0, got {k!r}")
        f = self.fp16_energy_factor
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 <= f <= 1.0:
            raise ValueError(f"fp16_energy_factor: expected a number in [0, 1], got {f!r}")

    def relative_energy(self, speedup, fp16_fraction=0.0):
        """Relative energy at measured ``speedup`` (> 0) with fp16 work share ``fp16_fraction``."""
        s = _nonneg("speedup", speedup, positive=True)
        f = _fraction("fp16_fraction", fp16_fraction)
        credit = 1.0 - f * (1.0 - self.fp16_energy_factor)
        return _out(s ** (-self.exponent) * credit)


@functools.cache
def _authors_law() -> EnergyLaw:
    table = load_authors_har_table()
    approx = table[table["config"] > 0]
    res = fit(approx["speedup"], approx["relative_energy"], fixed_cost=0.0)
    k = res.params["k"]
    return EnergyLaw(exponent=k, source=(
        f"power law fitted to the Mobiprox authors' phone table (HAR configs 1-9, whole-phone "
        f"energy under continuous inference): k = {k:.3f} +- {res.stderr['k']:.3f}, "
        f"rmse {res.rmse:.3f}"))


def authors_law(fp16_energy_factor: float = 1.0) -> EnergyLaw:
    """The law calibrated on the authors' table (``k`` fitted once per process).

    fp16_energy_factor : sensitivity parameter, default 1.0 (no fp16 credit); a figure that
        uses another value must say so.
    """
    law = _authors_law()
    if fp16_energy_factor == law.fp16_energy_factor:
        return law
    return EnergyLaw(law.exponent, fp16_energy_factor, law.source
                     + f"; fp16 energy factor {fp16_energy_factor} (sensitivity setting)")


def _law(law) -> EnergyLaw:
    if law is None:
        return authors_law()
    if not isinstance(law, EnergyLaw):
        raise TypeError(f"law: expected an EnergyLaw (or None for authors_law()), "
                        f"got {type(law).__name__}")
    return law


def energy_from_speedup(speedup, fp16_fraction=0.0, *, law: EnergyLaw | None = None):
    """Relative energy (exact = 1) of a configuration of measured ``speedup``. Array friendly.

    law : default :func:`authors_law` (fp16 factor 1.0: ``fp16_fraction`` changes nothing).
    """
    return _law(law).relative_energy(speedup, fp16_fraction)


def relative_inference_energy(latency_s, exact_latency_s, *, fp16_fraction=0.0,
                              law: EnergyLaw | None = None):
    """:func:`energy_from_speedup` of ``exact_latency_s / latency_s`` (both measured, s)."""
    lat = _nonneg("latency_s", latency_s, positive=True)
    lat0 = _nonneg("exact_latency_s", exact_latency_s, positive=True)
    return energy_from_speedup(lat0 / lat, fp16_fraction, law=law)


# --------------------------------------------------------------------------- the phone


@dataclass(frozen=True)
class PowerProfile:
    """Power figures of one device and its sensing cadence.

    name : label.
    p_base_w : W, drawn all the time (awake, screen off, sensors on, radio idle).
    p_active_w : W, added by the processor while an inference runs.
    window_s : s between inferences (one inference per sensing window).
    latency_factor : the device's latency / this machine's for the same inference.
    source : where the numbers come from.
    """

    name: str
    p_base_w: float
    p_active_w: float
    window_s: float = HAR_WINDOW_S
    latency_factor: float = PHONE_LATENCY_FACTOR
    source: str = "user supplied"

    def __post_init__(self) -> None:
        for attr in ("p_base_w", "p_active_w", "window_s", "latency_factor"):
            v = getattr(self, attr)
            if isinstance(v, bool) or not (isinstance(v, int | float) and math.isfinite(v)
                                           and v >= 0):
                raise ValueError(f"{attr}: expected a finite number >= 0, got {v!r}")
        for attr in ("p_active_w", "window_s", "latency_factor"):
            if getattr(self, attr) <= 0:
                raise ValueError(f"{attr}: expected > 0, got {getattr(self, attr)!r}")

    @classmethod
    def from_battery(cls, name: str, idle_current_ma: float, busy_current_ma: float,
                     voltage_v: float = 3.85, *, window_s: float = HAR_WINDOW_S,
                     latency_factor: float = PHONE_LATENCY_FACTOR) -> PowerProfile:
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
        return cls(name=name, p_base_w=idle_current_ma * 1e-3 * voltage_v,
                   p_active_w=(busy_current_ma - idle_current_ma) * 1e-3 * voltage_v,
                   window_s=window_s, latency_factor=latency_factor,
                   source=f"battery readings: idle {idle_current_ma} mA, busy "
                          f"{busy_current_ma} mA at {voltage_v} V")


_PHONE_SOURCE = ("approximate: awake-idle ~0.3 W after Carroll & Heiser, 'An analysis of power "
                 "consumption in a smartphone', USENIX ATC 2010; ~1.5 W for one busy big core "
                 "of a recent mobile SoC; latency factor 1.0 (assumption: the phone runs the "
                 "model as fast as this machine). Not a measurement.")
PHONE = PowerProfile("phone", p_base_w=0.30, p_active_w=1.5, window_s=HAR_WINDOW_S,
                     source=_PHONE_SOURCE)
"""The default phone at the HAR cadence (one inference every 1.28 s)."""
PHONE_KWS = PowerProfile("phone-kws", p_base_w=0.30, p_active_w=1.5, window_s=KWS_WINDOW_S,
                         source=_PHONE_SOURCE)
"""The default phone at the keyword-spotting cadence (one inference per second)."""


def profile_for(task: str) -> PowerProfile:
    """``PHONE`` for "har", ``PHONE_KWS`` for "kws"."""
    profiles = {"har": PHONE, "kws": PHONE_KWS}
    if task not in profiles:
        raise ValueError(f"task: expected one of {tuple(profiles)}, got {task!r}")
    return profiles[task]


def inference_share(exact_latency_s, profile: PowerProfile = PHONE, *,
                    regime: str = "duty_cycled", window_s=None):
    """The exact inference's share ``sigma`` of the phone's energy, in (0, 1] (module doc).

    exact_latency_s : the exact model's latency **measured here** (s, one inference).
    regime : "continuous" (sigma = 1: the law is whole-phone energy under continuous
        inference) or "duty_cycled" (one inference per ``window_s``, default
        ``profile.window_s``; the latency is scaled by ``profile.latency_factor``).
    """
    if not isinstance(profile, PowerProfile):
        raise TypeError(f"profile: expected a PowerProfile, got {type(profile).__name__}")
    if regime not in REGIMES:
        raise ValueError(f"regime: expected one of {REGIMES}, got {regime!r}")
    lat = _nonneg("exact_latency_s", exact_latency_s, positive=True) * profile.latency_factor
    if regime == "continuous":
        return _out(np.ones_like(lat))
    w = _nonneg("window_s", profile.window_s if window_s is None else window_s, positive=True)
    busy = (profile.p_base_w + profile.p_active_w) * lat
    idle = profile.p_base_w * np.maximum(w - lat, 0.0)
    return _out(busy / (busy + idle))


def inference_share_for(task: str, exact_latency_s, *, regime: str,
                        profile: PowerProfile | None = None):
    """:func:`inference_share` with the task's phone profile (``profile_for(task)``)."""
    p = profile_for(task) if profile is None else profile
    return inference_share(exact_latency_s, p, regime=regime)


def system_saving(relative_inference_energy, inference_share):
    """Fraction of the whole phone's energy saved: ``share * (1 - relative energy)``.

    Negative when the configuration costs more than exact (relative energy > 1).
    """
    r = _nonneg("relative_inference_energy", relative_inference_energy)
    s = _fraction("inference_share", inference_share)
    return _out(s * (1.0 - r))


def relative_system_from_inference(relative_inference_energy, inference_share):
    """Whole-phone energy relative to exact: ``1 - share * (1 - relative energy)``."""
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
    s, e, f = _fit_points(speedup, relative_energy, fp16_fraction)
    fit_phi = fp16_fraction is not None and np.any(f > 0) and fp16_energy_factor is None
    names = _free_parameters(fixed_cost, exponent, fp16_energy_factor, fit_phi)
    if len(s) < max(len(names), 1):
        raise ValueError(f"speedup: expected at least {max(len(names), 1)} points, got {len(s)}")

    def unpack(x) -> tuple[float, float, float]:
        p = dict(zip(names, x, strict=True))
        return (p.get("a", fixed_cost if fixed_cost is not None else 0.0),
                p.get("k", exponent if exponent is not None else 1.0),
                p.get("phi", fp16_energy_factor if fp16_energy_factor is not None else np.nan))

    def model(x) -> np.ndarray:
        return _law_values(*unpack(x), s, f)

    x, stderr = _least_squares(lambda x: model(x) - e, names, len(s))
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


#: (start, lower bound, upper bound) of each parameter :func:`fit` may fit, in fitting order.
_PARAMETERS = {"a": (0.1, 0.0, 0.99), "k": (1.0, 0.05, 8.0), "phi": (0.5, 0.0, 1.0)}


def _fit_points(speedup, relative_energy, fp16_fraction
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The checked points of :func:`fit`: speedup, relative energy and fp16 share, each
    float64 (n,) (fp16 share 0 when ``fp16_fraction`` is None)."""
    s = _nonneg("speedup", speedup, positive=True).ravel()
    e = _nonneg("relative_energy", relative_energy, positive=True).ravel()
    if s.shape != e.shape:
        raise ValueError(f"relative_energy: expected length {len(s)} (len(speedup)), got {len(e)}")
    if fp16_fraction is None:
        return s, e, np.zeros_like(s)
    f = _fraction("fp16_fraction", fp16_fraction).ravel()
    if f.shape != s.shape:
        raise ValueError(f"fp16_fraction: expected length {len(s)} (len(speedup)), "
                         f"got {len(f)}")
    return s, e, f


def _free_parameters(fixed_cost, exponent, fp16_energy_factor, fit_phi: bool) -> list[str]:
    """Names of the parameters :func:`fit` fits (of "a", "k", "phi", in that order), after
    checking the ones given fixed."""
    names = []
    if fixed_cost is None:
        names.append("a")
    elif not 0.0 <= fixed_cost < 1.0:
        raise ValueError(f"fixed_cost: expected a number in [0, 1), got {fixed_cost!r}")
    if exponent is None:
        names.append("k")
    elif not exponent > 0:
        raise ValueError(f"exponent: expected > 0, got {exponent!r}")
    if fit_phi:
        names.append("phi")
    elif fp16_energy_factor is not None and not 0.0 <= fp16_energy_factor <= 1.0:
        raise ValueError(f"fp16_energy_factor: expected a number in [0, 1], "
                         f"got {fp16_energy_factor!r}")
    return names


def _law_values(a, k, phi, s: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``a + (1 - a) s^-k (1 - f (1 - phi))`` (no fp16 credit where phi is nan)."""
    credit = 1.0 - f * (1.0 - (0.0 if np.isnan(phi) else phi)) if np.any(f) else 1.0
    return a + (1.0 - a) * s ** (-k) * credit


def _least_squares(residual, names: list[str], n_points: int
                   ) -> tuple[np.ndarray, dict[str, float]]:
    """(fitted values of ``names``, standard error of each of a / k / phi; nan where not
    fitted or not identifiable) minimising ``residual(x)`` within ``_PARAMETERS``' bounds."""
    from scipy.optimize import least_squares

    stderr = {"a": np.nan, "k": np.nan, "phi": np.nan}
    if not names:
        return np.array([]), stderr
    x0 = [_PARAMETERS[n][0] for n in names]
    lo = [_PARAMETERS[n][1] for n in names]
    hi = [_PARAMETERS[n][2] for n in names]
    sol = least_squares(residual, np.array(x0), bounds=(lo, hi))
    dof = n_points - len(names)
    if dof > 0:
        jtj = sol.jac.T @ sol.jac
        if np.linalg.matrix_rank(jtj) == len(names):
            cov = np.linalg.inv(jtj) * float(np.sum(sol.fun**2)) / dof
            stderr.update({n_: float(np.sqrt(max(c, 0.0)))
                           for n_, c in zip(names, np.diag(cov), strict=True)})
    return sol.x, stderr


# --------------------------------------------------------------------------- authors' table

_TABLE = "authors_har_configs.csv"


def authors_har_table_path():
    """The shipped table: ``mobiprox_lab/data/authors_har_configs.csv`` (package data; a
    ``Traversable``, a plain path in a normal install). Its source is in its header."""
    return resources.files("mobiprox_lab").joinpath("data", _TABLE)


def load_authors_har_table(path: str | Path | None = None):
    """The authors' measured HAR configurations as a DataFrame (package data by default).

    Columns: config (int), qos_loss_pp (float, pp), speedup (float, x), relative_energy
    (float, vs conf0; whole phone under continuous inference, power monitor).
    """
    import pandas as pd

    if path is None:
        src = authors_har_table_path()
        if not src.is_file():
            raise FileNotFoundError(f"path: the package data file {src} is missing; reinstall "
                                    "mobiprox_lab (pyproject [tool.setuptools.package-data])")
        with src.open("r", encoding="utf-8") as fh:
            df = pd.read_csv(fh, comment="#")
        where = f"package data {_TABLE}"
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"path: expected the authors' HAR table at {p}, "
                                    "but no such file exists")
        df = pd.read_csv(p, comment="#")
        where = str(p)
    need = {"config", "qos_loss_pp", "speedup", "relative_energy"}
    if not need <= set(df.columns):
        raise ValueError(f"path: {where} must have columns {sorted(need)}, "
                         f"got {list(df.columns)}")
    return df
