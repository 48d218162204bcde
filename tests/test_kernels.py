"""mobiprox_lab.kernels: exact conv vs torch, every knob vs the reference simulation, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mobiprox_lab import kernels, knobs
from mobiprox_lab.kernels._half import round_half_inplace

reference = pytest.importorskip("mobiprox_lab.reference")

RNG = np.random.default_rng(1234)


def _rand(*shape) -> np.ndarray:
    return RNG.standard_normal(shape, dtype=np.float32)


def _torch_conv(x, w, b, stride, padding, groups):
    with torch.no_grad():
        bt = None if b is None else torch.from_numpy(b)
        return F.conv2d(torch.from_numpy(x), torch.from_numpy(w), bt, stride=stride,
                        padding=padding, groups=groups).numpy()


# (N, C, H, W, K, KH, KW, stride, padding, groups)
EXACT_GRID = [
    (1, 3, 8, 8, 4, 3, 3, 1, 0, 1),
    (2, 3, 8, 8, 4, 3, 3, 1, 1, 1),
    (3, 3, 9, 7, 5, 3, 3, 2, 1, 1),
    (2, 4, 9, 8, 6, 3, 3, 2, (2, 1), 1),
    (1, 5, 6, 6, 7, 1, 1, 1, 0, 1),
    (4, 8, 20, 20, 16, 1, 1, 1, 0, 1),  # 1x1 large map: per-sample GEMM path
    (2, 6, 5, 7, 4, 1, 1, 2, 1, 1),
    (2, 1, 30, 12, 4, 20, 8, 1, 0, 1),
    (1, 2, 25, 14, 3, 20, 8, 2, (2, 1), 1),
    (2, 6, 9, 9, 6, 3, 3, 1, 1, 6),  # depthwise
    (2, 6, 9, 9, 6, 3, 3, 2, 1, 6),
    (1, 4, 8, 8, 8, 3, 3, 1, 0, 4),  # depthwise, channel multiplier 2
    (2, 8, 8, 7, 6, 3, 3, 1, 1, 2),  # grouped, direct loop
    (2, 24, 8, 7, 6, 3, 3, 2, (2, 1), 2),  # grouped, wide groups: per-group GEMM
]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("case", EXACT_GRID, ids=str)
def test_exact_matches_torch(case, bias):
    n, c, h, w, k, kh, kw, stride, padding, groups = case
    x, wt = _rand(n, c, h, w), _rand(k, c // groups, kh, kw)
    b = _rand(k) if bias else None
    got = kernels.conv2d(x, wt, b, stride=stride, padding=padding, groups=groups)
    want = _torch_conv(x, wt, b, stride, padding, groups)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_exact_non_contiguous_input():
    x = _rand(2, 6, 10, 10)[:, ::2, :, ::-1]
    w = _rand(4, 3, 3, 3)
    want = _torch_conv(np.ascontiguousarray(x), w, None, 1, 1, 1)
    np.testing.assert_allclose(kernels.conv2d(x, w, padding=1), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bias", [False, True])
def test_linear_matches_torch(bias):
    x, w = _rand(5, 37), _rand(11, 37)
    b = _rand(11) if bias else None
    with torch.no_grad():
        want = F.linear(torch.from_numpy(x), torch.from_numpy(w),
                        None if b is None else torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(kernels.linear(x, w, b), want, rtol=1e-4, atol=1e-5)


def test_linear_fp16_matches_reference():
    x, w, b = _rand(4, 50), _rand(6, 50), _rand(6)
    want = reference.linear(x, w, b, knob=12)
    np.testing.assert_allclose(kernels.linear(x, w, b, knob=12), want,
                               rtol=2.0**-10, atol=2.0**-10 * np.abs(want).max())


def test_half_rounding_is_numpys():
    bits = RNG.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32)
    edges = np.array([0.0, -0.0, 65504, 65519.99, 65520, -65520, 2.0**-14, 2.0**-24, 2.0**-25,
                      3 * 2.0**-26, 1 + 2.0**-11, 1 + 3 * 2.0**-11, np.inf, -np.inf, np.nan],
                     dtype=np.float32)
    vals = np.concatenate([bits.view(np.float32), edges])
    with np.errstate(over="ignore"):
        want = vals.astype(np.float16).astype(np.float32)
    got = vals.copy()
    round_half_inplace(got)
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    assert same.all(), vals[~same][:5]


# ---- every knob vs the reference simulation, on random small shapes -------------------

@st.composite
def conv_case(draw, grouped: bool = False):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, min(2, kh - 1))), draw(st.integers(0, min(2, kw - 1)))
    ho, wo = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    h = max(1, (ho - 1) * sh + kh - 2 * ph + draw(st.integers(0, sh - 1)))
    w = max(1, (wo - 1) * sw + kw - 2 * pw + draw(st.integers(0, sw - 1)))
    if grouped:
        groups = draw(st.sampled_from([2, 3]))
        c = groups * draw(st.sampled_from([1, 2, 10]))
        k = groups * draw(st.integers(1, 2))
    else:
        groups, c, k = 1, draw(st.integers(1, 5)), draw(st.integers(1, 5))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    bias = draw(st.booleans())
    return n, c, h, w, k, kh, kw, (sh, sw), (ph, pw), groups, seed, bias


def _arrays(case):
    n, c, h, w, k, kh, kw, _, _, groups, seed, bias = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = rng.standard_normal((k, c // groups, kh, kw), dtype=np.float32)
    b = rng.standard_normal(k, dtype=np.float32) if bias else None
    return x, wt, b


def _assert_matches_reference(got, want, x, w, fp16: bool):
    if not fp16:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        return
    # Both sides round to half at the same points, so they differ only where
    # fp32 accumulation order moves a value across a half rounding boundary:
    # one half ulp (2**-10 relative) of the magnitude, at most. Allow one ulp of
    # the output's largest magnitude (sums cancel, so small outputs carry the
    # absolute rounding error of the large partial sums).
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=2.0**-10, atol=2.0**-10 * scale)


@pytest.mark.parametrize("kid", knobs.CONV_KNOB_IDS)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.filter_too_much,
                                                                HealthCheck.too_slow])
@given(case=conv_case())
def test_every_knob_matches_reference(kid, case):
    n, c, h, w, k, kh, kw, stride, padding, groups, seed, bias = case
    ho = (h + 2 * padding[0] - kh) // stride[0] + 1
    wo = (w + 2 * padding[1] - kw) // stride[1] + 1
    assume(ho >= 1 and wo >= 1 and knobs.applicable(kid, "conv", (ho, wo)))
    x, wt, b = _arrays(case)
    got = kernels.conv2d(x, wt, b, stride=stride, padding=padding, knob=kid)
    want = reference.conv2d(x, wt, b, stride=stride, padding=padding, knob=kid)
    assert got.dtype == np.float32 and got.shape == want.shape
    _assert_matches_reference(got, want, x, wt, knobs.get(kid).is_fp16)


@pytest.mark.parametrize("kid", knobs.BASIC_KNOB_IDS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=conv_case(grouped=True))
def test_grouped_matches_reference(kid, case):
    n, c, h, w, k, kh, kw, stride, padding, groups, seed, bias = case
    x, wt, b = _arrays(case)
    got = kernels.conv2d(x, wt, b, stride=stride, padding=padding, groups=groups, knob=kid)
    want = reference.conv2d(x, wt, b, stride=stride, padding=padding, groups=groups, knob=kid)
    _assert_matches_reference(got, want, x, wt, kid == knobs.FP16)


def test_fp16_kws_sized_layer_matches_reference():
    x, w, b = _rand(2, 4, 30, 12), _rand(3, 4, 20, 8), _rand(3)
    for kid in (12, 153, 263):  # exact, row perforation, regular sampling (160 % 2 == 0)
        got = kernels.conv2d(x, w, b, knob=kid)
        _assert_matches_reference(got, reference.conv2d(x, w, b, knob=kid), x, w, True)


# ---- timings ------------------------------------------------------------------------

def test_timings_accumulate_per_phase():
    x, w = _rand(2, 3, 10, 10), _rand(4, 3, 3, 3)
    acc: dict[str, float] = {}
    kernels.conv2d(x, w, padding=1, knob=123, timings=acc)
    assert {"im2col", "gemm", "interp"} <= set(acc) <= set(kernels.PHASES)
    first = dict(acc)
    kernels.conv2d(x, w, padding=1, knob=123, timings=acc)
    assert all(acc[p] >= first[p] >= 0 for p in first)
    out, phases = kernels.conv2d_breakdown(x, w, padding=1, knob=11)
    assert set(phases) == set(kernels.PHASES) and out.shape == (2, 4, 10, 10)
    _, phases = kernels.conv2d_breakdown(_rand(1, 4, 6, 6), _rand(4, 1, 3, 3), groups=4)
    assert phases["direct"] > 0 and phases["gemm"] == 0


# ---- NaN and degenerate inputs ---------------------------------------------------------

@pytest.mark.parametrize("kid", [11, 12, 123, 121, 158, 231, 265])
def test_nan_in_nan_out(kid):
    x, w = np.full((1, 2, 8, 8), np.nan, np.float32), _rand(3, 2, 3, 3)
    assert np.isnan(kernels.conv2d(x, w, knob=kid)).all()
    x = _rand(1, 2, 8, 8)
    x[0, 1, 4, 4] = np.nan
    out = kernels.conv2d(x, w, knob=kid)
    assert np.isnan(out).any()


def test_nan_single_pixel_exact_like_torch():
    x, w = _rand(1, 2, 8, 8), _rand(3, 2, 3, 3)
    x[0, 0, 0, 7] = np.nan
    got = kernels.conv2d(x, w, padding=1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(_torch_conv(x, w, None, 1, 1, 1)))
    assert np.isnan(kernels.conv2d(x, _rand(2, 1, 3, 3), padding=1, groups=2)).any()
    assert np.isnan(kernels.linear(np.full((1, 3), np.nan, np.float32), _rand(2, 3))).all()


def test_empty_batch():
    out = kernels.conv2d(np.zeros((0, 3, 5, 5), np.float32), _rand(2, 3, 3, 3))
    assert out.shape == (0, 2, 3, 3)


# ---- argument errors ------------------------------------------------------------------

X, W, B = _rand(1, 4, 6, 6), _rand(2, 4, 3, 3), _rand(2)


@pytest.mark.parametrize("kwargs, match", [
    ({"x": X.astype(np.float64)}, r"x: expected dtype float32, got float64"),
    ({"w": W.astype(np.float16)}, r"w: expected dtype float32"),
    ({"b": B.astype(np.float64)}, r"b: expected dtype float32"),
    ({"x": X.tolist()}, r"x: expected a float32 numpy.ndarray"),
    ({"x": X[0]}, r"x: expected a 4-D array"),
    ({"w": W[0]}, r"w: expected a 4-D array"),
    ({"b": B[:, None]}, r"b: expected a 1-D array"),
    ({"b": _rand(3)}, r"b: expected shape \(2,\)"),
    ({"w": _rand(2, 3, 3, 3)}, r"w: expected w.shape\[1\] \* groups == C"),
    ({"w": _rand(3, 2, 3, 3), "groups": 2}, r"w: expected w.shape\[0\] \(K=3\) to be a multiple"),
    ({"groups": 0}, r"groups: expected a positive int"),
    ({"groups": 1.0}, r"groups: expected a positive int"),
    ({"stride": 0}, r"stride: expected ints >= 1"),
    ({"stride": (1, 0)}, r"stride: expected ints >= 1"),
    ({"stride": "1"}, r"stride: expected an int or a pair"),
    ({"padding": -1}, r"padding: expected ints >= 0"),
    ({"padding": (0, 1, 2)}, r"padding: expected an int or a pair"),
    ({"x": _rand(1, 4, 2, 6)}, r"x: output size would be 0x4"),
    ({"knob": 99}, r"knob: unknown knob id 99"),
    ({"knob": "fast"}, r"knob: unknown knob id"),
    ({"x": _rand(1, 4, 3, 6), "knob": 123}, r"knob: 123 .* not applicable to an output of 1x4"),
    ({"x": _rand(1, 4, 5, 6), "knob": 138}, r"knob: 138 .* not applicable to an output of 3x4"),
    ({"w": _rand(4, 1, 3, 3), "b": _rand(4), "groups": 4, "knob": 123},
     r"knob: grouped / depthwise convolution \(groups=4\) accepts only knobs 11 and 12"),
    ({"w": _rand(4, 2, 3, 3), "b": _rand(4), "groups": 2, "knob": 231},
     r"knob: grouped / depthwise .* got 231"),
])
def test_conv2d_errors(kwargs, match):
    args = {"x": X, "w": W, "b": B} | kwargs
    x, w, b = args.pop("x"), args.pop("w"), args.pop("b")
    with pytest.raises(ValueError, match=match):
        kernels.conv2d(x, w, b, **args)


@pytest.mark.parametrize("kwargs, match", [
    ({"x": _rand(2, 5).astype(np.float64)}, r"x: expected dtype float32, got float64"),
    ({"x": _rand(2, 5, 1)}, r"x: expected a 2-D array"),
    ({"w": _rand(3, 5, 1)}, r"w: expected a 2-D array"),
    ({"w": _rand(3, 4)}, r"w: expected w.shape\[1\] == F = 5"),
    ({"b": _rand(4)}, r"b: expected shape \(3,\)"),
    ({"knob": 123}, r"knob: linear layers accept only knobs 11 and 12, got 123"),
    ({"knob": 7}, r"knob: unknown knob id 7"),
])
def test_linear_errors(kwargs, match):
    args = {"x": _rand(2, 5), "w": _rand(3, 5), "b": _rand(3)} | kwargs
    with pytest.raises(ValueError, match=match):
        kernels.linear(args.pop("x"), args.pop("w"), args.pop("b"), **args)


def test_kernels_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from mobiprox_lab import kernels; "
            "kernels.conv2d(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32));"
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- threaded, chunked paths (shapes big enough for several workers) -------------------

@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = kernels.get_num_threads()
    kernels.set_num_threads(request.param)
    yield request.param
    kernels.set_num_threads(before)


@pytest.mark.parametrize("kid", [11, 12, 123, 124, 121, 132, 158, 231, 233, 262])
def test_chunked_threaded_matches_reference(kid, threads, monkeypatch):
    from mobiprox_lab.kernels import _conv

    # 2 samples per chunk and an odd batch: several chunks per worker, a short last one
    monkeypatch.setattr(_conv, "CHUNK_BYTES", 400 << 10)
    x, w, b = _rand(21, 16, 17, 15), _rand(12, 16, 3, 3), _rand(12)
    got = kernels.conv2d(x, w, b, padding=1, knob=kid)
    want = reference.conv2d(x, w, b, padding=1, knob=kid)
    _assert_matches_reference(got, want, x, w, knobs.get(kid).is_fp16)


@pytest.mark.parametrize("case", [
    ((12, 32, 16, 16), (24, 32, 1, 1), 1, 0, 1),  # 1x1, per-sample GEMM into the output
    ((40, 32, 16, 16), (32, 1, 3, 3), 1, 1, 32),  # depthwise, plane loop
    ((240, 64, 4, 4), (64, 1, 3, 3), 1, 1, 64),  # depthwise, small maps: channel-vectorised
    ((60, 64, 8, 8), (64, 1, 3, 3), 2, 1, 64),
], ids=["pointwise", "depthwise-plane", "depthwise-nhwc", "depthwise-nhwc-s2"])
@pytest.mark.parametrize("kid", [11, 12])
def test_threaded_paths_match_reference(case, kid, threads):
    xs, ws, stride, padding, groups = case
    x, w, b = _rand(*xs), _rand(*ws), _rand(ws[0])
    got = kernels.conv2d(x, w, b, stride=stride, padding=padding, groups=groups, knob=kid)
    want = reference.conv2d(x, w, b, stride=stride, padding=padding, groups=groups, knob=kid)
    _assert_matches_reference(got, want, x, w, kid == 12)


@pytest.mark.parametrize("kid", [11, 123, 122, 231, 12])
def test_timed_path_equals_fused_path(kid, threads):
    # with timings the phases run as separate calls; the result must be identical
    x, w, b = _rand(9, 16, 18, 18), _rand(20, 16, 3, 3), _rand(20)
    xp, wp = _rand(6, 32, 16, 16), _rand(24, 32, 1, 1)
    for args in ((x, w, b, 1), (xp, wp, _rand(24), 0)):
        if args[3] == 0 and kid != 11:
            continue
        plain = kernels.conv2d(*args[:3], padding=args[3], knob=kid)
        timed = kernels.conv2d(*args[:3], padding=args[3], knob=kid, timings={})
        np.testing.assert_array_equal(plain, timed)


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="n: expected a positive int"):
        kernels.set_num_threads(0)


@pytest.mark.parametrize("case", [
    ((9, 32, 16, 16), (48, 32, 1, 1), 1, 0, 1, [11, 123, 121, 231]),  # 1x1
    ((5, 24, 13, 11), (16, 24, 3, 3), 1, 1, 1, [11, 123, 121, 231]),  # chunks / row blocks
    ((3, 8, 20, 14), (12, 8, 5, 4), 1, 0, 1, [11, 121, 123, 231]),  # column-shifted rows
    ((7, 64, 8, 8), (64, 1, 3, 3), 2, 1, 64, [11]),  # depthwise by phases
    ((7, 64, 4, 4), (64, 1, 3, 3), 1, 1, 64, [11]),  # depthwise, channel-vectorised
], ids=["pointwise", "chunks", "shifted", "depthwise", "depthwise-nhwc"])
def test_numba_and_python_task_loops_give_the_same_bits(case):
    """Two threads, with and without loop jobs (``set_numba_task_loops``), fused ReLU."""
    xs, ws, stride, padding, groups, kids = case
    x, w, b = _rand(*xs), _rand(*ws), _rand(ws[0])
    assert kernels.get_numba_task_loops() is True  # the default
    with kernels.using_threads(2):
        for kid in kids:
            kw = {"stride": stride, "padding": padding, "groups": groups, "knob": kid,
                  "relu": True}
            in_numba = kernels.conv2d(x, w, b, **kw)
            kernels.set_numba_task_loops(False)
            try:
                in_python = kernels.conv2d(x, w, b, **kw)
            finally:
                kernels.set_numba_task_loops(True)
            np.testing.assert_array_equal(in_numba, in_python)
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="enabled: expected a bool"):
            kernels.set_numba_task_loops(bad)
    assert kernels.get_numba_task_loops() is True


# ---- benchmark helpers and figures (smoke) -------------------------------------------------

def test_layer_shapes_match_the_networks():
    from mobiprox_lab import kernelbench

    shapes = {layer.name: layer for layer in kernelbench.layer_shapes()}
    assert shapes["har.conv1"].out_hw == (32, 32)
    pw = [layer.out_hw for layer in shapes.values() if layer.name.startswith("har.pw")]
    assert pw == [(32, 32), (16, 16), (16, 16), (8, 8), (8, 8), (4, 4), (4, 4), (2, 2), (2, 2)]
    assert sum(layer.kind == "depthwise" for layer in shapes.values()) == 9
    assert shapes["kws.conv1"].out_hw == (82, 33) and shapes["kws.conv2"].out_hw == (32, 13)
    with pytest.raises(ValueError, match="layers: unknown layer names"):
        kernelbench.bench_layers(layers=["nope"])


def test_kernelbench_and_figures_smoke(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from mobiprox_lab import kernelbench
    from mobiprox_lab.plots import kernels as kplots

    monkeypatch.setenv("MOBIPROX_DATA", str(tmp_path))
    args = {"quick": True, "batch": 4, "threads": 1, "layers": ["har.pw13", "har.dw13"],
            "progress": False}
    df = kernelbench.bench_layers(**args)
    assert set(df["variant"]) == {"torch exact", "exact", *kernelbench.APPROX_VARIANTS}
    assert (df["median_s"] > 0).all() and (df["kernel_threads"] == 1).all()
    again = kernelbench.bench_layers(**args)  # from the cache
    assert again["median_s"].tolist() == pytest.approx(df["median_s"].tolist())
    sp = kernelbench.speedups(df)
    assert len(sp) == 9 and (sp["speedup"] > 0).all()
    summary = kernelbench.summary(df)
    assert summary["metric"].str.contains("exact / torch").any()
    value = summary.set_index("metric")["value"]
    dw13 = df.set_index(["layer", "variant"])["median_s"]
    assert value["exact / torch, worst depthwise layer"] == pytest.approx(
        dw13["har.dw13", "exact"] / dw13["har.dw13", "torch exact"])
    bd = kernelbench.bench_breakdown(**args)
    assert set(bd["phase"]) == set(kernels.PHASES)
    for name, fig in {"speedups": kplots.plot_kernel_speedups(sp),
                      "breakdown": kplots.plot_kernel_breakdown(bd),
                      "maps": kplots.plot_feature_maps(_rand(1, 2, 12, 12), _rand(3, 2, 3, 3),
                                                       channel=1)}.items():
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
