"""Predictions: the seed's contract, the baseline rule, batches."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cartpredict.models.baseline import BAYMARD_ABANDONMENT_RATE, BaselineRule
from cartpredict.serving.schemas import PredictionOut
from tests.support.factories import OPERATOR, cart, create_retailer


def test_response_has_the_seeds_fields_and_more(client: TestClient) -> None:
    auth = create_retailer(client, "store_12345")
    response = client.post("/predict_cart", json=cart("store_12345"), headers=auth)
    assert response.status_code == 200
    body = response.json()
    PredictionOut.model_validate(body)
    assert body["retailer_id"] == "store_12345"
    assert body["prediction"] in {"abandoned", "purchased"}
    assert 0.0 <= body["probability"] <= 1.0
    assert body["model_version"] == "baseline"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, "abandoned"), (19.99, "abandoned"), (20.0, "purchased"), (450.0, "purchased")],
)
def test_until_a_model_is_trained_the_baseline_rule_serves(
    client: TestClient, value: float, expected: str
) -> None:
    auth = create_retailer(client, "s")
    body = client.post("/predict_cart", json=cart("s", cart_value=value), headers=auth).json()
    assert body["prediction"] == expected
    assert body["abandonment_probability"] == pytest.approx(BAYMARD_ABANDONMENT_RATE)
    confidence = (
        body["abandonment_probability"]
        if expected == "abandoned"
        else 1 - body["abandonment_probability"]
    )
    assert body["probability"] == pytest.approx(confidence)
    assert body["threshold"] is None


def test_the_baseline_fits_each_side_of_the_rule() -> None:
    values = [5.0] * 90 + [50.0] * 90
    abandoned = [True] * 81 + [False] * 9 + [True] * 45 + [False] * 45
    rule = BaselineRule(prior_strength=0).fit(values, abandoned, threshold=20.0)
    assert rule.p_abandoned_below_ == pytest.approx(0.9)
    assert rule.p_abandoned_above_ == pytest.approx(0.5)
    shrunk = BaselineRule(prior=0.7, prior_strength=10).fit([5.0], [False], threshold=20.0)
    assert shrunk.p_abandoned_below_ == pytest.approx(7 / 11)
    assert shrunk.p_abandoned_above_ == pytest.approx(0.7)


def test_batch_answers_one_prediction_per_cart_in_order(client: TestClient) -> None:
    auth = create_retailer(client, "s")
    values = [5.0, 500.0, 19.0, 21.0, 0.0]
    carts = [cart("s", cart_value=v) for v in values]
    response = client.post("/predict_cart/batch", json={"carts": carts}, headers=auth)
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert [p["prediction"] for p in predictions] == [
        "abandoned",
        "purchased",
        "abandoned",
        "purchased",
        "abandoned",
    ]
    single = [client.post("/predict_cart", json=c, headers=auth).json() for c in carts]
    assert predictions == single


def test_operator_batches_across_retailers(client: TestClient) -> None:
    create_retailer(client, "a")
    create_retailer(client, "b")
    carts = [cart("a"), cart("b"), cart("a")]
    predictions = client.post("/predict_cart/batch", json={"carts": carts}, headers=OPERATOR).json()
    assert [p["retailer_id"] for p in predictions["predictions"]] == ["a", "b", "a"]


def test_batch_takes_up_to_1000_carts(client: TestClient) -> None:
    auth = create_retailer(client, "s")
    ok = client.post("/predict_cart/batch", json={"carts": [cart("s")] * 1000}, headers=auth)
    assert ok.status_code == 200
    assert len(ok.json()["predictions"]) == 1000
    too_many = client.post("/predict_cart/batch", json={"carts": [cart("s")] * 1001}, headers=auth)
    assert too_many.status_code == 422
    assert too_many.json()["error"]["details"][0]["field"] == "carts"


def test_batch_reports_every_bad_cart_by_index(client: TestClient) -> None:
    auth = create_retailer(client, "s")
    carts = [cart("s"), cart("s", shipping_speed="overnight"), cart("s"), cart("s", item_count=-1)]
    response = client.post("/predict_cart/batch", json={"carts": carts}, headers=auth)
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert "carts.3.item_count" in fields
    carts[3] = cart("s")
    response = client.post("/predict_cart/batch", json={"carts": carts}, headers=auth)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["carts.1.shipping_speed"]
