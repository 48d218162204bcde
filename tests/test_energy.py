"""The energy law, the two regimes, the calibration on the shipped authors' table, counters."""

from __future__ import annotations

import dataclasses
import sys
import types

import numpy as np
import pytest

from mobiprox_lab import energy
from mobiprox_lab.energy import EnergyLaw, PowerProfile
from mobiprox_lab.profiler import meter

# P_base .5 W, P_active 2 W, one inference per second.
P = PowerProfile("test", p_base_w=0.5, p_active_w=2.0, window_s=1.0)


def test_law_on_hand_values():
    law = EnergyLaw(exponent=2.0)
    assert law.relative_energy(1.0) == 1.0
    assert law.relative_energy(2.0) == pytest.approx(0.25)
    assert law.relative_energy(0.5) == pytest.approx(4.0)
    np.testing.assert_allclose(law.relative_energy(np.array([1.0, 2.0])), [1.0, 0.25])
    assert energy.relative_inference_energy(0.1, 0.2, law=law) == pytest.approx(0.25)
    # the sensitivity parameter, only when set: r = s^-k (1 - f (1 - phi))
    half = EnergyLaw(exponent=2.0, fp16_energy_factor=0.5)
    assert half.relative_energy(2.0, 0.5) == pytest.approx(0.25 * 0.75)


def test_authors_law_is_the_power_law_fit_of_the_shipped_table():
    law = energy.authors_law()
    table = energy.load_authors_har_table()
    approx = table[table["config"] > 0]
    fit = energy.fit(approx["speedup"], approx["relative_energy"], fixed_cost=0.0)
    assert law.exponent == pytest.approx(fit.params["k"]) and 1.2 < law.exponent < 1.5
    assert law.fp16_energy_factor == 1.0 and "authors" in law.source
    pred = energy.energy_from_speedup(approx["speedup"].to_numpy())
    assert np.max(np.abs(pred - approx["relative_energy"])) < 0.03


def test_slower_than_exact_costs_more_than_exact():
    s = np.array([0.5, 0.89, 0.999, 1.0, 1.2, 2.0])
    r = energy.energy_from_speedup(s)
    assert np.all(r[s < 1] > 1) and r[3] == 1.0 and np.all(r[s > 1] < 1)
    assert np.all(np.diff(r) < 0)  # monotone
    assert energy.relative_inference_energy(0.0112, 0.01) > 1.0  # 0.89x measured
    # a slower configuration saves negative energy in both regimes
    share = energy.inference_share(0.01, energy.PHONE, regime="duty_cycled")
    assert energy.system_saving(r[1], share) < 0
    assert energy.system_saving(r[1], 1.0) < 0


def test_no_energy_number_depends_on_the_fp16_factor_unless_set():
    s = np.array([0.4, 0.9, 1.3, 2.2])
    f = np.array([0.0, 0.3, 0.7, 1.0])
    np.testing.assert_array_equal(energy.energy_from_speedup(s, f), energy.energy_from_speedup(s))
    np.testing.assert_array_equal(energy.authors_law().relative_energy(s, f),
                                  energy.energy_from_speedup(s))
    np.testing.assert_array_equal(
        energy.relative_inference_energy(0.01 / s, 0.01, fp16_fraction=f),
        energy.energy_from_speedup(s))
    # set, it changes the numbers, and says so in its source
    law = energy.authors_law(fp16_energy_factor=0.5)
    assert np.all(law.relative_energy(s, f)[1:] < energy.energy_from_speedup(s)[1:])
    assert "sensitivity" in law.source
    assert not any("fp16" in f.name for f in dataclasses.fields(PowerProfile))


def test_regimes_and_shares_on_hand_values():
    # continuous: the law is whole-phone energy under continuous inference -> share 1
    assert energy.inference_share(0.1, P, regime="continuous") == 1.0
    # duty-cycled: busy (P_base + P_active) L0 against idle P_base (W - L0)
    busy, idle = 2.5 * 0.1, 0.5 * 0.9
    assert energy.inference_share(0.1, P) == pytest.approx(busy / (busy + idle))
    # the latency factor scales the measured latency to the phone's
    p2 = dataclasses.replace(P, latency_factor=2.0)
    busy2, idle2 = 2.5 * 0.2, 0.5 * 0.8
    assert energy.inference_share(0.1, p2) == pytest.approx(busy2 / (busy2 + idle2))
    assert energy.inference_share(2.0, P) == 1.0  # slower than the window: back to back
    assert energy.system_saving(0.5, 0.2) == pytest.approx(0.1)
    assert energy.relative_system_from_inference(0.5, 0.2) == pytest.approx(0.9)
    # per task: the task's window, no default latency anywhere
    har = energy.inference_share_for("har", 0.005, regime="duty_cycled")
    kws = energy.inference_share_for("kws", 0.005, regime="duty_cycled")
    assert kws > har  # 1-s window vs 1.28 s
    assert har == pytest.approx(1.8 * 0.005 / (1.8 * 0.005 + 0.3 * (1.28 - 0.005)))
    assert energy.inference_share_for("kws", 0.005, regime="continuous") == 1.0
    assert not hasattr(energy, "DEFAULT_EXACT_LATENCY_S")
    assert not hasattr(energy, "default_inference_share")


def test_default_profiles():
    p = energy.PHONE
    assert (p.window_s, p.p_base_w, p.p_active_w, p.latency_factor) == (1.28, 0.30, 1.5, 1.0)
    assert "Carroll" in p.source and "Not a measurement" in p.source
    assert energy.PHONE_KWS.window_s == 1.0 == energy.WINDOWS["kws"]
    assert energy.profile_for("har") is energy.PHONE
    assert energy.PHONE_LATENCY_FACTOR == 1.0


def test_profile_from_battery_and_validation():
    p = PowerProfile.from_battery("mine", idle_current_ma=100, busy_current_ma=500, voltage_v=4.0)
    assert (p.p_base_w, p.p_active_w) == pytest.approx((0.4, 1.6))
    with pytest.raises(ValueError, match="busy_current_ma"):
        PowerProfile.from_battery("mine", 100, 50)
    with pytest.raises(ValueError, match="p_base_w"):
        PowerProfile("x", p_base_w=-1, p_active_w=1)
    with pytest.raises(ValueError, match="latency_factor"):
        dataclasses.replace(P, latency_factor=0.0)
    with pytest.raises(ValueError, match="fp16_energy_factor"):
        EnergyLaw(1.3, fp16_energy_factor=1.5)
    with pytest.raises(ValueError, match="exponent"):
        EnergyLaw(0.0)
    with pytest.raises(ValueError, match="speedup"):
        energy.energy_from_speedup(0.0)
    with pytest.raises(ValueError, match="exact_latency_s"):
        energy.relative_inference_energy(0.1, 0.0)
    with pytest.raises(ValueError, match="fp16_fraction"):
        energy.energy_from_speedup(1.2, 2.0)
    with pytest.raises(TypeError, match="law"):
        energy.energy_from_speedup(1.2, law="k=1.3")
    with pytest.raises(TypeError, match="profile"):
        energy.inference_share(0.1, "phone")
    with pytest.raises(ValueError, match="regime"):
        energy.inference_share(0.1, P, regime="sometimes")
    with pytest.raises(ValueError, match="task"):
        energy.inference_share_for("asr", 0.1, regime="continuous")
    with pytest.raises(ValueError, match="inference_share"):
        energy.system_saving(0.9, 1.5)


# ------------------------------------------------------------------------ calibration


def test_fit_on_the_authors_table():
    df = energy.load_authors_har_table()
    assert list(df["config"]) == list(range(10))
    approx = df[df["config"] > 0]  # the exact point is fitted exactly by every law
    res = energy.fit(approx["speedup"], approx["relative_energy"])
    print(f"\nauthors' HAR table, configs 1-9: free fit a={res.params['a']:.3f} "
          f"k={res.params['k']:.2f} rmse={res.rmse:.4f} max={res.max_abs_error:.4f}; "
          f"1/speedup rmse={res.rmse_inverse_speedup:.4f}")
    assert res.n == 9 and res.predicted.shape == (9,)
    assert res.rmse < 0.015 and res.max_abs_error < 0.025
    assert res.rmse < res.rmse_inverse_speedup / 3  # much better than energy = time
    np.testing.assert_allclose(res.residuals, approx["relative_energy"] - res.predicted)
    assert res.predict(1.0) == pytest.approx(1.0)
    # the measured energy falls faster than 1 / speedup: a power law needs k > 1
    pl = energy.fit(approx["speedup"], approx["relative_energy"], fixed_cost=0.0)
    print(f"power law: k={pl.params['k']:.3f} +- {pl.stderr['k']:.3f} rmse={pl.rmse:.4f}")
    assert pl.params["a"] == 0.0 and 1.2 < pl.params["k"] < 1.5 and pl.rmse < 0.02
    assert np.all(approx["relative_energy"] < 1 / approx["speedup"] + 0.01)


def test_fit_recovers_known_parameters_with_fp16():
    rng = np.random.default_rng(1)
    s = rng.uniform(1.0, 3.0, 40)
    f = rng.uniform(0.0, 1.0, 40)
    e = 0.2 + 0.8 * s**-1.3 * (1 - f * (1 - 0.6))
    res = energy.fit(s, e, f)
    assert res.params == pytest.approx({"a": 0.2, "k": 1.3, "phi": 0.6}, abs=1e-4)
    assert res.rmse < 1e-6
    np.testing.assert_allclose(res.predict(s, f), e, atol=1e-6)


def test_fit_bad_inputs():
    with pytest.raises(ValueError, match="relative_energy: expected length"):
        energy.fit([1.1, 1.2], [0.9])
    with pytest.raises(ValueError, match="speedup"):
        energy.fit([0.0, 1.2], [0.9, 0.8])
    with pytest.raises(ValueError, match="fixed_cost"):
        energy.fit([1.1, 1.2], [0.9, 0.8], fixed_cost=1.5)
    res = energy.fit([1.1, 1.2, 1.3], [0.9, 0.8, 0.75])
    with pytest.raises(ValueError, match="fp16_fraction"):
        res.predict(1.5, 0.5)


def test_missing_table_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope.csv")):
        energy.load_authors_har_table(tmp_path / "nope.csv")


def test_authors_table_ships_as_package_data():
    src = energy.authors_har_table_path()
    assert src.name == "authors_har_configs.csv" and src.is_file()
    assert "shared" not in str(src).split("mobiprox_lab")[-1]
    header = src.read_text(encoding="utf-8").splitlines()[:6]
    assert any("arXiv 2303.11291" in line for line in header)  # its source, in the file
    df = energy.load_authors_har_table()
    assert list(df.columns) == ["config", "qos_loss_pp", "speedup", "relative_energy"]
    assert list(df["config"]) == list(range(10)) and df.loc[8, "speedup"] == 1.216


# ------------------------------------------------------------------------ counters


class _FakeMeasurement:
    def __init__(self, t, cpu, dram, gpu):
        self.time, self.cpu_energy, self.dram_energy, self.gpu_energy = t, cpu, dram, gpu


class _FakeMonitor:
    cpus = [0, 1]

    def __init__(self, gpu_indices=None, cpu_indices=None):
        self.gpu_indices = [] if gpu_indices == [] else [0]
        self.cpu_indices = list(self.cpus)
        self.windows = {}

    def begin_window(self, key, sync_execution=True):
        assert key not in self.windows and sync_execution is False
        self.windows[key] = True

    def end_window(self, key, sync_execution=True):
        self.windows.pop(key)
        return _FakeMeasurement(0.5, {0: 2.0, 1: 1.5}, {0: 0.25}, {})


@pytest.fixture
def fake_zeus(monkeypatch):
    zeus = types.ModuleType("zeus")
    monitor = types.ModuleType("zeus.monitor")
    monitor.ZeusMonitor = _FakeMonitor
    zeus.monitor = monitor
    monkeypatch.setitem(sys.modules, "zeus", zeus)
    monkeypatch.setitem(sys.modules, "zeus.monitor", monitor)
    return _FakeMonitor


def test_meter_reads_zeus_windows(fake_zeus):
    avail = meter.counters_available()
    assert avail and "CPU packages [0, 1]" in avail.reason
    ok, reason = avail
    assert ok is True
    with meter.EnergyMeter() as m:
        pass
    assert m.joules == {"cpu0": 2.0, "cpu1": 1.5, "dram0": 0.25}
    assert m.total_j == pytest.approx(3.75) and m.elapsed_s == 0.5
    m.start()
    with pytest.raises(RuntimeError, match="already running"):
        m.start()
    m.stop()
    with pytest.raises(RuntimeError, match="not running"):
        m.stop()


def test_meter_without_counters(fake_zeus, monkeypatch):
    monkeypatch.setattr(fake_zeus, "cpus", [])
    avail = meter.counters_available()
    assert not avail and "no energy counters" in avail.reason
    with pytest.raises(RuntimeError, match="counters: unavailable"):
        meter.EnergyMeter()


def test_counters_on_this_machine():
    """Runs without counters (and without zeus): the law is used, never a made-up joule."""
    avail = meter.counters_available()
    print(f"\nenergy counters here: {avail}")
    assert bool(meter.rapl_available()) == bool(avail)
    if not avail:
        with pytest.raises(RuntimeError, match="counters: unavailable"):
            meter.EnergyMeter()
