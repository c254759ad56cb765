"""One day's figures for one retailer, as counts that add up (stats.py shows them).

``{"predictions", "carts", "predicted_abandoned", "p_abandoned_sum", "distribution",
"outcomes", "profile"}``: the distribution is ten bins of P(abandoned), the profile the scored
carts' drift histograms (drift.py). Counts add, so figures kept in memory by several workers, or
written at several times, sum to the day's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cartpredict.monitoring import drift

P_BINS = 10  # the distribution of P(abandoned): ten bins of 0.1
OUTCOMES = ("tp", "fp", "fn", "tn", "pending", "without_cart_id")


def empty() -> dict[str, Any]:
    return {
        "predictions": 0,
        "carts": 0,
        "predicted_abandoned": 0,
        "p_abandoned_sum": 0.0,
        "distribution": [0] * P_BINS,
        "outcomes": dict.fromkeys(OUTCOMES, 0),
        "profile": drift.empty(),
    }


def count(
    figures: dict[str, Any],
    p_abandoned: float,
    abandoned: bool,
    outcome: str,
    cart_value: float,
    item_count: int,
    device_type: str,
    shipping_speed: str,
) -> None:
    """Count one scored cart (in place)."""
    figures["carts"] += 1
    figures["predicted_abandoned"] += abandoned
    figures["p_abandoned_sum"] += p_abandoned
    figures["distribution"][min(int(p_abandoned * P_BINS), P_BINS - 1)] += 1
    figures["outcomes"][outcome] += 1
    drift.add_values(figures["profile"], cart_value, item_count, device_type, shipping_speed)


def total(many: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The sum of several figures."""
    figures = empty()
    for other in many:
        add(figures, other)
    return figures


def add(figures: dict[str, Any], other: Mapping[str, Any]) -> None:
    """Add ``other``'s counts to ``figures`` (in place)."""
    for key in ("predictions", "carts", "predicted_abandoned", "p_abandoned_sum"):
        figures[key] += other[key]
    pairs = zip(figures["distribution"], other["distribution"], strict=True)
    figures["distribution"] = [a + b for a, b in pairs]
    for key in OUTCOMES:
        figures["outcomes"][key] += other["outcomes"][key]
    figures["profile"] = drift.merged([figures["profile"], other["profile"]])
