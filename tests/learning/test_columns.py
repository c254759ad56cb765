"""Column-at-a-time scoring builds the same features and probabilities as one cart at a time."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from cartpredict.learning.columns import CartColumns, design_matrix, p_abandoned
from cartpredict.models.features import FeatureSpec
from cartpredict.models.logistic import LogisticModel
from cartpredict.storage import Retailer
from tests.support.factories import Cart

NOW = datetime(2026, 11, 1, tzinfo=UTC)
RETAILER = Retailer(
    retailer_id="r",
    requires_account=True,
    payment_options=("credit_card", "paypal"),
    shipping_speeds=("standard", "express", "pickup"),
    pooled_learning=True,
    precision_target=0.7,
    created_at=NOW,
    last_updated=NOW,
    attributes=(("views", "numeric"), ("channel", "categorical")),
)


def random_carts(n: int, seed: int) -> list[Cart]:
    rng = random.Random(seed)
    carts = []
    for _ in range(n):
        attributes: dict[str, float | str] = {}
        if rng.random() < 0.7:
            attributes["views"] = rng.choice([0, -3.5, rng.uniform(0, 500), True, 12])
        if rng.random() < 0.7:
            attributes["channel"] = rng.choice(["email", "search", "ads", "other"])
        carts.append(
            Cart(
                cart_value=rng.choice([0.0, 19.99, 20.0, rng.lognormvariate(4, 1.5)]),
                item_count=rng.randint(0, 30),
                inactivity_hours=rng.uniform(0, 300),
                device_type=rng.choice(["mobile", "desktop", "tablet", "unknown"]),
                shipping_speed=rng.choice(
                    ["standard", "express", "overnight", "same_day", "pickup"]
                ),
                attributes=attributes,
            )
        )
    return carts


SPECS = [
    FeatureSpec(),
    FeatureSpec(site=True),
    FeatureSpec(
        site=True,
        numeric=("views",),
        categorical=(("channel", ("ads", "email", "search")),),
        interactions=(("log_value", "views:log"), ("views:pos", "channel=email")),
        centers=(("log_value", 3.9), ("views:log", 1.1), ("views:pos", 0.4)),
    ),
    FeatureSpec(cart=False, numeric=("views", "absent"), categorical=(("missing", ("x",)),)),
    FeatureSpec(version=1),  # models stored before the current feature set
    FeatureSpec(version=1, site=True),
    FeatureSpec(value_unit=60 / 9400, low_value=3100.0),  # a yen store's own model
]
YEN_STORE = replace(RETAILER, currency="JPY", baseline_threshold=3100.0, typical_cart_value=9400.0)


def test_the_design_matrix_is_the_rows_stacked() -> None:
    carts = random_carts(500, seed=3)
    columns = CartColumns.from_carts(carts)
    for spec in SPECS:
        for retailer in (RETAILER, YEN_STORE):
            expected = np.array([spec.row(c, retailer) for c in carts])
            got = design_matrix(spec, columns, retailer)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_probabilities_match_the_served_model() -> None:
    carts = random_carts(500, seed=4)
    columns = CartColumns.from_carts(carts)
    rng = random.Random(1)
    for spec in SPECS:
        model = LogisticModel(
            version="v",
            spec=spec,
            intercept=rng.uniform(-2, 2),
            weights=tuple(rng.uniform(-3, 3) for _ in spec.names()),
            threshold=0.5,
        )
        expected = [model.p_abandoned(c, RETAILER) for c in carts]
        np.testing.assert_allclose(p_abandoned(model, columns, RETAILER), expected, rtol=1e-9)
