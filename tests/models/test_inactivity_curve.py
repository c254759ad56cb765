"""A named cart's scores over inactivity: the score itself exactly ``score``'s, and the curve
the model's own answer for the cart after those hours."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from cartpredict.models.features import FeatureSpec
from cartpredict.models.logistic import LogisticModel
from cartpredict.storage import Retailer
from tests.support.factories import Cart

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SHOP = Retailer(retailer_id="r", requires_account=True, payment_options=("card", "paypal"),
                shipping_speeds=("standard", "express"), pooled_learning=True,
                precision_target=0.7, created_at=T0, last_updated=T0)  # fmt: skip


def model(spec: FeatureSpec, seed: int) -> LogisticModel:
    rng = random.Random(seed)
    weights = tuple(rng.uniform(-2, 2) for _ in spec.names())
    return LogisticModel(version="m", spec=spec, intercept=rng.uniform(-1, 1), weights=weights,
                         threshold=0.5)  # fmt: skip


SPECS = [
    FeatureSpec(),
    FeatureSpec(
        site=True, interactions=(("log_value", "log_items"),), centers=(("log_value", 3.5),)
    ),
    FeatureSpec(version=1),
    FeatureSpec(interactions=(("log_inactivity", "log_value"),)),  # scored row by row
]


@pytest.mark.parametrize("spec", SPECS, ids=["v2", "site", "v1", "inactivity-product"])
def test_the_score_is_scores_and_the_curve_the_models_answer_later(spec: FeatureSpec) -> None:
    rng = random.Random(3)
    for seed in range(20):
        m = model(spec, seed)
        cart = Cart(round(rng.lognormvariate(4, 1.2), 2), rng.randint(0, 9),
                    round(rng.uniform(0, 30), 2), rng.choice(["mobile", "desktop", "tablet"]),
                    rng.choice(["standard", "express"]))  # fmt: skip
        score, curve = m.score_over_inactivity(cart, SHOP)
        assert score == m.score(cart, SHOP)  # to the last bit
        for hours in (0.0, 1.0, 2.0, 3.0, 6.0, 12.0, cart.inactivity_hours + 5):
            later = Cart(cart.cart_value, cart.item_count, hours, cart.device_type,
                         cart.shipping_speed)  # fmt: skip
            assert curve(hours) == pytest.approx(m.p_abandoned(later, SHOP), rel=1e-9, abs=1e-12)
