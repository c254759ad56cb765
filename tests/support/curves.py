"""Checks that a curve or calibration bins drawn for a retailer single out no fewer than k
carts, made from the rows they were computed on (scores, labels, cart ids) by another path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

K = 10


def curve_steps_cover_k_carts(
    curve: Mapping[str, Sequence[float]],
    positive: np.ndarray,
    score: np.ndarray,
    carts: np.ndarray,
    k: int = K,
) -> None:
    """Each point of the curve is the rows at or above some threshold: the top n rows by
    score, n = hits / precision. The first point covers k carts, each next one k new ones."""
    order = np.argsort(-score, kind="stable")
    total = int(positive.sum())
    points = list(zip(curve["precision"], curve["recall"], strict=True))[::-1]  # recall rising
    seen: set[str] = set()
    for precision, recall in points:
        if recall == 0.0:
            continue  # the curve's end at recall 0 (the first step's precision): no rows
        called = round(recall * total / precision)
        assert positive[order[:called]].sum() == round(recall * total)  # a true point
        new = set(carts[order[:called]].tolist()) - seen
        assert len(new) >= k, (precision, recall, len(new))
        seen |= new
    assert seen == set(carts.tolist())  # the last point calls every row


def bins_cover_k_carts(
    bins: Sequence[Mapping[str, Any]],
    p_purchased: np.ndarray,
    purchased: np.ndarray,
    carts: np.ndarray,
    k: int = K,
) -> None:
    """Each calibration bin is the rows whose P(purchased) falls in it, of k carts at least,
    with their mean P(purchased) and purchase rate; together, every row."""
    covered = 0
    for b in bins:
        rows = (p_purchased >= b["lower"]) & ((p_purchased < b["upper"]) | (b["upper"] == 1.0))
        assert rows.sum() == b["count"]
        assert len(set(carts[rows].tolist())) >= k
        assert abs(b["mean_predicted"] - p_purchased[rows].mean()) < 1e-6
        assert abs(b["observed_rate"] - purchased[rows].mean()) < 1e-6
        covered += int(rows.sum())
    assert covered == len(p_purchased)


def kept_curves(n_carts: int = 80, seed: int = 0) -> dict[str, Any]:
    """Curves as training keeps them (``training.curves``), of a model and a two-score rule on
    ``n_carts`` carts of up to 4 snapshots each."""
    from cartpredict.learning.evaluation import curves_in_steps

    rng = np.random.default_rng(seed)
    cart = np.repeat(np.arange(n_carts), rng.integers(1, 5, n_carts))
    p = rng.beta(1.5, 5.0, cart.size)
    y = rng.random(cart.size) < p
    rule = np.where(rng.random(cart.size) < 0.3, 0.15, 0.25)
    return {"candidate": curves_in_steps(y, p, cart), "baseline": curves_in_steps(y, rule, cart)}
