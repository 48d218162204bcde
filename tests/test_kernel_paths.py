"""Machine-dependent kernel path thresholds and per-shape choices: the choice rules, putting
them in force, the calibration that times both paths, and the profiler's per-machine cache
of it."""

from __future__ import annotations

import numpy as np
import pytest
from test_kernels_paths import (  # tests folder on sys.path
    _data,
    assert_close,
    forced_paths,
    spy_row_gemms,
)

from mobiprox_lab import kernels, profiler
from mobiprox_lab.kernels import _calibrate, _conv

reference = pytest.importorskip("mobiprox_lab.reference")

NEVER = _calibrate.NEVER
NAME = "pointwise_row_gemm_min_macs"
CHANNELS = "pointwise_row_gemm_min_channels"


@pytest.fixture(autouse=True)
def _restore_thresholds():
    before, choices = kernels.path_thresholds(), kernels.path_choices()
    yield
    kernels.set_path_thresholds(before)
    kernels.set_path_choices(choices)


def test_choose_threshold_minimises_the_relative_time():
    macs = [1 << 14, 1 << 16, 1 << 17, 1 << 18]
    # row GEMMs win from 2^17 up: the threshold is 2^17
    assert _calibrate.choose_threshold(macs, [2.0, 3.0, 1.0, 1.0], [1.0, 2.0, 2.0, 3.0]) == 1 << 17
    # they never win: never take them
    assert _calibrate.choose_threshold(macs, [2.0, 3.0, 3.0, 4.0], [1.0, 2.0, 2.0, 3.0]) == NEVER
    # they always win: the smallest case takes them too
    assert _calibrate.choose_threshold(macs, [0.5, 1.0, 1.0, 1.0], [1.0, 2.0, 2.0, 3.0]) == 1 << 14
    # one loss in the middle costs less (1.5 relative) than giving up two wins (2 + 2)
    assert _calibrate.choose_threshold(macs, [0.5, 3.0, 1.0, 1.0], [1.0, 2.0, 2.0, 2.0]) == 1 << 14
    # equal times everywhere: the larger threshold (the gathered path is the general one)
    assert _calibrate.choose_threshold(macs, [1.0] * 4, [1.0] * 4) == NEVER
    with pytest.raises(ValueError, match="macs, row_s, gathered_s: expected equal-length"):
        _calibrate.choose_threshold(macs, [1.0], [1.0] * 4)
    with pytest.raises(ValueError, match="row_s, gathered_s: expected positive"):
        _calibrate.choose_threshold(macs, [0.0] * 4, [1.0] * 4)


def test_choose_thresholds_limits_channels_only_where_it_helps():
    macs = [1 << 16, 1 << 16, 1 << 17, 1 << 17]
    gathered = [1.0, 2.0, 2.0, 2.0]
    # the 32-channel case loses with row GEMMs at the same size as a 64-channel one that
    # wins: only a channel limit gives every case its faster path
    assert _calibrate.choose_thresholds(macs, [32, 64, 64, 128], [2.0, 1.0, 1.0, 1.0],
                                        gathered) == {NAME: 1 << 16, CHANNELS: 64}
    # channels tell nothing more than the size: no limit, and the size rule's threshold
    row = [2.0, 3.0, 1.0, 1.0]
    assert _calibrate.choose_thresholds(macs, [32, 64, 64, 128], row, gathered) == {
        NAME: _calibrate.choose_threshold(macs, row, gathered), CHANNELS: 0}
    # equal times everywhere: neither path is favoured, so no row GEMMs and no limit
    assert _calibrate.choose_thresholds(macs, [32, 64, 64, 128], [1.0] * 4, [1.0] * 4) == {
        NAME: NEVER, CHANNELS: 0}
    with pytest.raises(ValueError, match="macs, channels, row_s, gathered_s: expected equal"):
        _calibrate.choose_thresholds(macs, [32], [1.0] * 4, [1.0] * 4)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "8", None])
def test_set_path_thresholds_validates(bad):
    with pytest.raises(ValueError, match=f"{NAME}: expected an int >= 0"):
        kernels.set_path_thresholds({NAME: bad})
    with pytest.raises(ValueError, match=f"{CHANNELS}: expected an int >= 0"):
        kernels.set_path_thresholds({CHANNELS: bad})
    with pytest.raises(ValueError, match="row_gemm: expected one of"):
        kernels.set_path_thresholds(row_gemm=0)
    assert kernels.path_thresholds() == {NAME: _conv.POINTWISE_ROW_GEMM_MIN_MACS,
                                         CHANNELS: _conv.POINTWISE_ROW_GEMM_MIN_CHANNELS}


@pytest.mark.parametrize("threshold,min_channels,row_gemms",
                         [(0, 0, True), (NEVER, 0, False), (0, 64, True), (0, 65, False)])
def test_threshold_in_force_picks_the_path(threshold, min_channels, row_gemms):
    """HAR's 64 -> 128 layer on 16x16 maps: row GEMMs at size threshold 0 with at most 64
    channels required, gathered at NEVER or 65 channels, the same result either way."""
    x, wt, b = _data(3, 2, 64, 16, 16, 128, 64, 1, 1, True)
    with pytest.MonkeyPatch.context() as mp, forced_paths(1):  # built-in thresholds, then:
        kernels.set_path_thresholds({NAME: 99, CHANNELS: 7})
        before = kernels.set_path_thresholds({NAME: threshold, CHANNELS: min_channels})
        assert before == {NAME: 99, CHANNELS: 7}  # was in force
        assert kernels.path_thresholds() == {NAME: threshold, CHANNELS: min_channels}
        kernels.set_path_choices([[64, 128, 8, 8, False, True]])  # another shape: no effect
        seen = spy_row_gemms(mp)
        got = kernels.conv2d(x, wt, b, knob=128)
    assert seen == [row_gemms]
    assert_close(got, reference.conv2d(x, wt, b, knob=128))


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("row", [True, False])
def test_a_shape_choice_overrides_the_thresholds(n, row):
    """A choice for the call's shape (C, K, H, W, one sample or not) picks its path whatever
    the thresholds say; the other batch class keeps to the thresholds."""
    x, wt, b = _data(5, n, 64, 16, 16, 128, 64, 1, 1, True)
    with pytest.MonkeyPatch.context() as mp, forced_paths(1):
        kernels.set_path_thresholds({NAME: 0 if not row else NEVER, CHANNELS: 0})
        before = kernels.set_path_choices([(64, 128, 16, 16, n == 1, row),
                                           [64, 128, 16, 16, n != 1, not row]])
        assert before == []
        assert kernels.path_choices() == sorted([[64, 128, 16, 16, n == 1, row],
                                                 [64, 128, 16, 16, n != 1, not row]])
        seen = spy_row_gemms(mp)
        got = kernels.conv2d(x, wt, b, knob=128)
        kernels.set_path_choices([[64, 128, 16, 16, n != 1, row]])  # only the other class
        kernels.conv2d(x, wt, b, knob=128)
    assert seen == [row, not row]
    assert_close(got, reference.conv2d(x, wt, b, knob=128))


@pytest.mark.parametrize("bad", [[64, 128, 16, 16, True], [64, 128, 16, 0, True, True],
                                 [64, 128, 16, 16, 1, True], [64.0, 128, 16, 16, True, False],
                                 "64,128,16,16,1,1", [True, 128, 16, 16, True, False]])
def test_set_path_choices_validates(bad):
    kernels.set_path_choices([[8, 8, 8, 8, False, True]])
    with pytest.raises(ValueError, match="choices: expected \\[C, K, H, W, one_sample"):
        kernels.set_path_choices([[32, 64, 8, 8, False, False], bad])
    assert kernels.path_choices() == [[8, 8, 8, 8, False, True]]  # nothing changed


def test_choices_from_cases_take_the_faster_path():
    cases = [{"n": 64, "c": 128, "k": 256, "h": 8, "row_s": 1.0, "gathered_s": 2.0},
             {"n": 1, "c": 128, "k": 256, "h": 8, "row_s": 2.0, "gathered_s": 1.0},
             {"n": 64, "c": 64, "k": 64, "h": 16, "row_s": 1.0, "gathered_s": 1.0}]  # a tie
    assert _calibrate.choices_from_cases(cases) == [
        [64, 64, 16, 16, False, False], [128, 256, 8, 8, False, True],
        [128, 256, 8, 8, True, False]]


def test_calibration_times_both_paths_and_restores():
    kernels.set_path_thresholds({NAME: 12345, CHANNELS: 999})  # would keep to one path
    cases = [(16, 32, 8), (32, 64, 8), (8, 8, 3)]  # the last: a 3x3 map takes no 1x1 path
    # choices that would keep every timed shape on the gathered path, were they in force
    held = [[c, k, h, h, one, False] for c, k, h in cases[:2] for one in (True, False)]
    kernels.set_path_choices(held)
    with pytest.MonkeyPatch.context() as mp:
        seen = spy_row_gemms(mp)
        res = kernels.calibrate_path_thresholds(cases, batch_sizes=(1, 4), repeats=1)
    assert set(seen) == {True, False}  # both paths were timed
    assert kernels.path_thresholds() == {NAME: 12345, CHANNELS: 999}
    assert kernels.path_choices() == sorted(held)
    assert res["choices"] == _calibrate.choices_from_cases(res["cases"])
    assert res["clock"] in ("thread cpu", "wall") and len(res["load_average"]) == 2
    rows = res["cases"]
    assert [(r["c"], r["k"], r["h"], r["n"]) for r in rows] == [
        (16, 32, 8, 1), (16, 32, 8, 4), (32, 64, 8, 1), (32, 64, 8, 4)]
    for r in rows:
        assert r["row_s"] > 0 and r["gathered_s"] > 0
        assert r["macs"] == _conv.pointwise_row_gemm_macs((r["n"], r["c"], r["h"], r["h"]),
                                                          r["k"], _calibrate.ROW_KNOB)
    assert res["thresholds"] == _calibrate.choose_thresholds(
        [r["macs"] for r in rows], [r["c"] for r in rows], [r["row_s"] for r in rows],
        [r["gathered_s"] for r in rows])
    with pytest.raises(ValueError, match="cases: none of them takes the row-perforated"):
        kernels.calibrate_path_thresholds([(8, 8, 3)], repeats=1)
    with pytest.raises(ValueError, match="repeats: expected an int >= 1"):
        kernels.calibrate_path_thresholds(repeats=0)


def test_profiler_calibrates_once_per_machine_and_keys_timings(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBIPROX_DATA", str(tmp_path))
    calls = []

    def fake(**kwargs):
        calls.append(kernels.get_num_threads())
        return {"thresholds": {NAME: 1000 + kernels.get_num_threads()}, "cases": [],
                "choices": [[32, 64, 8, 8, False, kernels.get_num_threads() == 1]]}

    monkeypatch.setattr(kernels, "calibrate_path_thresholds", fake)
    threads = kernels.get_num_threads()
    try:
        kernels.set_num_threads(1)
        first = profiler.kernel_paths()
        assert calls == [1] and kernels.path_thresholds()[NAME] == 1001
        assert first["machine"]["kernel_threads"] == 1
        assert profiler.machine_key()["paths"][NAME] == 1001
        assert kernels.path_choices() == [[32, 64, 8, 8, False, True]]
        assert profiler.machine_key()["path_choices"] == [[32, 64, 8, 8, False, True]]
        kernels.set_path_thresholds({NAME: 7})
        assert profiler.kernel_paths()["thresholds"] == {NAME: 1001}  # from the cache
        assert calls == [1] and kernels.path_thresholds()[NAME] == 1001
        kernels.set_num_threads(2)  # another thread count is another calibration
        profiler.kernel_paths()
        assert calls == [1, 2] and kernels.path_thresholds()[NAME] == 1002
        assert kernels.path_choices() == [[32, 64, 8, 8, False, False]]
        profiler.kernel_paths(cache=False)  # measured afresh
        assert calls == [1, 2, 2]
    finally:
        kernels.set_num_threads(threads)


def test_latency_table_is_timed_with_the_calibrated_paths(tmp_path, monkeypatch):
    from test_profiler import small_net

    monkeypatch.setenv("MOBIPROX_DATA", str(tmp_path))
    monkeypatch.setattr(kernels, "calibrate_path_thresholds",
                        lambda **kw: {"thresholds": {NAME: 4242}, "cases": []})
    kernels.set_path_thresholds({NAME: 0})
    table = profiler.measure_latency_table(small_net(), batch_sizes=(2,), repeats=1, warmup=0,
                                           progress=False)
    assert table.meta["machine"]["paths"][NAME] == 4242
    assert kernels.path_thresholds()[NAME] == 4242
    assert np.isfinite(table.exact_latency_s[2])
