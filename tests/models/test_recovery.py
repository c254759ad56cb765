"""The recovery model as served: its features row by row are the trainer's column by column,
its rate over send time is σ of their dot product, and it survives its stored form."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cartpredict.learning.fit import sigmoid
from cartpredict.learning.uplift import recovery_matrix
from cartpredict.models.recovery import (
    RecoveryModel,
    cart_part,
    feature_names,
    timing_part,
)

CARTS = st.lists(
    st.tuples(
        st.floats(0.0, 20_000.0),
        st.integers(0, 80),
        st.sampled_from(["mobile", "desktop", "tablet", "unknown"]),
        st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.5, 6.0, 9.0, 12.0, 30.5]),
    ),
    min_size=1,
    max_size=30,
)


@given(carts=CARTS, channel=st.sampled_from(["email", "sms", "push", "onsite"]))
def test_the_row_and_the_columns_are_one_feature_definition(carts: list, channel: str) -> None:
    value, items, device, send_h = (np.array(c) for c in zip(*carts, strict=True))
    columns = recovery_matrix(value, items, device, send_h, channel)
    assert columns.shape == (len(carts), len(feature_names(channel)))
    for row, (v, n, d, h) in zip(columns, carts, strict=True):
        part = cart_part(v, n, d)
        expected = part + (timing_part(part, h) if channel != "onsite" else [])
        assert row.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)


@given(carts=CARTS, seed=st.integers(0, 10_000), channel=st.sampled_from(["email", "onsite"]))
def test_the_served_rate_is_the_sigmoid_of_the_dot_product(
    carts: list, seed: int, channel: str
) -> None:
    rng = np.random.default_rng(seed)
    names = feature_names(channel)
    model = RecoveryModel("a", channel, float(rng.normal(-3, 1)),
                          tuple(rng.normal(0, 0.3, len(names)).tolist()), 0.2)  # fmt: skip
    value, items, device, send_h = (np.array(c) for c in zip(*carts, strict=True))
    z = model.intercept + recovery_matrix(value, items, device, send_h, channel) @ model.weights
    expected = sigmoid(z)
    served = [model.rate(v, n, d, h) for v, n, d, h in carts]
    assert served == pytest.approx(expected.tolist(), rel=1e-9, abs=1e-12)
    assert RecoveryModel.from_dict(model.to_dict()) == model


def test_an_on_site_rate_does_not_depend_on_the_send_time() -> None:
    model = RecoveryModel("p", "onsite", -3.0, tuple(0.1 for _ in feature_names("onsite")))
    rates = model.rates(80.0, 1, "mobile")
    assert rates(0.0) == rates(12.0) == pytest.approx(1 / (1 + math.exp(-(-3.0 + sum(
        0.1 * x for x in cart_part(80.0, 1, "mobile"))))))  # fmt: skip


def test_a_model_needs_one_weight_per_feature() -> None:
    with pytest.raises(ValueError, match="one weight per recovery feature"):
        RecoveryModel("a", "email", -3.0, (0.0,) * len(feature_names("onsite")))
