"""The specialised convolution paths (1x1 on strided views, depthwise by stride phases, row
blocks, column-shifted rows) against the reference simulation / torch, on shapes that reach them.

Each path normally starts above a size threshold; here the thresholds are lowered so that
small random shapes (odd sizes, 1x1 and 2x2 outputs, batch 1 and several) take it, and the
parallel split (blocks of samples x channels / rows) is forced with two threads.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_kernels import _assert_matches_reference  # tests/ is on sys.path (rootdir mode)

from mobiprox_lab import kernels, knobs
from mobiprox_lab.kernels import _blas, _calibrate, _conv, _threads

reference = pytest.importorskip("mobiprox_lab.reference")

FP32_KNOBS = [k for k in knobs.CONV_KNOB_IDS if not knobs.get(k).is_fp16]
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


@contextlib.contextmanager
def forced_paths(threads: int, **limits):
    """Lower the path thresholds of ``_conv`` (and parallelise tiny calls) inside the block;
    the machine-calibrated ones (``kernels.path_thresholds``) start from their built-in
    values, and no per-shape choice (``kernels.path_choices``) is in force, whatever a
    timing earlier in the process put in force."""
    before = kernels.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_conv, "MIN_PARALLEL_FLOPS", 0)
        mp.setattr(_conv, "FILL_PARALLEL_MIN_OUTPUTS", 0)
        for name, value in _calibrate.BUILT_IN.items():
            mp.setattr(_conv, _calibrate.PATH_THRESHOLDS[name], value)
        mp.setattr(_conv, "POINTWISE_ROW_GEMM_CHOICES", {})
        mp.setattr(_conv, "REGISTER_TILES", True)  # correct on any CPU, so tested on any
        for name, value in limits.items():
            mp.setattr(_conv, name, value)
        kernels.set_num_threads(threads)
        try:
            yield
        finally:
            kernels.set_num_threads(before)


def spy_row_gemms(mp) -> list:
    """Monkeypatch (``mp``) ``_conv.pointwise_gathered`` to record its ``row_gemms``
    argument, one entry a call; returns the list it fills."""
    seen = []
    real = _conv.pointwise_gathered

    def spy(*args):
        seen.append(args[-1])
        return real(*args)

    mp.setattr(_conv, "pointwise_gathered", spy)
    return seen


@contextlib.contextmanager
def _spy(name: str):
    """Count the calls of ``_conv.<name>`` inside the block."""
    calls = []
    real = getattr(_conv, name)

    def wrapper(*args):
        calls.append(1)
        return real(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_conv, name, wrapper)
        yield calls


@contextlib.contextmanager
def kernel_setting(getter, setter, value):
    """``setter(value)`` (a ``kernels.set_*``) inside the block, ``getter()``'s value before
    it put back after."""
    before = getter()
    setter(value)
    try:
        yield
    finally:
        setter(before)


@contextlib.contextmanager
def _routes():
    """The paths (``_conv._route``: path, pointwise kind) of the ``conv2d`` calls inside the
    block, whether a call then runs by tasks or, untimed on one thread, by one kernel call
    (``kernels.set_direct_calls``), which the ``_run_*`` functions do not see."""
    seen = []
    real = _conv._route

    def spy(*args):
        seen.append(real(*args))
        return seen[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_conv, "_route", spy)
        yield seen


def _data(seed, n, c, h, w, k, cg, kh, kw, bias):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = rng.standard_normal((k, cg, kh, kw), dtype=np.float32)
    return x, wt, (rng.standard_normal(k, dtype=np.float32) if bias else None)


def assert_close(got, want):
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max()))


# ---- sgemm on strided views ----------------------------------------------------------

@pytest.mark.parametrize("binding", ["sgemm", "sgemm_numba"])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_sgemm_on_offset_strided_views(beta, binding):
    """The GEMM the kernels call (NumPy's OpenBLAS where bundled) and the fallback through
    Numba's ``np.dot`` BLAS compute the same thing on offset, strided sub-matrices."""
    gemm = getattr(_blas, binding)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 9), dtype=np.float32)
    b = rng.standard_normal((20, 30), dtype=np.float32)
    c = rng.standard_normal((10, 40), dtype=np.float32)
    want = c.copy()
    want[1:5, 2:10] = beta * want[1:5, 2:10] + a[2:6, 1:6] @ b[3:13:2, 4:12]
    # A = a[2:6, 1:6] (lda 9), B = every second row of b from row 3 (ldb 60), C = c[1:5, 2:10]
    gemm(a.reshape(-1)[2 * 9 + 1:], 9, b.reshape(-1)[3 * 30 + 4:], 60,
         c.reshape(-1)[40 + 2:], 40, 4, 8, 5, np.float32(beta))
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)
    before = c.copy()  # k = 0: C = beta * C, as BLAS defines it
    gemm(a.reshape(-1), 9, b.reshape(-1), 30, c.reshape(-1)[40 + 2:], 40, 4, 8, 0,
         np.float32(beta))
    want = before.copy()
    want[1:5, 2:10] *= beta
    np.testing.assert_array_equal(c, want)


def test_sgemm_uses_numpys_bundled_openblas_when_there_is_one():
    path = _blas.numpy_openblas_path()
    assert (_blas.sgemm is _blas.sgemm_numba) == (path is None)
    assert kernels.blas_library() == (path.name if path else "numba np.dot BLAS (SciPy)")


# ---- 1x1 convolutions ------------------------------------------------------------------

@SETTINGS
@given(n=st.integers(1, 4), c=st.integers(1, 9), k=st.integers(1, 20), h=st.integers(1, 11),
       w=st.integers(1, 11), kid=st.sampled_from(FP32_KNOBS), bias=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_pointwise_paths_match_reference(n, c, k, h, w, kid, bias, threads, seed):
    assume(knobs.applicable(kid, "conv", (h, w)))
    x, wt, b = _data(seed, n, c, h, w, k, c, 1, 1, bias)
    with forced_paths(threads, POINTWISE_MIN_PLANE=1):
        got = kernels.conv2d(x, wt, b, knob=kid)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))


@pytest.mark.parametrize("kid,path", [(11, "pointwise_dense_tiles"),
                                      (231, "pointwise_dense_tiles"),
                                      (232, "pointwise_dense_tiles"),
                                      (235, "pointwise_sampled"),
                                      (123, "pointwise_s2_tiles_whole"),
                                      (122, "pointwise_s2_tiles_whole"),
                                      (129, "pointwise_gathered"), (126, "pointwise_gathered")])
def test_pointwise_layer_takes_its_path(kid, path):
    """A HAR-sized pointwise layer (8x8 maps) runs on the strided-view kernels (the row /
    column tiles, on one thread, as one call over the whole output: direct calls)."""
    x, wt, b = _data(1, 3, 16, 8, 8, 24, 16, 1, 1, True)
    with _spy(path) as calls, forced_paths(1):
        got = kernels.conv2d(x, wt, b, knob=kid)
    assert calls
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))


@pytest.mark.parametrize("c,k,on_views", [(128, 256, True), (256, 256, True),
                                          (256, 512, False), (32, 48, True)])
@pytest.mark.parametrize("kid", [11, 123, 121, 231])
def test_small_pointwise_maps_take_the_views_while_weights_fit(c, k, on_views, kid):
    """4x4 maps: the strided-view kernels up to POINTWISE_SMALL_MAX_WEIGHT_BYTES of weights
    (HAR width 0.5's pw6, pw7), im2col + GEMM above; 2x2 maps never. (Register tiles off:
    with them, exact and sampled calls of two samples or more take plane tiles.)"""
    x, wt, b = _data(2, 3, c, 4, 4, k, c, 1, 1, True)
    with _routes() as paths, forced_paths(2, REGISTER_TILES=False):
        got = kernels.conv2d(x, wt, b, knob=kid)
        kernels.conv2d(x[:, :, :2, :2], wt, b)
    assert [path for path, _ in paths].count("pointwise") == int(on_views)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))


@SETTINGS
@given(n=st.integers(2, 5), c=st.integers(1, 9), k=st.integers(1, 20), h=st.integers(1, 5),
       w=st.integers(1, 5), kid=st.sampled_from(FP32_KNOBS), bias=st.booleans(),
       columns=st.sampled_from([1, 7, 512]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_batched_pointwise_matches_reference(n, c, k, h, w, kid, bias, columns, threads, seed):
    """The packed whole-batch GEMM, with blocks of one sample, a few, or all of them."""
    assume(knobs.applicable(kid, "conv", (h, w)))
    x, wt, b = _data(seed, n, c, h, w, k, c, 1, 1, bias)
    with forced_paths(threads, POINTWISE_MIN_PLANE=10**9, POINTWISE_SMALL_MIN_PLANE=10**9,
                      REGISTER_TILES=False,
                      POINTWISE_BATCHED_COLUMNS=columns), _spy("_run_batched_pointwise") as calls:
        got = kernels.conv2d(x, wt, b, knob=kid)
    assert calls
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))


@pytest.mark.parametrize("n,kid,batched", [(3, 11, True), (3, 231, True), (3, 234, True),
                                           (3, 121, True), (3, 124, True), (1, 11, False),
                                           (1, 121, False)])
def test_two_by_two_pointwise_layers_take_the_batched_gemm(n, kid, batched):
    """HAR's 2x2 pointwise layers: one packed GEMM for batches of two or more (exact,
    sampled, perforated); one sample stays on reduced im2col + GEMM."""
    x, wt, b = _data(3, n, 64, 2, 2, 96, 64, 1, 1, True)
    with _spy("_run_batched_pointwise") as calls:
        got = kernels.conv2d(x, wt, b, knob=kid)
    assert len(calls) == int(batched)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))


ROW_KNOBS = [k for k in FP32_KNOBS
             if knobs.get(k).technique == "perforation" and knobs.get(k).axis == "row"]


@SETTINGS
@given(threads=st.sampled_from([2, 3]), data=st.data(), c=st.integers(1, 6),
       k=st.integers(1, 20), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 2),
       sw=st.integers(1, 2), ho=st.integers(2, 12), wo=st.integers(1, 9),
       kid=st.sampled_from(ROW_KNOBS), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_row_perforation_of_few_samples_matches_reference(threads, data, c, k, kh, kw, sh, sw,
                                                         ho, wo, kid, bias, seed):
    """Fewer samples than threads: kept-row blocks, then the fill by channel blocks."""
    assume(knobs.applicable(kid, "conv", (ho, wo)))
    n = data.draw(st.integers(1, threads - 1))
    ph, pw = data.draw(st.integers(0, (kh - 1) // 2)), data.draw(st.integers(0, (kw - 1) // 2))
    h, w = (ho - 1) * sh + kh - 2 * ph, (wo - 1) * sw + kw - 2 * pw
    x, wt, b = _data(seed, n, c, h, w, k, c, kh, kw, bias)
    args = {"stride": (sh, sw), "padding": (ph, pw), "knob": kid}
    with forced_paths(threads, POINTWISE_MIN_PLANE=10**9, POINTWISE_SMALL_MIN_PLANE=10**9,
                      REGISTER_TILES=False,
                      POINTWISE_BATCHED_MIN_SAMPLES=10**9, ROWBLOCK_MIN_PLANE=10**9), \
            _spy("_run_kept_rows") as calls:
        got = kernels.conv2d(x, wt, b, **args)
        fused = kernels.conv2d(x, wt, b, relu=True, **args)
    assert len(calls) == 2
    assert_close(got, reference.conv2d(x, wt, b, **args))
    np.testing.assert_array_equal(fused, np.maximum(got, 0))


def test_kws_first_layer_at_batch_1_spreads_its_kept_rows():
    x, wt, b = _data(8, 1, 1, 101, 40, 64, 1, 20, 8, True)
    with forced_paths(2), _spy("_run_kept_rows") as calls:
        got = kernels.conv2d(x, wt, b, knob=123)
    assert calls
    assert_close(got, reference.conv2d(x, wt, b, knob=123))


# ---- depthwise -------------------------------------------------------------------------

def _input_geometry(data, kh, kw, sh, sw, ho, wo) -> tuple[int, int, int, int]:
    """(ph, pw, h, w): padding below the kernel size and an input map that gives about
    ``ho`` x ``wo`` outputs (plus up to a stride - 1 of unused rows / columns)."""
    ph = data.draw(st.integers(0, kh - 1))
    pw = data.draw(st.integers(0, kw - 1))
    h = max(1, (ho - 1) * sh + kh - 2 * ph + data.draw(st.integers(0, sh - 1)))
    w = max(1, (wo - 1) * sw + kw - 2 * pw + data.draw(st.integers(0, sw - 1)))
    assume((h + 2 * ph - kh) // sh + 1 >= 1 and (w + 2 * pw - kw) // sw + 1 >= 1)
    return ph, pw, h, w


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(2, 6), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ho=st.integers(1, 9), wo=st.integers(1, 9),
       data=st.data(), bias=st.booleans(), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_depthwise_phases_match_torch(n, c, kh, kw, sh, sw, ho, wo, data, bias, threads, seed):
    ph, pw, h, w = _input_geometry(data, kh, kw, sh, sw, ho, wo)
    x, wt, b = _data(seed, n, c, h, w, c, 1, kh, kw, bias)
    with forced_paths(threads, DEPTHWISE_NHWC_MAX_PLANE=0), _routes() as paths:
        got = kernels.conv2d(x, wt, b, stride=(sh, sw), padding=(ph, pw), groups=c)
    assert paths == [("depthwise", None)]
    with torch.no_grad():
        want = F.conv2d(torch.from_numpy(x), torch.from_numpy(wt),
                        None if b is None else torch.from_numpy(b), stride=(sh, sw),
                        padding=(ph, pw), groups=c).numpy()
    assert_close(got, want)


@SETTINGS
@given(n=st.integers(1, 3), c=st.sampled_from([2, 3, 64, 70, 130]), kh=st.integers(1, 5),
       kw=st.integers(1, 5), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ho=st.integers(1, 6), wo=st.integers(1, 6), data=st.data(), bias=st.booleans(),
       kid=st.sampled_from([11, 12]), relu=st.booleans(), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_depthwise_nhwc_matches_reference(n, c, kh, kw, sh, sw, ho, wo, data, bias, kid, relu,
                                          threads, seed):
    """The channel-vectorised path on any map (forced): padding taps skipped, both
    transposes in whole 8 x 8 tiles and edges (64 channels: tiles only; 70 and 130: an
    edge too; 2 and 3: edges only; any number of pixels), fp16 and fused ReLU."""
    ph, pw, h, w = _input_geometry(data, kh, kw, sh, sw, ho, wo)
    x, wt, b = _data(seed, n, c, h, w, c, 1, kh, kw, bias)
    kw_args = {"stride": (sh, sw), "padding": (ph, pw), "groups": c, "knob": kid}
    with forced_paths(threads, DEPTHWISE_NHWC_MAX_PLANE=1 << 30), _routes() as paths:
        got = kernels.conv2d(x, wt, b, relu=relu, **kw_args)
    assert paths == [("direct", None)]
    want = reference.conv2d(x, wt, b, **kw_args)
    if relu:
        want = np.maximum(want, np.float32(0.0))
    if kid == 12:  # both sides round to half; accumulation order may move one half ulp
        _assert_matches_reference(got, want, x, wt, fp16=True)
    else:
        assert_close(got, want)


def test_depthwise_har_layer_matches_torch():
    x, wt, b = _data(2, 2, 32, 16, 16, 32, 1, 3, 3, True)
    for stride in (1, 2):
        got = kernels.conv2d(x, wt, b, stride=stride, padding=1, groups=32)
        want = F.conv2d(torch.from_numpy(x), torch.from_numpy(wt), torch.from_numpy(b),
                        stride=stride, padding=1, groups=32).numpy()
        assert_close(got, want)


# ---- row blocks and column-shifted rows (regular convolutions) ---------------------------

@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 5), k=st.integers(1, 6), kh=st.integers(1, 4),
       kw=st.integers(1, 4), sh=st.integers(1, 2), sw=st.integers(1, 2), ho=st.integers(1, 9),
       wo=st.integers(1, 9), data=st.data(), bias=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_row_blocks_match_reference(n, c, k, kh, kw, sh, sw, ho, wo, data, bias, threads,
                                    seed):
    ph = data.draw(st.integers(0, kh - 1))
    pw = data.draw(st.integers(0, kw - 1))
    h = max(1, (ho - 1) * sh + kh - 2 * ph)
    w = max(1, (wo - 1) * sw + kw - 2 * pw)
    kid = data.draw(st.sampled_from([11, 231, 232, 233, 235, 236, 239]))
    assume(knobs.applicable(kid, "conv", (ho, wo)))
    x, wt, b = _data(seed, n, c, h, w, k, c, kh, kw, bias)
    # a few hundred bytes of im2col per block: several blocks per sample
    with forced_paths(threads, ROWBLOCK_MIN_PLANE=1, WIDE_MIN_REDUCTION=10**9,
                 POINTWISE_MIN_PLANE=10**9, POINTWISE_SMALL_MIN_PLANE=10**9, REGISTER_TILES=False,
                 POINTWISE_BATCHED_MIN_SAMPLES=10**9, CHUNK_BYTES=4 * c * kh * kw * 2 * wo):
        got = kernels.conv2d(x, wt, b, stride=(sh, sw), padding=(ph, pw), knob=kid)
    assert_close(got, reference.conv2d(x, wt, b, stride=(sh, sw), padding=(ph, pw), knob=kid))


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 5), k=st.integers(1, 6), kh=st.integers(2, 5),
       kw=st.integers(1, 6), ho=st.integers(1, 9), wo=st.integers(1, 9),
       kid=st.sampled_from([11, 231, 232, 236, 237, 238, 239]), bias=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_wide_rows_match_reference(n, c, k, kh, kw, ho, wo, kid, bias, threads, seed):
    kn = knobs.get(kid)
    assume(kn.technique == "exact" or kw % kn.stride == 0)
    x, wt, b = _data(seed, n, c, ho + kh - 1, wo + kw - 1, k, c, kh, kw, bias)
    with forced_paths(threads, WIDE_MIN_REDUCTION=1, ROWBLOCK_MIN_PLANE=1), \
            _spy("_run_wide") as calls:
        got = kernels.conv2d(x, wt, b, knob=kid)
    assert calls
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))


PERF_S2_KNOBS = [k for k in FP32_KNOBS
                 if knobs.get(k).technique == "perforation" and knobs.get(k).stride == 2]


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 5), k=st.integers(1, 40), kh=st.integers(2, 5),
       kw=st.integers(1, 6), ho=st.integers(1, 9), wo=st.integers(1, 9),
       kid=st.sampled_from(PERF_S2_KNOBS), bias=st.booleans(), relu=st.booleans(),
       threads=st.sampled_from([1, 2]), split=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_shifted_rows_under_perforation_match_reference(n, c, k, kh, kw, ho, wo, kid, bias,
                                                        relu, threads, split, seed):
    """Stride-2 row / column perforation on column-shifted rows (kept columns only, rows
    split by parity), a task per sample, or (``split``, two threads) per block of a
    sample's kept rows into a shared result, then the fill; by the Python task loop (whose
    blocks a spy counts) and as a loop job (two threads: ``_loops.shifted_loop``)."""
    assume(knobs.applicable(kid, "conv", (ho, wo)))
    x, wt, b = _data(seed, n, c, ho + kh - 1, wo + kw - 1, k, c, kh, kw, bias)
    blocks = []
    real = _conv.shifted_perforated_conv

    def spy(*args):
        blocks.append(args[7:9])  # kept rows m0, m1
        return real(*args)

    paths = {"WIDE_MIN_REDUCTION": 1, "ROWBLOCK_MIN_PLANE": 1,
             "WIDE_ROW_SPLIT_SAMPLES": 10**9 if split else 0}
    with forced_paths(threads, LOOP_JOBS=False, shifted_perforated_conv=spy, **paths), \
            _spy("_run_shifted_perforated") as calls:
        by_tasks = kernels.conv2d(x, wt, b, knob=kid, relu=relu)
    assert calls
    kept = max(m1 for _, m1 in blocks)
    assert (len(blocks) > n) == (split and threads == 2 and kept > 1)
    with forced_paths(threads, **paths), _spy("_run_shifted_perforated") as calls:
        got = kernels.conv2d(x, wt, b, knob=kid, relu=relu)
    assert calls
    want = reference.conv2d(x, wt, b, knob=kid)
    for result in (by_tasks, got):
        assert_close(result, np.maximum(want, 0) if relu else want)


@pytest.mark.parametrize("kid", [121, 123])
@pytest.mark.parametrize("fill_min,fill_workers", [(None, 1), (0, 2)])
def test_small_fill_from_kept_outputs_runs_on_the_calling_thread(kid, fill_min, fill_workers,
                                                                 monkeypatch):
    """KWS conv2 at batch 1 (26,624 outputs): its kept rows on both threads, the fill on the
    calling thread alone (below ``FILL_PARALLEL_MIN_OUTPUTS``); both threads without the
    threshold. The fill calls no BLAS and sets no BLAS limit either way."""
    x, wt, b = _data(6, 1, 64, 41, 16, 64, 64, 10, 4, True)
    workers, limits = [], []
    real, real_loop, real_limit = _conv.run_tasks, _conv._loop_job, _threads.single_threaded_blas

    def spy(task, n_tasks, n_workers, *args):
        workers.append(n_workers)
        return real(task, n_tasks, n_workers, *args)

    def loop_spy(loop, args, n_workers, **kwargs):
        workers.append(n_workers)
        return real_loop(loop, args, n_workers, **kwargs)

    def counted_limit():
        limits.append(1)
        return real_limit()

    monkeypatch.setattr(_conv, "run_tasks", spy)
    monkeypatch.setattr(_conv, "_loop_job", loop_spy)
    monkeypatch.setattr(_threads, "single_threaded_blas", counted_limit)
    if fill_min is not None:
        monkeypatch.setattr(_conv, "FILL_PARALLEL_MIN_OUTPUTS", fill_min)
    before = kernels.get_num_threads()
    kernels.set_num_threads(2)
    try:
        got = kernels.conv2d(x, wt, b, knob=kid, relu=True)
    finally:
        kernels.set_num_threads(before)
    assert workers == [2, fill_workers]
    assert len(limits) == 1  # the kept rows' phase
    assert_close(got, np.maximum(reference.conv2d(x, wt, b, knob=kid), 0))


@pytest.mark.parametrize("kid,shifted", [(121, True), (122, True), (123, True), (124, True),
                                         (125, False), (131, False), (11, False)])
def test_kws_second_layer_perforated_at_stride_2_takes_the_shifted_rows(kid, shifted):
    x, wt, b = _data(5, 1, 64, 41, 16, 64, 64, 10, 4, True)
    with _spy("_run_shifted_perforated") as calls:
        got = kernels.conv2d(x, wt, b, knob=kid)
    assert len(calls) == int(shifted)
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))


def test_kws_second_layer_takes_the_shifted_rows_at_any_batch_size():
    """Exact and column-pattern sampling, one sample or several: column-shifted rows."""
    x, wt, b = _data(3, 4, 64, 41, 16, 8, 64, 10, 4, True)
    for kid in (11, 231, 236):
        with _spy("_run_wide") as calls, _spy("_run_rowblocks") as rowblocks:
            got = kernels.conv2d(x, wt, b, knob=kid)
            one = kernels.conv2d(x[:1], wt, b, knob=kid)
        assert len(calls) == 2 and not rowblocks
        assert_close(got, reference.conv2d(x, wt, b, knob=kid))
        assert_close(one, got[:1])


@pytest.mark.parametrize("limits", [{"POINTWISE_MIN_PLANE": 1},
                                    {"ROWBLOCK_MIN_PLANE": 1, "POINTWISE_MIN_PLANE": 10**9,
                                     "POINTWISE_SMALL_MIN_PLANE": 10**9,
                                     "POINTWISE_BATCHED_MIN_SAMPLES": 10**9},
                                    {"POINTWISE_MIN_PLANE": 10**9,
                                     "POINTWISE_SMALL_MIN_PLANE": 10**9}])
def test_sampling_that_keeps_nothing_gives_the_bias(limits):
    """One input channel, 1x1 kernel, sampling offset 0 skips it: the conv is 0 (+ bias)."""
    x, wt, b = _data(4, 2, 1, 9, 9, 3, 1, 1, 1, True)
    with forced_paths(1, **limits):
        got = kernels.conv2d(x, wt, b, knob=231)
    assert_close(got, reference.conv2d(x, wt, b, knob=231))
    np.testing.assert_array_equal(got, np.broadcast_to(b[None, :, None, None], got.shape))


# ---- fused ReLU ------------------------------------------------------------------------

# (x shape, w shape, stride, padding, groups, knob, thresholds) reaching every path
RELU_CASES = [
    ((3, 6, 9, 9), (5, 6, 1, 1), 1, 0, 1, 11, {"POINTWISE_MIN_PLANE": 1}),
    ((3, 6, 9, 9), (5, 6, 1, 1), 1, 0, 1, 233, {"POINTWISE_MIN_PLANE": 1}),
    ((3, 6, 9, 9), (5, 6, 1, 1), 1, 0, 1, 124, {"POINTWISE_MIN_PLANE": 1}),
    ((3, 6, 9, 9), (5, 6, 1, 1), 1, 0, 1, 123, {"POINTWISE_MIN_PLANE": 1,
                                                "POINTWISE_ROW_GEMM_MIN_MACS": 0}),  # row GEMMs
    ((3, 6, 8, 8), (5, 6, 1, 1), 1, 0, 1, 121, {"POINTWISE_MIN_PLANE": 1}),  # columns s2
    ((3, 6, 9, 9), (5, 6, 1, 1), 1, 0, 1, 121, {"POINTWISE_MIN_PLANE": 1}),  # gather, scatter
    ((2, 6, 9, 9), (6, 1, 3, 3), 2, 1, 6, 11, {"DEPTHWISE_NHWC_MAX_PLANE": 0}),
    ((2, 6, 5, 5), (6, 1, 3, 3), 1, 1, 6, 11, {}),  # small maps: NHWC depthwise
    ((2, 6, 5, 5), (6, 1, 3, 3), 1, 1, 6, 12, {}),  # fp16: direct loop
    ((2, 3, 9, 8), (4, 3, 3, 3), 1, 1, 1, 11, {"ROWBLOCK_MIN_PLANE": 1, "CHUNK_BYTES": 300}),
    ((2, 3, 9, 8), (4, 3, 3, 2), 1, 0, 1, 232, {"WIDE_MIN_REDUCTION": 1,
                                                "ROWBLOCK_MIN_PLANE": 1}),
    ((2, 3, 9, 8), (4, 3, 3, 3), 1, 1, 1, 121, {}),  # im2col + GEMM + scatter
    ((2, 3, 9, 8), (4, 3, 3, 2), 1, 0, 1, 123, {"WIDE_MIN_REDUCTION": 1,
                                                "ROWBLOCK_MIN_PLANE": 1}),  # shifted, rows
    ((2, 4, 9, 8), (4, 2, 3, 3), 1, 1, 2, 11, {"DIRECT_MAX_GROUP_WIDTH": 1}),  # per group
    ((2, 6, 20, 20), (5, 6, 1, 1), 1, 0, 1, 12, {}),  # fp16 1x1: per-sample GEMM
    ((1, 3, 9, 8), (4, 3, 3, 3), 1, 1, 1, 123, {}),  # row perforation, batch 1: kept rows
    ((3, 6, 2, 2), (5, 6, 1, 1), 1, 0, 1, 11, {}),  # 2x2 1x1: one packed GEMM
    ((3, 6, 3, 3), (5, 6, 1, 1), 1, 0, 1, 233, {}),  # ... sampled
    ((3, 6, 2, 2), (5, 6, 1, 1), 1, 0, 1, 121, {}),  # ... perforated
    ((2, 6, 9, 9), (5, 6, 1, 1), 1, 0, 1, 11, {}),  # 1x1, 9x9: GEMM, bias + ReLU in one pass
    ((2, 6, 9, 9), (5, 6, 1, 1), 1, 0, 1, 231, {}),  # ... sampled
    ((2, 6, 9, 9), (5, 6, 1, 1), 1, 0, 1, 123, {}),  # ... rows s2, ReLU in the scatter
    ((2, 6, 9, 9), (5, 6, 1, 1), 1, 0, 1, 128, {}),  # ... rows s3
    ((2, 6, 9, 9), (5, 6, 1, 1), 1, 0, 1, 122, {}),  # ... columns s2, odd width
    ((2, 6, 8, 8), (5, 6, 1, 1), 1, 0, 1, 121, {}),  # ... columns s2, even: one loop a sample
    ((3, 6, 4, 4), (5, 6, 1, 1), 1, 0, 1, 124, {}),  # ... 4x4 planes: one loop a sample
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", RELU_CASES, ids=str)
def test_fused_relu_is_relu_of_the_output(case, threads):
    xs, ws, stride, padding, groups, kid, limits = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal(xs, dtype=np.float32)
    x[0, 0, 0, :2] = np.nan
    wt = rng.standard_normal(ws, dtype=np.float32)
    b = rng.standard_normal(ws[0], dtype=np.float32)
    args = {"stride": stride, "padding": padding, "groups": groups, "knob": kid}
    with forced_paths(threads, **limits):
        plain = kernels.conv2d(x, wt, b, **args)
        fused = kernels.conv2d(x, wt, b, relu=True, **args)
        _, phases = kernels.conv2d_breakdown(x, wt, b, relu=True, **args)
    np.testing.assert_array_equal(fused, np.maximum(plain, 0))
    assert phases["interp"] > 0


@pytest.mark.parametrize("shape,block", [
    ((3, 5, 17, 19), (0, 3, 1, 4, 0, 17 * 19)),  # whole planes: runs of 3 x 323 values
    ((3, 5, 17, 19), (1, 2, 0, 5, 7, 300)),  # part of each plane
    ((2, 4, 1, 1), (0, 2, 0, 4, 0, 1)),  # one value a plane
    ((2, 3, 30, 30), (0, 2, 1, 3, 5, 5)),  # an empty range: nothing written
])
def test_relu_block_is_bitwise_relu_of_its_block_only(shape, block):
    """Runs longer than the scratch (``RELU_CHUNK``), NaN of both signs and -0.0 (kept, as
    ``torch.relu`` keeps them), nothing outside the block touched."""
    from mobiprox_lab.kernels import _scatter

    rng = np.random.default_rng(3)
    out = rng.standard_normal(shape, dtype=np.float32)
    flat = out.reshape(-1)
    flat[::7] = -0.0
    flat[3::11] = np.nan
    flat[5::13] = -np.float32(np.nan)
    n0, n1, k0, k1, j0, j1 = block
    want = out.copy().reshape(shape[0], shape[1], -1)
    region = want[n0:n1, k0:k1, j0:j1]
    want[n0:n1, k0:k1, j0:j1] = np.where(region < 0, np.float32(0.0), region)
    _scatter.relu_block(out, *block)
    np.testing.assert_array_equal(out.reshape(-1).view(np.int32), want.reshape(-1).view(np.int32))


def test_relu_must_be_a_bool():
    with pytest.raises(ValueError, match="relu"):
        kernels.conv2d(np.zeros((1, 1, 3, 3), np.float32), np.zeros((1, 1, 1, 1), np.float32),
                       relu=1)
