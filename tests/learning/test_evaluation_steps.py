"""One retailer's figures in steps of k carts: curves, calibration bins, bands, operating point."""

from __future__ import annotations

import numpy as np
import pytest

from cartpredict.learning.evaluation import (
    ModelPredictions,
    calibration_in_steps,
    evaluate,
    evaluate_in_steps,
    operating_point_in_steps,
    pr_in_steps,
    score_bands,
    steps_called,
)

K = 10


def rows(n_carts: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to 5 snapshots per cart: (P(purchased), purchased, cart id) per row."""
    rng = np.random.default_rng(seed)
    per_cart = rng.integers(1, 6, n_carts)
    cart = np.repeat(np.array([f"c{i}" for i in range(n_carts)]), per_cart)
    p = rng.beta(1.5, 6.0, cart.size)
    y = rng.random(cart.size) < p
    return p, y, cart


@pytest.mark.parametrize("seed", range(5))
def test_each_point_of_a_curve_adds_k_carts(seed: int) -> None:
    p, y, cart = rows(300, seed)
    for positive, score in ((y, p), (~y, 1.0 - p)):
        curve = pr_in_steps(positive, score, cart, k=K)
        assert curve is not None
        order = np.argsort(-score, kind="stable")
        seen: set[str] = set()
        for precision, recall in list(zip(curve.precision, curve.recall, strict=True))[-2::-1]:
            called = round(recall * positive.sum() / precision)
            new = set(cart[order[:called]].tolist()) - seen
            assert len(new) >= K
            seen |= new
        assert seen == set(cart.tolist())  # the last point calls every row
    for b in calibration_in_steps(p, y, cart, k=K):
        inside = (p >= b.lower) & ((p < b.upper) | (b.upper == 1.0))
        assert inside.sum() == b.count and len(set(cart[inside].tolist())) >= K
    for band in score_bands(1.0 - p, ~y, cart, k=K):
        assert band.carts >= K


def test_fewer_than_k_carts_give_no_curve_bin_or_band() -> None:
    p, y, cart = rows(K - 1)
    assert pr_in_steps(y, p, cart, k=K) is None
    assert calibration_in_steps(p, y, cart, k=K) == ()
    assert score_bands(1.0 - p, ~y, cart, k=K) == ()


def test_the_operating_point_is_a_step_of_the_curve_or_not_shown() -> None:
    p, y, cart = rows(200, 3)
    called = steps_called(p, y, cart, 0.8, k=K)
    curve = pr_in_steps(~y, 1.0 - p, cart, k=K)
    assert curve is not None
    point = operating_point_in_steps(called, y, cart, float(1.0 - y.mean()), k=K)
    shown = (point["precision_abandoned"], point["recall_abandoned"])
    assert any(
        shown == pytest.approx(pr, abs=1e-6)
        for pr in zip(curve.precision, curve.recall, strict=True)
    )
    few = np.zeros(y.size, dtype=bool)
    few[np.isin(cart, ["c0", "c1", "c2"])] = True  # 3 carts called: not shown
    assert set(operating_point_in_steps(few, y, cart, 0.8, k=K).values()) == {None}


def test_areas_and_brier_are_those_of_every_row() -> None:
    p, y, cart = rows(150, 4)
    decided = p < 0.2
    shared = evaluate_in_steps(purchased=y, models=[ModelPredictions("m", p, decided)],
                               cart_ids=cart, retailer_id="r", k=K)  # fmt: skip
    full = evaluate(purchased=y.astype(int), models=[ModelPredictions("m", p, decided)])
    for name in ("auc_pr_purchased", "auc_pr_abandoned", "roc_auc", "brier"):
        assert getattr(shared.models[0], name) == getattr(full.models[0], name)
