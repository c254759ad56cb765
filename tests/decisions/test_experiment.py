"""The experiment's statistics: Wilson and Newcombe intervals, intent-to-treat figures."""

from __future__ import annotations

import random

import pytest

from cartpredict.decisions.experiment import Arm, compare, newcombe, wilson


def test_newcombes_worked_examples() -> None:
    # Newcombe (1998), Table II, method 10
    assert newcombe(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert newcombe(9, 10, 3, 10) == pytest.approx((0.1705, 0.8090), abs=1e-4)


def test_wilson_stays_in_bounds_where_wald_does_not() -> None:
    assert wilson(0, 10)[0] == 0.0 and 0 < wilson(0, 10)[1] < 0.35
    assert wilson(10, 10)[1] == pytest.approx(1.0)
    lo, hi = newcombe(0, 12, 12, 12)
    assert -1.0 <= lo < hi <= 0.0
    with pytest.raises(ValueError):
        wilson(3, 0)


def test_the_interval_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    rng = random.Random(4)
    covered, runs = 0, 2000
    for _ in range(runs):
        t = sum(rng.random() < 0.12 for _ in range(150))
        c = sum(rng.random() < 0.08 for _ in range(60))
        lo, hi = newcombe(t, 150, c, 60)
        covered += lo <= 0.04 <= hi
    assert 0.93 <= covered / runs <= 0.975


def test_intent_to_treat_figures() -> None:
    treated = Arm(carts=200, purchased=40, revenue=4000.0, margin=1200.0, cost=2.0)
    control = Arm(carts=50, purchased=6, revenue=600.0, margin=210.0, cost=0.0)
    result = compare(treated, control)
    assert result.uplift == pytest.approx(0.2 - 0.12)
    assert result.incremental_purchases == pytest.approx(0.08 * 200)
    assert result.incremental_margin == pytest.approx(1200.0 - 210.0 / 50 * 200 - 2.0)
    assert result.ci95[0] < result.uplift < result.ci95[1]


def test_the_margin_added_has_a_welch_interval_that_covers_the_truth() -> None:
    # each cart's margin: 0 unless bought; treated carts bought at 30 %, control at 20 %,
    # a cart's value 100 with margin 0.4: the true margin added is 0.1 x 40 = 4 per treated cart
    rng = random.Random(3)
    covered, trials = 0, 200
    for _ in range(trials):
        arms = []
        for rate, n in ((0.3, 800), (0.2, 200)):
            margins = [40.0 if rng.random() < rate else 0.0 for _ in range(n)]
            arms.append(Arm(n, sum(m > 0 for m in margins), sum(margins) / 0.4, sum(margins),
                            0.0, sum(m * m for m in margins)))  # fmt: skip
        found = compare(*arms)
        assert found.margin_ci95 is not None
        low, high = found.margin_ci95
        assert low < found.incremental_margin < high
        covered += low <= 4.0 * 800 <= high
    assert 0.90 <= covered / trials <= 0.99  # about 95 %
    without = compare(Arm(10, 3, 30.0, 12.0, 0.0), Arm(10, 1, 10.0, 4.0, 0.0))
    assert without.margin_ci95 is None  # an arm rolled up before its spread was kept
