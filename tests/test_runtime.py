"""ApproxModel: exact vs PyTorch, numba vs reference, switching, validation, ops table."""

from __future__ import annotations

import timeit

import numpy as np
import pytest
import torch
from torch import nn

from mobiprox_lab import knobs
from mobiprox_lab.models import HarMobileNet, KwsCNN
from mobiprox_lab.runtime import ApproxModel

HAR_SHAPE = (3, 32, 32)
KWS_SHAPE = (1, 101, 40)


def _perturb_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                c = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.weight.copy_(0.7 + 0.6 * torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def har():
    torch.manual_seed(0)
    module = _perturb_bn(HarMobileNet(7, width=0.25))
    return module, ApproxModel(module, HAR_SHAPE)


@pytest.fixture(scope="module")
def kws():
    torch.manual_seed(1)
    module = _perturb_bn(KwsCNN(12))
    return module, ApproxModel(module, KWS_SHAPE)


def _x(shape, n, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def _torch(module, x) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def _close(a, b, rel) -> None:
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * scale)


def _random_config(am: ApproxModel, seed: int, fp32_only: bool = False) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    table = am.ops.set_index("name")
    cfg = {}
    for name in am.tunable_ops:
        ids = [k for k in table.loc[name, "knobs"]
               if not (fp32_only and knobs.KNOBS[k].is_fp16)]
        cfg[name] = int(rng.choice(ids))
    return cfg


# ------------------------------------------------------------------------------ exactness

@pytest.mark.parametrize("which", ["har", "kws"])
@pytest.mark.parametrize("n", [1, 64])
def test_exact_matches_pytorch(which, n, har, kws):
    module, am = har if which == "har" else kws
    x = _x(am.input_shape, n, seed=n)
    ref = _torch(module, x)
    for backend in ("numba", "reference"):
        out = am.run(x, backend=backend)
        assert out.dtype == np.float32 and out.shape == (n, am.n_classes)
        _close(out, ref, 1e-4)
    np.testing.assert_array_equal(am(x), am.run(x))


@pytest.mark.parametrize("which", ["har", "kws"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numba_matches_reference_fp32(which, seed, har, kws):
    _, am = har if which == "har" else kws
    cfg = _random_config(am, seed, fp32_only=True)
    x = _x(am.input_shape, 3, seed=seed)
    _close(am.run(x, cfg), am.run(x, cfg, backend="reference"), 1e-4)


@pytest.mark.parametrize("which", ["har", "kws"])
@pytest.mark.parametrize("seed", [10, 11])
def test_numba_matches_reference_fp16(which, seed, har, kws):
    _, am = har if which == "har" else kws
    cfg = _random_config(am, seed)
    assert any(knobs.KNOBS[k].is_fp16 for k in cfg.values())
    x = _x(am.input_shape, 3, seed=seed)
    # fp16 rounds every affected tensor to ~3 significant digits; 1-ulp flips between the two
    # backends' fp32 accumulations propagate, so allow a few half-precision ulps of the logits
    _close(am.run(x, cfg), am.run(x, cfg, backend="reference"), 2e-2)


def test_approximation_changes_output(kws):
    module, am = kws
    x = _x(KWS_SHAPE, 2)
    exact = am.run(x)
    assert not np.allclose(am.run(x, {"conv2": 123}), exact, atol=1e-6)
    assert not np.allclose(am.run(x, {"conv1": 231}), exact, atol=1e-6)


# ------------------------------------------------------------------------------ switching

def test_switching_matches_fresh_runs(kws):
    module, am = kws
    x = _x(KWS_SHAPE, 2, seed=5)
    a, b = _random_config(am, 20, fp32_only=True), _random_config(am, 21)
    fresh = ApproxModel(module, KWS_SHAPE)
    fresh.set_config(a)
    want_a = fresh(x)
    want_b = ApproxModel(module, KWS_SHAPE).run(x, b)
    am.set_config(a)
    np.testing.assert_array_equal(am(x), want_a)
    am.set_config(b)
    np.testing.assert_array_equal(am(x), want_b)
    vec = am.prepare_config(a)
    am.set_config(vec)
    np.testing.assert_array_equal(am(x), want_a)
    assert am.config == am.validate_config(a)
    am.set_config(None)
    assert set(am.config.values()) == {11}
    np.testing.assert_array_equal(am.run(x, b), want_b)  # run(config) leaves current alone
    assert set(am.config.values()) == {11}


def test_switch_cost_is_microseconds(har):
    _, am = har
    a = am.prepare_config(_random_config(am, 3))
    b = am.prepare_config(_random_config(am, 4))
    n = 2000
    t = timeit.timeit(lambda: (am.set_config(a), am.set_config(b)), number=n) / (2 * n)
    am.set_config(None)
    assert t < 50e-6, f"switching took {t * 1e6:.1f} us"


# ---------------------------------------------------------------------------- validation

def test_config_errors(har):
    _, am = har
    with pytest.raises(ValueError, match="unknown operator 'nope'"):
        am.validate_config({"nope": 11})
    with pytest.raises(ValueError, match=r"config\['features.1.pw'\]: unknown knob id 999"):
        am.validate_config({"features.1.pw": 999})
    with pytest.raises(ValueError, match=r"knob 121 .* not applicable to operator 'features.1.dw'"):
        am.run(_x(HAR_SHAPE, 1), {"features.1.dw": 121})
    with pytest.raises(ValueError, match="not applicable to operator 'classifier'"):
        am.set_config({"classifier": 231})
    with pytest.raises(ValueError, match="not applicable to operator 'flatten'"):
        am.set_config({"flatten": 12})
    with pytest.raises(ValueError, match="expected an int knob id"):
        am.set_config({"features.1.pw": "fast"})
    with pytest.raises(ValueError, match="config: expected a mapping"):
        am.set_config([11, 12])
    with pytest.raises(ValueError, match="backend"):
        am.run(_x(HAR_SHAPE, 1), backend="cuda")
    assert set(am.config.values()) == {11}


def test_perforation_inapplicable_on_1x1_output():
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 3)).eval()
    am = ApproxModel(net, (2, 3, 3))
    assert am.ops.loc[0, "out_shape"] == (4, 1, 1)
    with pytest.raises(ValueError, match=r"knob 123 \(perf row s2 o0 fp32\) is not applicable"):
        am.set_config({"0": 123})
    am.set_config({"0": 231})  # sampling is fine on a 1x1 output
    assert not any(knobs.KNOBS[k].technique == "perforation" for k in am.ops.loc[0, "knobs"])


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 3, 32, 32), np.float64), "x: expected dtype float32"),
    (np.zeros((2, 3, 32, 31), np.float32), r"x: expected shape \(N, 3, 32, 32\)"),
    (np.zeros((3, 32, 32), np.float32), r"x: expected shape \(N, 3, 32, 32\)"),
    (np.zeros((0, 3, 32, 32), np.float32), "N >= 1"),
    ([[1.0]], "x: expected a float32 numpy array"),
])
def test_bad_inputs(har, bad, match):
    _, am = har
    with pytest.raises(ValueError, match=match):
        am.run(bad)


def test_constructor_errors():
    with pytest.raises(ValueError, match="backend"):
        ApproxModel(KwsCNN(), KWS_SHAPE, backend="gpu")
    with pytest.raises(ValueError, match="input_shape"):
        ApproxModel(KwsCNN(), (1, 10, 10))
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    with pytest.raises(ValueError, match=r"operator '1' \(GELU\) is not supported"):
        ApproxModel(net, (1, 8, 8))
    with pytest.raises(ValueError, match="module: expected a torch nn.Module"):
        ApproxModel("model", (1, 8, 8))


# ------------------------------------------------------------------------------ ops table

def test_ops_table_kws(kws):
    _, am = kws
    ops = am.ops.set_index("name")
    assert list(am.ops.name) == ["conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2",
                                 "flatten", "classifier"]
    assert ops.loc["bn1", "folded"] and ops.loc["bn1", "fused_into"] == "conv1"
    assert ops.loc["bn2", "kind"] == "batchnorm" and ops.loc["bn2", "knobs"] == [11, 12]
    assert ops.loc["conv1", "flops"] == 64 * 1 * 20 * 8 * 82 * 33  # w.numel * Ho * Wo
    assert ops.loc["conv2", "flops"] == 64 * 64 * 10 * 4 * 32 * 13
    assert ops.loc["relu1", "flops"] == 64 * 82 * 33
    assert ops.loc["pool1", "flops"] == 4 * 64 * 41 * 16
    assert ops.loc["classifier", "flops"] == 64 * 32 * 13 * 12
    assert ops.loc["flatten", "flops"] == 0
    assert ops.loc["conv2", "in_shape"] == (64, 41, 16)
    assert ops.loc["conv2", "out_shape"] == (64, 32, 13)
    assert ops.loc["conv1", "knobs"] == knobs.applicable_knobs("conv", (82, 33))
    assert len(ops.loc["conv1", "knobs"]) == 56
    assert ops.loc["classifier", "knobs"] == [11, 12]
    assert ops.loc["relu1", "fused_into"] == "conv1"
    assert am.tunable_ops == ["conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2",
                              "classifier"]
    assert am.op_names("conv") == ["conv1", "conv2"]
    assert am.n_classes == 12


def test_kws_without_batchnorm_has_the_reference_operators():
    module = KwsCNN(12, batchnorm=False).eval()
    am = ApproxModel(module, KWS_SHAPE)
    assert list(am.ops.name) == ["conv1", "relu1", "pool1", "conv2", "relu2", "flatten",
                                 "classifier"]
    x = _x(KWS_SHAPE, 2)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(am.run(x, {}), expected, atol=1e-4, rtol=1e-4)


def test_ops_table_har(har):
    _, am = har
    ops = am.ops.set_index("name")
    assert am.ops.name.is_unique
    assert (am.ops.kind == "conv").sum() == 14 and (am.ops.kind == "group_conv").sum() == 13
    assert (am.ops.kind == "batchnorm").sum() == 27 and ops.folded.sum() == 27
    dw = ops.loc["features.1.dw"]
    assert dw.kind == "group_conv" and dw.knobs == [11, 12] and dw.layer_kind == "group_conv"
    assert dw.flops == 8 * 9 * 32 * 32
    assert ops.loc["features.1.dw_bn", "flops"] == 6 * 8 * 32 * 32
    assert ops.loc["features.1.dw_bn", "fused_into"] == "features.1.dw"
    last = ops.loc["features.13.pw"]  # 2x2 output: stride-3 offset-2 perforation skips nothing
    assert last.out_shape == (256, 2, 2)
    assert last.knobs == knobs.applicable_knobs("conv", (2, 2))
    assert 127 not in last.knobs and 121 in last.knobs
    assert ops.loc["pool", "flops"] == 4 * 256 and ops.loc["pool", "out_shape"] == (256, 1, 1)
    for row in am.ops.itertuples():
        assert row.knobs == [k for k in knobs.CONV_KNOB_IDS
                             if knobs.applicable(k, row.layer_kind, row.out_shape[1:] or None)
                             ] or row.kind == "flatten"
    assert am.tunable_ops == [n for n in am.ops.name if n != "flatten"]


def test_predict_proba(kws):
    _, am = kws
    x = _x(KWS_SHAPE, 5, seed=9)
    p = am.predict_proba(x, {"conv2": 232}, batch_size=2)
    assert p.shape == (5, 12) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    z = am.run(x, {"conv2": 232})
    np.testing.assert_allclose(p, torch.softmax(torch.from_numpy(z), 1).numpy(), atol=1e-6)


class _Residual(nn.Module):
    """A user CNN: input BN, functional relu, residual add, max/avg pools, torch.flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(2)
        self.conv1 = nn.Conv2d(2, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avg = nn.AvgPool2d(2)
        self.dropout = nn.Dropout(0.3)
        self.fc = nn.Linear(6 * 2 * 2, 4)

    def forward(self, x):
        x = self.bn0(x)
        y = torch.relu(self.conv1(x))
        x = torch.nn.functional.relu(self.bn2(self.conv2(y)) + y)
        x = self.avg(self.pool(x))
        return self.fc(self.dropout(torch.flatten(x, 1)))


def test_generic_fx_model():
    torch.manual_seed(3)
    net = _perturb_bn(_Residual())
    am = ApproxModel(net, (2, 8, 8))
    kinds = dict(zip(am.ops.name, am.ops.kind, strict=True))
    assert kinds["bn0"] == "batchnorm" and kinds["add"] == "add"
    assert not am.ops.set_index("name").loc["bn0", "folded"]
    assert am.ops.set_index("name").loc["bn2", "folded"]
    x = _x((2, 8, 8), 4)
    _close(am.run(x), _torch(net, x), 1e-5)
    _close(am.run(x, backend="reference"), _torch(net, x), 1e-5)
    cfg = {n: 12 for n in am.tunable_ops} | {"conv2": 233}
    _close(am.run(x, cfg), am.run(x, cfg, backend="reference"), 2e-2)


def test_pooling_kernel_path_matches_torch(monkeypatch):
    """Large pooling inputs run on kernels.pool2d: same logits as torch."""
    from mobiprox_lab.runtime import steps

    monkeypatch.setattr(steps, "POOL_KERNEL_MIN_SIZE", 0)
    torch.manual_seed(4)
    net = _perturb_bn(_Residual())
    am = ApproxModel(net, (2, 9, 9))
    x = _x((2, 9, 9), 3)
    _close(am.run(x), _torch(net, x), 1e-5)


class _GlobalPools(nn.Module):
    """Adaptive average pool to 2x2 (not global), then a max pool over the whole 2x2 map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 5, 3, padding=1)
        self.adaptive = nn.AdaptiveAvgPool2d(2)
        self.top = nn.MaxPool2d(2)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.top(self.adaptive(self.conv(x))), 1))


def test_global_and_adaptive_pools_match_torch(monkeypatch):
    """A pool over the whole map runs on kernels.global_pool2d, an adaptive one to 2x2 on
    strided slices; both give torch's logits."""
    from mobiprox_lab import kernels

    calls = []
    real = kernels.global_pool2d
    monkeypatch.setattr(kernels, "global_pool2d",
                        lambda x, mode: calls.append((x.shape, mode)) or real(x, mode))
    torch.manual_seed(6)
    net = _GlobalPools().eval()
    am = ApproxModel(net, (2, 6, 6))
    x = _x((2, 6, 6), 3)
    _close(am.run(x), _torch(net, x), 1e-5)
    assert ((3, 5, 2, 2), "max") in calls and all(m == "max" for _, m in calls)
    _close(am.run(x, backend="reference"), _torch(net, x), 1e-5)


def test_runtime_packs_each_knobs_weights_once(monkeypatch):
    """The numba backend hands the kernels read-only weights: a sampled configuration's
    weights are gathered when it first runs, not on every inference."""
    from mobiprox_lab.kernels import _conv

    torch.manual_seed(7)
    net = _GlobalPools().eval()
    am = ApproxModel(net, (2, 6, 6))
    x = _x((2, 6, 6), 2)
    cfg = {"conv": 262}  # 3x3 filter sampling
    gathers = []
    real = _conv.gather_columns
    monkeypatch.setattr(_conv, "gather_columns", lambda *a: gathers.append(1) or real(*a))
    first = am.run(x, cfg)
    packed_once = len(gathers)
    for _ in range(3):
        np.testing.assert_array_equal(am.run(x, cfg), first)
    assert packed_once >= 1 and len(gathers) == packed_once
    _close(first, am.run(x, cfg, backend="reference"), 1e-4)


def test_time_steps_with_a_cpu_clock():
    import time

    torch.manual_seed(5)
    net = _perturb_bn(_Residual())
    am = ApproxModel(net, (2, 8, 8))
    x = _x((2, 8, 8), 2)
    for clock in (time.perf_counter, time.thread_time):
        steps = am.time_steps(x, repeats=2, clock=clock)
        assert list(steps.columns) == ["step", "ops", "seconds"]
        assert (steps["seconds"] >= 0).all() and steps["seconds"].sum() > 0
        assert sum(len(ops) for ops in steps["ops"]) == len(am.ops)


@pytest.mark.parametrize("backend", ["numba", "reference"])
def test_partial_runs_match_run(backend):
    """run_prefix / advance / run_from give run's logits bit for bit, from every step, and
    run_from leaves the state it starts from intact (numba steps may work in place)."""
    torch.manual_seed(6)
    am = ApproxModel(_perturb_bn(_Residual()), (2, 8, 8))
    x = _x((2, 8, 8), 3)
    cfg = {n: 12 for n in am.tunable_ops} | {"conv2": 233}
    steps = am.step_ops()
    assert [op for ops in steps for op in ops] == list(am.ops.name)
    assert [ops[0] for ops in steps] == list(am.time_steps(x, repeats=1)["step"])
    want = am.run(x, cfg, backend=backend)
    state = am.run_prefix(x, 0, backend=backend)
    for s in range(len(steps) + 1):
        assert state.step == s
        for _ in range(2):  # twice from the same state
            np.testing.assert_array_equal(am.run_from(state, cfg), want)
        np.testing.assert_array_equal(am.run_from(am.run_prefix(x, s, cfg, backend=backend),
                                                  cfg), want)
        np.testing.assert_array_equal(am.run_from(am.run_prefix(x, s, backend=backend)),
                                      am.run(x, backend=backend))  # current config: exact
        if s < len(steps):
            assert am.advance(state, cfg) is state
    with pytest.raises(ValueError, match="steps: expected an int in"):
        am.advance(state, cfg)
    with pytest.raises(ValueError, match="state: expected a RunState"):
        am.run_from([x], cfg)


@pytest.mark.parametrize("backend", ["numba", "reference"])
def test_branch_continues_without_touching_its_parent(backend):
    """branch: a new state advanced from a shared prefix; the parent still gives its own
    configuration's logits afterwards (numba steps may work in place on their input)."""
    torch.manual_seed(7)
    am = ApproxModel(_perturb_bn(_Residual()), (2, 8, 8))
    x = _x((2, 8, 8), 3)
    cfg = {n: 12 for n in am.tunable_ops} | {"conv2": 233}
    parent = am.run_prefix(x, 1, cfg, backend=backend)
    child = am.branch(parent, None, steps=2)
    assert (parent.step, child.step) == (1, 3) and child is not parent
    np.testing.assert_array_equal(am.run_from(parent, cfg), am.run(x, cfg, backend=backend))
    np.testing.assert_array_equal(am.run_from(child, None),
                                  am.run_from(am.advance(am.run_prefix(x, 1, cfg,
                                                                       backend=backend),
                                                         None, steps=2), None))
    for s in range(len(am.step_ops())):  # a standalone ReLU runs in place on numba
        state = am.run_prefix(x, s, cfg, backend=backend)
        before = [np.array(v) if v is not None else None for v in state.values]
        am.branch(state, None)  # exact: no fp16 rounding copies the ReLU's input first
        for v, was in zip(state.values, before, strict=True):
            if was is not None:
                np.testing.assert_array_equal(np.asarray(v), was)
    with pytest.raises(ValueError, match="steps: expected an int in"):
        am.branch(parent, cfg, steps=len(am.step_ops()))
    with pytest.raises(ValueError, match="state: expected a RunState"):
        am.branch(x, cfg)


def test_named_tensors_cover_weights_and_bn_statistics():
    torch.manual_seed(7)
    net = _perturb_bn(_Residual())
    am = ApproxModel(net, (2, 8, 8))
    named = dict(am.named_tensors())
    assert torch.equal(named["conv1.w"], net.conv1.weight)
    assert torch.equal(named["bn2.bn.running_var"], net.bn2.running_var)
    assert "conv2.b" not in named and all(isinstance(t, torch.Tensor) for t in named.values())
