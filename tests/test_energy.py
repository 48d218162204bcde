"""The device energy model, its calibration on the authors' table, and the RAPL reader."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mobiprox_lab import energy
from mobiprox_lab.energy import PowerProfile

# P_base .5 W, P_active 2 W, fp16 at half the energy, one inference per second.
P = PowerProfile("test", p_base_w=0.5, p_active_w=2.0, fp16_energy_factor=0.5, window_s=1.0)


def test_model_arithmetic_on_hand_values():
    assert energy.inference_energy(0.1, profile=P) == pytest.approx(0.2)       # 2 W * .1 s
    assert energy.inference_energy(0.1, 1.0, P) == pytest.approx(0.1)         # all fp16: half
    assert energy.inference_energy(0.1, 0.5, P) == pytest.approx(0.15)        # .2 (1 - .25)
    assert energy.system_energy(0.1, profile=P) == pytest.approx(0.7)         # .5 * 1 + .2
    assert energy.inference_share(0.1, P) == pytest.approx(2 / 7)
    assert energy.relative_inference_energy(0.05, 0.1, profile=P) == pytest.approx(0.5)
    assert energy.relative_system_energy(0.05, 0.1, profile=P) == pytest.approx(6 / 7)
    assert energy.system_saving(0.5, 2 / 7) == pytest.approx(1 / 7)
    assert energy.relative_system_from_inference(0.5, 2 / 7) == pytest.approx(6 / 7)
    # an inference slower than the window runs back to back: the window lasts L
    assert energy.system_energy(2.0, profile=P) == pytest.approx(0.5 * 2 + 4)
    # continuous inference (window 0): relative system energy = 1 / speedup,
    # share = P_active / (P_base + P_active)
    assert energy.system_energy(0.1, profile=P, window_s=0) == pytest.approx(0.25)
    assert energy.relative_system_energy(0.05, 0.1, profile=P, window_s=0) == pytest.approx(0.5)
    assert energy.inference_share(0.1, P, window_s=0) == pytest.approx(0.8)


def test_system_and_inference_views_agree_for_any_duty_cycle():
    rng = np.random.default_rng(0)
    lat0 = 0.08
    lat = rng.uniform(0.02, lat0, 50)
    f = rng.uniform(0, 1, 50)
    for w in (0.5, 1.28, 10.0):
        r = energy.relative_inference_energy(lat, lat0, f, energy.PHONE)
        s = energy.inference_share(lat0, energy.PHONE, w)
        direct = energy.relative_system_energy(lat, lat0, f, energy.PHONE, w)
        np.testing.assert_allclose(direct, energy.relative_system_from_inference(r, s))
        assert isinstance(direct, np.ndarray) and direct.shape == (50,)


def test_default_profile_and_share():
    p = energy.PHONE
    assert (p.window_s, p.p_base_w, p.p_active_w) == (1.28, 0.30, 1.5)
    assert "Carroll" in p.source and "approximate" in p.source
    assert energy.PHONE_KWS.window_s == 1.0
    share = energy.default_inference_share()
    assert share == pytest.approx(1.5 * 0.05 / (0.3 * 1.28 + 1.5 * 0.05))
    assert isinstance(share, float)


def test_profile_from_battery_and_validation():
    p = PowerProfile.from_battery("mine", idle_current_ma=100, busy_current_ma=500, voltage_v=4.0)
    assert (p.p_base_w, p.p_active_w) == pytest.approx((0.4, 1.6))
    with pytest.raises(ValueError, match="busy_current_ma"):
        PowerProfile.from_battery("mine", 100, 50)
    with pytest.raises(ValueError, match="p_base_w"):
        PowerProfile("x", p_base_w=-1, p_active_w=1)
    with pytest.raises(ValueError, match="fp16_energy_factor"):
        dataclasses.replace(P, fp16_energy_factor=1.5)
    with pytest.raises(ValueError, match="latency_s"):
        energy.inference_energy(-0.1)
    with pytest.raises(ValueError, match="exact_latency_s"):
        energy.relative_inference_energy(0.1, 0.0)
    with pytest.raises(ValueError, match="fp16_fraction"):
        energy.inference_energy(0.1, 2.0)
    with pytest.raises(TypeError, match="profile"):
        energy.inference_energy(0.1, profile="phone")
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
    assert energy.authors_har_table_path().parts[-3:] == (
        "shared", "reference", "har_configs_mobiprox.csv")


# ------------------------------------------------------------------------ RAPL


def write_zone(root: Path, zone: str, name: str, uj: int, max_uj: int) -> Path:
    d = root / f"intel-rapl:{zone}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def test_rapl_reader_on_a_fixture_with_wraparound(tmp_path):
    (tmp_path / "intel-rapl").mkdir()  # the control-type folder: not a zone
    p0 = write_zone(tmp_path, "0", "package-0", 1_000_000, 262_143_328_850)
    core = write_zone(tmp_path, "0:0", "core", 200_000, 262_143_328_850)
    p1 = write_zone(tmp_path, "1", "package-1", 9_000_000, 10_000_000)
    avail = energy.rapl_available(tmp_path)
    assert avail and "3 zone(s)" in avail.reason
    ok, reason = avail
    assert ok is True
    with energy.RaplMeter(tmp_path) as m:
        (p0 / "energy_uj").write_text("3500000\n")    # +2.5 J
        (core / "energy_uj").write_text("1200000\n")  # +1 J, part of package-0
        (p1 / "energy_uj").write_text("500000\n")     # wrapped: 500000 - 9e6 + 1e7 = 1.5 J
    assert m.joules == pytest.approx({"intel-rapl:0 (package-0)": 2.5,
                                      "intel-rapl:0:0 (core)": 1.0,
                                      "intel-rapl:1 (package-1)": 1.5})
    assert m.total_j == pytest.approx(4.0)
    assert m.elapsed_s >= 0
    # periodic sampling accumulates across several reads
    m.start()
    (p0 / "energy_uj").write_text("4500000\n")
    m.sample()
    (p0 / "energy_uj").write_text("5000000\n")
    m.stop()
    assert m.joules["intel-rapl:0 (package-0)"] == pytest.approx(1.5)


def test_rapl_not_available_paths(tmp_path, monkeypatch):
    missing = energy.rapl_available(tmp_path / "absent")
    assert not missing and "does not exist" in missing.reason
    assert not energy.rapl_available(tmp_path)  # exists, no zones
    assert "no intel-rapl" in energy.rapl_available(tmp_path).reason
    with pytest.raises(RuntimeError, match="root: RAPL counters unavailable"):
        energy.RaplMeter(tmp_path)
    write_zone(tmp_path, "0", "package-0", 1, 10)
    real = Path.read_text

    def deny(self, *a, **k):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", deny)
    avail = energy.rapl_available(tmp_path)
    assert not avail and "not readable" in avail.reason


def test_rapl_on_this_machine():
    avail = energy.rapl_available()
    print(f"\n/sys/class/powercap here: {avail}")
    if not avail:
        with pytest.raises(RuntimeError):
            energy.RaplMeter()
