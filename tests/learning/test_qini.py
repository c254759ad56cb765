"""Qini curves and coefficients: a ranking by the true uplift beats any other, random ranking
is near zero, and the curve from an experiment's carts agrees with the expected one."""

from __future__ import annotations

import numpy as np
import pytest

from cartpredict.learning import qini


def test_the_true_uplift_ranks_best_and_a_random_one_near_zero() -> None:
    rng = np.random.default_rng(3)
    uplift = rng.beta(1, 20, 5000)
    best = qini.coefficient(qini.expected_curve(uplift, uplift))
    noisy = qini.coefficient(qini.expected_curve(uplift + rng.normal(0, 0.05, 5000), uplift))
    random = qini.coefficient(qini.expected_curve(rng.random(5000), uplift))
    worst = qini.coefficient(qini.expected_curve(-uplift, uplift))
    assert best > noisy > random > worst
    assert abs(random) < 0.1 * best
    assert worst == pytest.approx(-best, rel=1e-6)


def test_an_experiments_curve_estimates_the_expected_one() -> None:
    rng = np.random.default_rng(5)
    n = 200_000
    base, uplift = rng.uniform(0.1, 0.4, n), rng.beta(1, 10, n)
    treated = rng.random(n) < 0.5
    bought = rng.random(n) < base + treated * uplift
    score = uplift + rng.normal(0, 0.02, n)
    empirical = qini.empirical_curve(score, treated, bought)
    expected = qini.expected_curve(score, uplift)
    # per treated cart against per cart: the same scale with half the carts treated
    assert empirical == pytest.approx(expected, abs=0.01)
    assert qini.coefficient(empirical) == pytest.approx(qini.coefficient(expected), abs=0.004)


def test_a_bootstrap_interval_holds_the_estimate() -> None:
    rng = np.random.default_rng(1)
    uplift = rng.beta(1, 20, 3000)
    score = uplift + rng.normal(0, 0.03, 3000)

    def statistic(ix: np.ndarray) -> float:
        return qini.coefficient(qini.expected_curve(score[ix], uplift[ix]))

    low, high = qini.bootstrap(statistic, 3000, resamples=100)
    assert low < statistic(np.arange(3000)) < high
