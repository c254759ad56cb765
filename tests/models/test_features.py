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


# --- feature set versions and currencies -----------------------------------------------------


def store(currency: str = "USD", threshold: float = 20.0, typical: float = 60.0) -> Retailer:
    return Retailer("r", True, ("card",), ("standard",), True, 0.7, T0, T0, (), (),
                    currency, threshold, typical)  # fmt: skip


def test_a_model_stored_before_feature_versions_keeps_its_features() -> None:
    stored = {"cart": True, "site": False, "numeric": [], "categorical": {}, "interactions": []}
    spec = FeatureSpec.from_dict(stored)
    assert spec.version == 1
    assert "below_20" in spec.names() and "log_value_sq" not in spec.names()
    row = spec.row(Cart("standard", cart_value=19.0), store("JPY", 3100.0, 9400.0))
    assert row[spec.names().index("below_20")] == 1.0  # $20, as it was trained
    assert row[0] == pytest.approx(np.log1p(19.0))
    assert FeatureSpec.from_dict(FeatureSpec().to_dict()) == FeatureSpec()
    with pytest.raises(ValueError, match="version"):
        FeatureSpec(version=3)


def test_the_current_set_bends_value_and_items_and_crosses_device_with_accounts() -> None:
    spec = FeatureSpec(site=True)
    names = spec.names()
    typical, cheap = (spec.row(Cart("standard", cart_value=v), store()) for v in (60.0, 5.0))
    assert typical[names.index("log_value_sq")] == pytest.approx(0.0)
    assert cheap[names.index("log_value_sq")] > 1.0  # far from the typical cart either way
    two = spec.row(Cart("standard", item_count=2), store())
    assert two[names.index("log_items_sq")] == pytest.approx(0.0)
    assert two[names.index("log_inactivity_sq")] == pytest.approx(0.0)  # 3 h: the centre
    phone = spec.row(Cart("standard", device_type="mobile"), store())
    desk = spec.row(Cart("standard", device_type="desktop"), store())
    assert phone[names.index("mobile_x_requires_account")] == 1.0
    assert desk[names.index("mobile_x_requires_account")] == 0.0
    assert set(spec.groups()) == {"main", "shape"}
    assert [n for n, g in zip(names, spec.groups(), strict=True) if g == "shape"] == [
        "log_value_sq", "log_items_sq", "log_inactivity_sq", "mobile_x_requires_account",
        "tablet_x_requires_account",
    ]  # fmt: skip


def test_a_yen_cart_looks_to_the_pooled_model_as_the_dollar_cart_of_the_same_standing() -> None:
    pooled = FeatureSpec(site=True)
    yen, dollars = store("JPY", 3100.0, 9400.0), store()
    for yen_value, dollar_value in ((9400.0, 60.0), (3000.0, 3000 * 60 / 9400)):
        a = pooled.row(Cart("standard", cart_value=yen_value), yen)
        b = pooled.row(Cart("standard", cart_value=dollar_value), dollars)
        assert a[:5] == pytest.approx(b[:5])
    below = pooled.names().index("below_threshold")
    assert pooled.row(Cart("standard", cart_value=3000.0), yen)[below] == 1.0
    assert pooled.row(Cart("standard", cart_value=3200.0), yen)[below] == 0.0


def test_a_retailer_model_keeps_the_scale_it_was_trained_with() -> None:
    from cartpredict.models.features import spec_for

    spec = spec_for(store("JPY", 3100.0, 9400.0), level_counts={})
    assert (spec.value_unit, spec.low_value) == (60.0 / 9400.0, 3100.0)
    changed = store("JPY", 5000.0, 20000.0)  # the store changes its amounts after training
    before = spec.row(Cart("standard", cart_value=4000.0), store("JPY", 3100.0, 9400.0))
    assert spec.row(Cart("standard", cart_value=4000.0), changed) == before
    restored = FeatureSpec.from_dict(spec.to_dict())
    assert restored == spec and restored.row(Cart("standard", cart_value=4000.0), changed) == before
