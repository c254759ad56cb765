"""Features: a retailer's own shipping speeds share the seed's features through their delivery
days, in serving and in training alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pytest

from cartpredict.learning.columns import CartColumns, design_matrix
from cartpredict.models.features import FeatureSpec, site_features, speed_class
from cartpredict.storage import Retailer

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def retailer(speeds: tuple[str, ...], days: dict[str, float]) -> Retailer:
    return Retailer("r", False, ("card",), speeds, True, 0.7, T0, T0, (), tuple(days.items()))


@dataclass
class Cart:
    shipping_speed: str
    cart_value: float = 40.0
    item_count: int = 2
    inactivity_hours: float = 3.0
    device_type: str = "mobile"
    attributes: dict[str, float | str] = field(default_factory=dict)


@pytest.mark.parametrize(
    ("speed", "days", "counts_as"),
    [
        ("express", {}, "express"),  # the seed's speeds are themselves, whatever days say
        ("pickup", {"pickup": 9.0}, "pickup"),
        ("economy", {"economy": 7.0}, "standard"),
        ("two_day", {"two_day": 2.0}, "express"),
        ("next_day", {"next_day": 1.0}, "overnight"),
        ("courier", {"courier": 0.0}, "same_day"),
        ("mystery", {}, "standard"),  # no days given
    ],
)
def test_a_speed_counts_as_the_seed_speed_of_its_delivery_days(
    speed: str, days: dict[str, float], counts_as: str
) -> None:
    shop = retailer((speed,), days)
    assert speed_class(speed, shop) == counts_as
    spec = FeatureSpec(cart=True, site=True)
    assert spec.row(Cart(speed), shop) == spec.row(Cart(counts_as), shop)


def test_a_fast_speed_of_its_own_makes_a_site_offer_fast_shipping() -> None:
    assert site_features(retailer(("economy", "two_day"), {"economy": 7, "two_day": 2}))[2] == 1
    assert site_features(retailer(("economy",), {"economy": 7}))[2] == 0


def test_training_columns_map_the_speeds_as_serving_does() -> None:
    shop = retailer(("economy", "two_day", "standard"), {"economy": 7, "two_day": 2})
    carts = [Cart(s) for s in ("economy", "two_day", "standard", "two_day")]
    spec = FeatureSpec(cart=True, site=True)
    matrix = design_matrix(spec, CartColumns.from_carts(carts), shop)
    assert np.allclose(matrix, [spec.row(c, shop) for c in carts], rtol=1e-12, atol=1e-12)
