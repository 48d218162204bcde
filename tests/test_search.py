"""The search engine (own NSGA-II, per-generation checkpoints) and the exact additive front."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tuner import synthetic_problem  # the tests folder is on sys.path (pytest rootdir mode)

from mobiprox_lab import tuner
from mobiprox_lab.tuner import front as front_mod
from mobiprox_lab.tuner import nsga
from mobiprox_lab.tuner import search as search_mod
from mobiprox_lab.tuner import space as space_mod


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBIPROX_DATA", str(tmp_path / "data"))


# ------------------------------------------------------------------- the exact front


def brute_front(gains, costs, q0=0.0, c0=0.0, min_qos=None):
    """Every combination's (qos, cost), then the non-dominated distinct points."""
    pts = set()
    for combo in itertools.product(*[range(len(g)) for g in gains]):
        q = q0 + sum(g[c] for g, c in zip(gains, combo, strict=True))
        k = c0 + sum(cs[c] for cs, c in zip(costs, combo, strict=True))
        pts.add((q, k))
    pts = [p for p in pts if min_qos is None or p[0] >= min_qos]
    return sorted(p for p in pts
                  if not any(o[0] >= p[0] and o[1] <= p[1] and o != p for o in pts))


@st.composite
def additive_problems(draw):
    n_ops = draw(st.integers(1, 4))
    sizes = [draw(st.integers(1, 4)) for _ in range(n_ops)]
    ints = st.integers(-6, 6)
    gains = [[draw(ints) for _ in range(k)] for k in sizes]
    costs = [[draw(st.integers(0, 6)) for _ in range(k)] for k in sizes]
    min_qos = draw(st.none() | st.integers(-10, 10))
    return gains, costs, min_qos


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(additive_problems(), st.integers(-3, 3), st.integers(0, 3))
def test_exact_front_equals_brute_force(problem, q0, c0):
    gains, costs, min_qos = problem
    f = front_mod.exact_front(gains, costs, qos_offset=q0, cost_offset=c0, min_qos=min_qos)
    assert sorted(zip(f.qos.tolist(), f.cost.tolist(), strict=True)) == \
        brute_front(gains, costs, q0, c0, min_qos)
    assert np.all(np.diff(f.cost) > 0) and np.all(np.diff(f.qos) > 0)  # sorted, distinct
    for q, k, ch in zip(f.qos, f.cost, f.choice, strict=True):  # the back-pointers agree
        assert q == q0 + sum(g[c] for g, c in zip(gains, ch, strict=True))
        assert k == c0 + sum(cs[c] for cs, c in zip(costs, ch, strict=True))


def test_exact_front_float_problem_matches_brute_force():
    rng = np.random.default_rng(3)
    gains = [rng.normal(0, 1, k) for k in (5, 3, 4, 6, 2)]
    costs = [rng.uniform(0, 2, k) for k in (5, 3, 4, 6, 2)]
    f = front_mod.exact_front(gains, costs)
    ref = brute_front([g.tolist() for g in gains], [c.tolist() for c in costs])
    np.testing.assert_allclose(np.column_stack([f.qos, f.cost]), np.array(ref), atol=1e-9)


def brute_layers(points, depth):
    """Non-dominated sorting of distinct (qos, cost) points by hand: {point: layer}."""
    rest, out = set(points), {}
    for layer in range(depth):
        top = {p for p in rest
               if not any(o[0] >= p[0] and o[1] <= p[1] and o != p for o in rest)}
        out.update(dict.fromkeys(top, layer))
        rest -= top
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.integers(1, 4),
       st.integers(0, 2**31 - 1), st.booleans())
def test_exact_front_layers_equal_brute_force(sizes, depth, seed, with_min):
    """Continuous random terms (distinct sums): the first ``depth`` layers op by op are the
    first ``depth`` layers of non-dominated sorting of every combination."""
    rng = np.random.default_rng(seed)
    gains = [rng.normal(0, 1, k) for k in sizes]
    costs = [rng.uniform(0, 1, k) for k in sizes]
    min_qos = float(rng.normal(0, 1)) if with_min else None
    combos = list(itertools.product(*[range(k) for k in sizes]))
    pts = {}
    for combo in combos:
        q = sum(g[c] for g, c in zip(gains, combo, strict=True))
        k = sum(cs[c] for cs, c in zip(costs, combo, strict=True))
        if min_qos is None or q >= min_qos:
            pts[(round(q, 9), round(k, 9))] = combo
    want = brute_layers(list(pts), depth)
    f = front_mod.exact_front(gains, costs, min_qos=min_qos, depth=depth)
    got = {(round(q, 9), round(k, 9)): int(layer)
           for q, k, layer in zip(f.qos, f.cost, f.layer, strict=True)}
    assert got == want
    assert len(f) == len(got)  # one configuration per point
    order = np.lexsort((f.cost, f.layer))
    np.testing.assert_array_equal(order, np.arange(len(f)))  # by layer, then cost
    if depth == 1:
        np.testing.assert_array_equal(f.layer, 0)


def test_layers_spread_and_pick():
    q = np.array([3.0, 2.0, 1.0, 2.5, 0.5, 3.0])
    c = np.array([3.0, 2.0, 1.0, 3.0, 2.0, 3.0])
    # front: (1,1) (2,2) (3,3); then the twin of (3,3) and (0.5,2); then (2.5,3), which
    # the twin dominates
    np.testing.assert_array_equal(front_mod.layers(q, c, 5), [0, 0, 0, 2, 1, 1])
    np.testing.assert_array_equal(front_mod.layers(q, c, 2), [0, 0, 0, 2, 1, 1])
    np.testing.assert_array_equal(front_mod.layers(q, c, 1), [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(front_mod.spread(10, 3), [0, 4, 9])
    np.testing.assert_array_equal(front_mod.spread(10, 2, start=0.5), [2, 7])
    assert len(front_mod.spread(3, 5)) == 3 and len(front_mod.spread(0, 2)) == 0
    f = front_mod.AdditiveFront(np.arange(7.0), np.arange(7.0), np.zeros((7, 1), np.int64),
                                np.array([0, 0, 1, 1, 1, 1, 2]))
    assert list(f.pick(2)) == [0, 1]
    assert list(f.pick(4)) == [0, 1, 2, 5]  # layer 0 whole, layer 1 spread
    assert list(f.pick(9)) == list(range(7))
    assert list(f.pick(2, rows=[2, 3, 6])) == [2, 3]
    with pytest.raises(ValueError, match="depth: expected an int >= 1"):
        front_mod.exact_front([[0.0]], [[0.0]], depth=0)


def test_nondominated_and_validation():
    q = [1.0, 2.0, 2.0, 0.5, 3.0]
    c = [1.0, 1.0, 1.0, 0.5, 4.0]
    assert list(front_mod.nondominated(q, c)) == [3, 1, 4]  # equal points: the first only
    with pytest.raises(ValueError, match="costs: expected 2 per-op arrays"):
        front_mod.exact_front([[0.0], [1.0]], [[0.0]])
    with pytest.raises(ValueError, match=r"gains\[0\], costs\[0\]: expected finite"):
        front_mod.exact_front([[np.nan]], [[0.0]])


def test_additive_tables_match_p2_and_the_cost_model():
    cost, prof = synthetic_problem()
    space = tuner.build_space(cost, prof.ops, prof, top_k=None)
    gains, costs, q0, c0 = front_mod.additive_tables(space, prof, cost)
    f = front_mod.exact_front(gains, costs, qos_offset=q0, cost_offset=c0)
    K = np.concatenate(list(space.grid()))
    q, s = prof.predict_p2(K), cost.speedups(K)
    fk = np.array([[ch[i] for ch, i in zip(space.choices, row, strict=True)] for row in f.choice])
    np.testing.assert_allclose(prof.predict_p2(fk), f.qos, atol=1e-9)
    np.testing.assert_allclose(cost.total_flops / f.cost, cost.speedups(fk), rtol=1e-12)
    qr = np.round(q, 9)  # sums of the same accuracy terms in another order: last bits differ
    mask = tuner.pareto_mask(qr, s)
    ex = sorted({(round(a, 9), round(b, 9)) for a, b in zip(qr[mask], s[mask], strict=True)})
    got = sorted({(round(a, 9), round(cost.total_flops / b, 9))
                  for a, b in zip(f.qos, f.cost, strict=True)})
    assert got == ex
    # a per-(op, knob) table (e.g. latencies) works the same way
    table = {op: {k: float(costs[j][i] + 1.0) for i, k in enumerate(ch)}
             for j, (op, ch) in enumerate(zip(space.ops, space.choices, strict=True))}
    g2, c2, _, off2 = front_mod.additive_tables(space, prof, table)
    assert off2 == pytest.approx(len(space.ops) * 1.0)
    np.testing.assert_allclose(np.concatenate(c2), np.concatenate(costs) -
                               np.concatenate([[cj[0]] * len(cj) for cj in costs]))
    with pytest.raises(ValueError, match="cost: expected a CostModel or a mapping"):
        front_mod.additive_tables(space, prof, {})
    ratio = front_mod.hypervolume_ratio(q, s, f.qos, cost.total_flops / f.cost, q0 - 10)
    assert ratio == pytest.approx(1.0)


# ------------------------------------------------------------------- the engine


def test_constrained_ranks_and_crowding_by_hand():
    q = np.array([90.0, 89.0, 88.0, 89.0, 80.0, 70.0])
    s = np.array([1.0, 1.5, 1.2, 1.1, 3.0, 4.0])
    viol = np.maximum(0.0, (90 - q) - 5)  # 80 % and 70 % are infeasible
    rank = nsga.ranks(q, s, viol)
    assert list(rank) == [0, 0, 1, 1, 2, 3]
    crowd = nsga.crowding(q, s, rank)
    assert np.isinf(crowd).all()  # fronts of <= 2 points
    assert list(nsga.survive(q, s, viol, 3)) == [0, 1, 2]  # ties by index


def quick_search(tmp_path, trials, *, seed=0, evaluate=None, name="s", pop=10, seeds=None,
                 storage=None, **kw):
    cost, prof = synthetic_problem()
    space = tuner.build_space(cost, prof.ops, prof, top_k=None)
    return tuner.run_search(space, evaluate or prof.predict_p1, cost.speedups,
                            baseline_qos=prof.baseline_accuracy, tuner_threshold=5.0,
                            trials=trials, study_name=name, population_size=pop, seed=seed,
                            storage=storage or tmp_path / "studies",
                            seeds=tuner.default_seeds(space, prof) if seeds is None else seeds,
                            progress=False, **kw)


def _same(a, b):
    assert list(a["config"]) == list(b["config"])
    np.testing.assert_array_equal(a["qos"], b["qos"])
    np.testing.assert_array_equal(a["speedup"], b["speedup"])
    np.testing.assert_array_equal(a["generation"], b["generation"])


def test_search_deterministic_distinct_and_seeded(tmp_path):
    a = quick_search(tmp_path, 90, name="a")
    b = quick_search(tmp_path, 90, name="b")
    _same(a.trials, b.trials)
    t = a.trials
    assert len(t) == 90 and a.n_evaluations == 90
    assert t["config"].map(str).nunique() == 90  # every trial a new configuration
    cost, prof = synthetic_problem()
    space = tuner.build_space(cost, prof.ops, prof, top_k=None)
    seeds = tuner.default_seeds(space, prof)
    assert list(t["config"].iloc[:len(seeds)]) == seeds  # the seeds come first
    assert (t["generation"].iloc[:10] == 0).all() and t["generation"].max() == 8
    c = quick_search(tmp_path, 90, name="c", seed=1)
    assert list(c.trials["config"]) != list(t["config"])
    assert set(a.timings) == {"evaluate", "engine", "checkpoint"}


@pytest.mark.parametrize("every", [None, 3])
def test_killed_search_resumes_to_the_uninterrupted_result(tmp_path, every):
    """Killed in generation 3 (with ``every`` 3: mid-way through the generations that share
    one surrogate fit), the rerun ends exactly as the uninterrupted search."""
    kw = {"surrogate_every": every}
    whole = quick_search(tmp_path, 100, name="whole", **kw).trials
    _, prof = synthetic_problem()
    calls = []

    def dying(K):
        calls.append(len(K))
        if len(calls) == 4:
            raise KeyboardInterrupt
        return prof.predict_p1(K)

    with pytest.raises(KeyboardInterrupt):
        quick_search(tmp_path, 100, evaluate=dying, name="k", **kw)
    kept = tuner.open_study("k", tmp_path / "studies")
    assert len(kept) == 30 and kept.n_generations == 3  # the finished generations stay
    _same(kept.trials, whole.iloc[:30])
    resumed = quick_search(tmp_path, 100, name="k", **kw)
    assert resumed.n_evaluations == 70
    _same(resumed.trials, whole)
    # a leftover temporary file of a write in flight is not a generation
    folder = tmp_path / "studies" / "k"
    (folder / ".gen-000010.npz.abc.tmp.npz").write_bytes(b"partial")
    assert len(tuner.open_study("k", tmp_path / "studies")) == 100
    # more budget continues from there; no budget left evaluates nothing
    more = quick_search(tmp_path, 120, name="k", **kw)
    _same(more.trials.iloc[:100], whole)
    assert len(more.trials) == 120
    assert quick_search(tmp_path, 50, name="k", **kw).n_evaluations == 0


def test_study_mismatch_and_damage_are_reported(tmp_path):
    quick_search(tmp_path, 30, name="m")
    with pytest.raises(ValueError, match="seed: the study 'm'"):
        quick_search(tmp_path, 40, name="m", seed=3)
    with pytest.raises(ValueError, match="population_size: the study 'm'"):
        quick_search(tmp_path, 40, name="m", pop=12)
    (tmp_path / "studies" / "m" / "gen-000001.npz").unlink()
    with pytest.raises(ValueError, match="lacks generation 1"):
        tuner.open_study("m", tmp_path / "studies")
    with pytest.raises(ValueError, match="study_name: expected"):
        tuner.open_study("a/b", tmp_path)
    with pytest.raises(ValueError, match="mutation: expected a probability"):
        quick_search(tmp_path, 10, name="x", mutation=0.0)
    with pytest.raises(ValueError, match="trials: expected an int >= 1"):
        quick_search(tmp_path, 0, name="x")


def test_search_stops_when_the_space_is_exhausted(tmp_path):
    cost, prof = synthetic_problem()
    space = tuner.build_space(cost, prof.ops, prof, top_k=None)
    res = quick_search(tmp_path, 1000, name="all", evaluate=prof.predict_p2)
    assert res.n_evaluations == space.size == 120 and len(res.trials) == 120
    gains, costs, q0, c0 = front_mod.additive_tables(space, prof, cost)
    f = front_mod.exact_front(gains, costs, qos_offset=q0, cost_offset=c0)
    ratio = front_mod.hypervolume_ratio(res.trials["qos"], res.trials["speedup"], f.qos,
                                          cost.total_flops / f.cost, q0 - 5.0)
    assert ratio == pytest.approx(1.0)


def test_search_reaches_the_exact_front_of_a_larger_additive_problem(tmp_path):
    """30 ops x 6 knobs (~2e23 configurations), additive QoS (as P2), linear cost: 3,000
    trials with the additive surrogate come within 1 % of the exact front's hypervolume;
    plain NSGA-II (no surrogate) stays well below (0.86 when written)."""
    rng = np.random.default_rng(0)
    d, choices = 30, (11, 12, 121, 151, 231, 261)
    sp = np.array([1.0, 1.5, 2.0, 3.0, 2.0, 3.0])
    flops = rng.uniform(1, 10, d)
    loss = np.abs(rng.normal(0, 0.3, (d, len(choices)))) * (sp - 1)[None, :]
    space = search_mod.SearchSpace([f"op{j}" for j in range(d)], [choices] * d)
    col = np.zeros(300, np.int64)
    col[list(choices)] = np.arange(len(choices))

    def evaluate(K):
        return 90.0 - loss[np.arange(d)[None, :], col[K]].sum(axis=1)

    def speedup(K):
        return flops.sum() / (flops[None, :] / sp[col[K]]).sum(axis=1)

    f = front_mod.exact_front(list(-loss), list(flops[:, None] / sp[None, :]),
                              qos_offset=90.0, min_qos=85.0)
    ratios = {}
    for surrogate in (0.0, 0.5):
        res = tuner.run_search(space, evaluate, speedup, baseline_qos=90.0, tuner_threshold=5.0,
                               trials=3000, study_name=f"big{surrogate}", storage=tmp_path,
                               seed=0, population_size=50, seeds=[{}], progress=False,
                               surrogate=surrogate)
        t = res.trials
        ratios[surrogate] = front_mod.hypervolume_ratio(t["qos"], t["speedup"], f.qos,
                                                        flops.sum() / f.cost, 85.0)
    assert 0.99 <= ratios[0.5] <= 1.0 + 1e-9
    assert ratios[0.0] < 0.95


def test_surrogate_fit_recovers_additive_terms():
    space = search_mod.SearchSpace(["a", "b", "c"], [(11, 12, 121), (11, 12), (11, 151, 231)])
    engine = nsga.Engine(space)
    sur = nsga.AdditiveSurrogate(engine, ridge=1e-9)
    X = np.array(list(itertools.product(range(3), range(2), range(3))))
    terms = np.array([0.5, -1.0, 2.0, 0.25, -3.0])  # a:12, a:121, b:12, c:151, c:231
    cols = sur.columns(X)  # -1 where the op is exact
    y = 7.0 + np.where(cols >= 0, terms[np.maximum(cols, 0)], 0.0).sum(axis=1)
    sur.sync(X[:7])
    sur.sync(X)  # incremental = all at once
    whole = nsga.AdditiveSurrogate(engine, ridge=1e-9)
    whole.sync(X)
    np.testing.assert_array_equal(sur.gram, whole.gram)
    (c,), w = sur.fit(X, y[:, None])
    assert c == pytest.approx(7.0, abs=1e-6)
    np.testing.assert_allclose(w[:, 0], terms, atol=1e-6)


def test_surrogate_prior_holds_where_the_trials_say_nothing():
    """Trials that never try knob 121 of op "a": its fitted QoS term is the prior's (the
    residual is shrunk to 0), 0 without a prior; the terms the trials determine are
    recovered either way."""
    space = search_mod.SearchSpace(["a", "b"], [(11, 12, 121), (11, 12, 151)])
    engine = nsga.Engine(space)
    true = [np.array([0.0, -1.0, -2.0]), np.array([0.0, -0.5, -3.0])]
    cost = [np.array([0.0, -0.2, -0.3]), np.array([0.0, -0.1, -0.4])]
    X = np.array([[a, b] for a in (0, 1) for b in range(3)])  # never a = 2 (knob 121)
    q = 80.0 + true[0][X[:, 0]] + true[1][X[:, 1]]
    s = 1.0 / (1.0 + cost[0][X[:, 0]] + cost[1][X[:, 1]])
    prior = [true[0] + [0.0, 0.3, 0.0], true[1] - [0.0, 0.0, 0.4]]  # off where data speaks
    for with_prior in (True, False):
        sur = nsga.AdditiveSurrogate(engine, ridge=1e-9, prior=prior if with_prior else None)
        q0, c0, gains, costs = sur.terms(X, q, s)
        assert q0 == pytest.approx(80.0, abs=1e-5) and c0 == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(gains[0][:2], true[0][:2], atol=1e-5)
        np.testing.assert_allclose(gains[1], true[1], atol=1e-5)
        np.testing.assert_allclose(costs[1], cost[1], atol=1e-5)
        assert gains[0][2] == pytest.approx(-2.0 if with_prior else 0.0, abs=1e-5)
    with pytest.raises(ValueError, match=r"prior: expected 2 per-op arrays"):
        nsga.AdditiveSurrogate(engine, prior=prior[:1])
    with pytest.raises(ValueError, match=r"prior\[1\]: expected 3 finite QoS terms"):
        nsga.AdditiveSurrogate(engine, prior=[prior[0], np.zeros(2)])


def test_guided_start_seeds_deeper_layers_and_gives_p2_as_prior():
    cost, prof = synthetic_problem()
    space = tuner.build_space(cost, prof.ops, prof, top_k=None)
    seeds, prior = tuner.guided_start(space, prof, cost, max_seeds=500, max_loss=5.0)
    gains = front_mod.additive_tables(space, prof, cost)[0]
    assert len(prior) == len(space.ops)
    for a, b in zip(prior, gains, strict=True):
        np.testing.assert_array_equal(a, b)
    shallow = tuner.default_seeds(space, prof, cost=cost, front=space_mod.FRONT_SEEDS,
                                  max_loss=5.0)
    plain = tuner.default_seeds(space, prof)  # exact and the uniform levels come first
    assert seeds[:len(plain)] == shallow[:len(plain)] == plain
    # the extra seeds come from P2's deeper layers: some are off P2's own front
    Kall = np.concatenate(list(space.grid()))
    qa, sa = prof.predict_p2(Kall), cost.speedups(Kall)
    K = space.matrix(seeds)
    q, s = prof.predict_p2(K), cost.speedups(K)
    dominated = [bool(np.any((qa >= qi - 1e-9) & (sa >= si - 1e-12) &
                             ((qa > qi + 1e-9) | (sa > si + 1e-12))))
                 for qi, si in zip(q, s, strict=True)]
    assert any(dominated) and len(seeds) > len(shallow)


def test_default_seeds_from_the_additive_front():
    cost, prof = synthetic_problem()
    space = tuner.build_space(cost, prof.ops, prof, top_k=None)
    plain = tuner.default_seeds(space, prof)
    seeds = tuner.default_seeds(space, prof, cost=cost, front=6, max_loss=5.0)
    assert seeds[:len(plain)] == plain and len(seeds) > len(plain)
    extra = tuner.search.additive_front_seeds(space, prof, cost, 6, max_loss=5.0)
    assert 2 <= len(extra) <= 6
    K = space.matrix(extra)
    q, s = prof.predict_p2(K), cost.speedups(K)
    assert (q >= prof.baseline_accuracy - 5.0 - 1e-9).all()
    assert np.all(np.diff(s) < 0)  # fastest first, distinct front points
    # each is on the brute-force front of (P2, speedup)
    Kall = np.concatenate(list(space.grid()))
    qa, sa = prof.predict_p2(Kall), cost.speedups(Kall)
    for qi, si in zip(q, s, strict=True):
        assert not np.any((qa >= qi - 1e-9) & (sa >= si - 1e-12) & ((qa > qi + 1e-9) |
                                                                   (sa > si + 1e-12)))
    with pytest.raises(ValueError, match="front: additive-front seeds need both"):
        tuner.default_seeds(space, prof, front=3)
    assert tuner.search.additive_front_seeds(space, prof, cost, 0) == []


def test_search_with_empirical_qos_is_the_same_serial_and_through_an_executor(tmp_path):
    """The search only sees the QoS values, so an executor (threads here; Dask gives the
    same accuracies, ``test_tuner.test_dask_local_cluster_matches_serial``) changes nothing."""
    from concurrent.futures import ThreadPoolExecutor

    import torch
    from test_profiler import toy_task

    from mobiprox_lab.profiler import CostModel

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, tune_split, _ = toy_task()
        cost = CostModel.of(model)
        space = tuner.build_space(cost, model.tunable_ops)
        results = []
        for name, ex in (("serial", None), ("threads", ThreadPoolExecutor(2))):
            def evaluate(K, ex=ex):
                return tuner.empirical_qos(model, [space.config(r) for r in K], tune_split,
                                           executor=ex, cache=False, progress=False)

            res = tuner.run_search(space, evaluate,
                                   lambda K: cost.speedups(space.embed(K, cost.names)),
                                   baseline_qos=float(evaluate(space.matrix([{}]))[0]),
                                   tuner_threshold=5.0, trials=24, study_name=name,
                                   storage=tmp_path, population_size=8, seed=0,
                                   seeds=tuner.default_seeds(space), progress=False)
            if ex is not None:
                ex.shutdown()
            results.append(res.trials)
        _same(*results)
    finally:
        torch.set_num_threads(threads)
