"""Evaluation metrics: temperature, static points, time-share frontier, intervals."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mobiprox_lab import evaluation as ev


def test_temper_keeps_argmax_and_identity_at_one():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=50)
    np.testing.assert_allclose(ev.temper(p, 1.0), p, atol=1e-12)
    for t in (0.5, 1.25, 2.0):
        q = ev.temper(p, t)
        np.testing.assert_array_equal(q.argmax(1), p.argmax(1))
        np.testing.assert_allclose(q.sum(1), 1.0)
    # T > 1 flattens: the top probability never grows
    assert np.all(ev.temper(p, 2.0).max(1) <= p.max(1) + 1e-12)


def test_temper_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature"):
        ev.temper([[0.5, 0.5]], 0.0)
    with pytest.raises(ValueError, match="probs"):
        ev.temper([[0.5, 0.6]], 1.0)


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, size=(4000, 6))
    true_p = np.exp(logits / 2.0)
    true_p /= true_p.sum(1, keepdims=True)
    y = np.array([rng.choice(6, p=row) for row in true_p])
    sharp = np.exp(logits)
    sharp /= sharp.sum(1, keepdims=True)
    assert ev.fit_temperature(sharp, y) == pytest.approx(2.0, rel=0.1)


def test_static_points_by_hand():
    # 2 configs, 4 inputs, 2 classes: conf1 disagrees with conf0 on input 3
    p0 = np.array([[.9, .1], [.2, .8], [.7, .3], [.6, .4]])
    p1 = np.array([[.8, .2], [.3, .7], [.6, .4], [.4, .6]])
    pts = ev.static_points(np.stack([p0, p1]), [1.0, 0.7], labels=[0, 1, -1, 0])
    assert pts["loss_pp"].tolist() == [0.0, 25.0]
    # labelled inputs 0, 1, 3: conf0 right on all three, conf1 wrong on input 3
    assert pts["accuracy"].tolist() == pytest.approx([1.0, 2 / 3])
    assert pts["relative_energy"].tolist() == [1.0, 0.7]


def test_timeshare_frontier_and_best_energy_by_hand():
    loss = [0.0, 1.0, 2.0, 3.0, 4.0]
    energy = [1.0, 0.8, 0.75, 0.5, 0.6]
    q, e = ev.timeshare_frontier(loss, energy)
    # (2, .75) lies above the segment (1, .8)-(3, .5); (4, .6) costs more than (3, .5)
    assert q.tolist() == [0.0, 1.0, 3.0] and e.tolist() == [1.0, 0.8, 0.5]
    assert ev.best_timeshare_energy(loss, energy, 2.0) == pytest.approx(0.65)
    assert ev.best_timeshare_energy(loss, energy, 0.5) == pytest.approx(0.9)
    assert ev.best_timeshare_energy(loss, energy, 10.0) == pytest.approx(0.5)
    assert math.isnan(ev.best_timeshare_energy([1.0, 2.0], [1.0, 0.5], 0.5))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-2, 10), st.floats(0.3, 1.5)), min_size=1, max_size=12),
       st.floats(-2, 12))
def test_timeshare_beats_every_pair_mix(points, at):
    """No mix of two static points within the loss budget is below the frontier."""
    loss = np.array([p[0] for p in points])
    energy = np.array([p[1] for p in points])
    best = ev.best_timeshare_energy(loss, energy, at)
    tol = ev.LOSS_TOLERANCE_PP
    if loss.min() > at + tol:
        assert math.isnan(best)
        return
    for i in range(len(loss)):
        for j in range(len(loss)):
            for w in np.linspace(0, 1, 11):
                lq = w * loss[i] + (1 - w) * loss[j]
                if lq <= at + tol:
                    assert best <= w * energy[i] + (1 - w) * energy[j] + 1e-9


def test_schedule_relative_energy_by_hand():
    # the authors' HAR coefficients for conf0, 1, 2, 8 (their phone table)
    coeff = np.ones(10)
    coeff[[1, 2, 8]] = [0.858578929, 0.83936881, 0.779829376]
    schedule = [0, 1, 1, 8, 8, 8, 0, 2]
    # (1 + 2 x 0.858578929 + 3 x 0.779829376 + 1 + 0.83936881) / 8, worked by hand
    assert ev.schedule_relative_energy(schedule, coeff) == pytest.approx(0.8620018495, abs=1e-9)
    with pytest.raises(ValueError, match="index"):
        ev.schedule_relative_energy([0, 10], coeff)


def test_mean_ci():
    m, lo, hi = ev.mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0
    # t(0.975, 2) = 4.3027; s = 1; half = 4.3027 / sqrt(3)
    assert hi - m == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert m - lo == pytest.approx(hi - m)
    m, lo, hi = ev.mean_ci([5.0])
    assert m == 5.0 and math.isnan(lo) and math.isnan(hi)


def test_grouped_accuracy_ci_resamples_whole_groups():
    # three groups: 10/10, 5/10 and 0/20 correct -> 15/40 overall
    correct = np.r_[np.ones(10), np.ones(5), np.zeros(5), np.zeros(20)].astype(bool)
    groups = np.r_[np.full(10, 7), np.full(10, 3), np.full(20, 9)]
    acc, lo, hi = ev.grouped_accuracy_ci(correct, groups, n_boot=2000)
    assert acc == pytest.approx(15 / 40)
    # a resample holds only these groups: its accuracy lies between the worst and best group
    assert 0.0 <= lo < acc < hi <= 1.0
    # every group alike: no spread between groups, so none in the interval
    same = ev.grouped_accuracy_ci(np.tile([True, False], 20), np.repeat(np.arange(4), 10))
    assert same == pytest.approx((0.5, 0.5, 0.5))
    one = ev.grouped_accuracy_ci(correct, np.zeros(40))
    assert one[0] == pytest.approx(15 / 40) and math.isnan(one[1]) and math.isnan(one[2])
    with pytest.raises(ValueError, match="correct, groups"):
        ev.grouped_accuracy_ci(correct, groups[:-1])
    with pytest.raises(ValueError, match="level"):
        ev.grouped_accuracy_ci(correct, groups, level=1.5)
