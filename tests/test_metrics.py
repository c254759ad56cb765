"""/metrics counts every response and every scored cart, whichever path served them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cartpredict.api.app import create_app

from .conftest import OPERATOR, cart, create_retailer, make_settings


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def predictions(client: TestClient, kind: str) -> float:
    return samples(client)[("cartpredict_predictions_total", (("kind", kind),))]


def responses(client: TestClient, route: str, status: int) -> float:
    key = ("cartpredict_http_responses_total", (("route", route), ("status", str(status))))
    return samples(client).get(key, 0.0)


@pytest.mark.parametrize("fast_lane", [True, False])
def test_every_scored_cart_is_counted_once(sqlite_url: str, fast_lane: bool) -> None:
    with TestClient(create_app(make_settings(sqlite_url), fast_lane=fast_lane)) as client:
        key = create_retailer(client, "store_1")
        for _ in range(3):  # the first one fills the cache through the framework
            assert (
                client.post("/predict_cart", json=cart("store_1"), headers=key).status_code == 200
            )
        batch = {"carts": [cart("store_1")] * 4}
        assert client.post("/predict_cart/batch", json=batch, headers=key).status_code == 200
        refused = {"carts": [cart("store_1"), cart("store_1", shipping_speed="overnight")]}
        assert client.post("/predict_cart/batch", json=refused, headers=key).status_code == 422
        assert predictions(client, "baseline") == 7
        assert responses(client, "/predict_cart", 200) == 3
        assert responses(client, "/predict_cart/batch", 422) == 1


def test_server_errors_are_counted(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(make_settings(sqlite_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        create_retailer(client, "store_1")

        def broken(*_: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setattr(app.state.services.models, "info", broken)
        answer = client.get("/retailer/store_1/model", headers=OPERATOR)
        assert answer.status_code == 500
        assert answer.json()["error"]["code"] == "internal_error"
        assert responses(client, "/retailer/{retailer_id}/model", 500) == 1
        client.get("/no/such/path")
        assert responses(client, "other", 404) == 1


def test_cache_lookups_and_the_models_served_are_counted(client: TestClient) -> None:
    auth_a = create_retailer(client, "store_a")
    auth_b = create_retailer(client, "store_b")
    before = samples(client)

    def lookups(now: dict[Any, float], cache: str, result: str) -> float:
        key = ("cartpredict_cache_lookups_total", (("cache", cache), ("result", result)))
        return now.get(key, 0.0) - before.get(key, 0.0)

    for _ in range(3):
        for rid, auth in (("store_a", auth_a), ("store_b", auth_b)):
            assert client.post("/predict_cart", json=cart(rid), headers=auth).status_code == 200
    after = samples(client)
    assert lookups(after, "tenant", "hit") >= 4  # the first of each was a miss, then cached
    assert lookups(after, "tenant", "miss") >= 2
    assert lookups(after, "key", "hit") >= 4
    served = ("cartpredict_model_versions_served", (("kind", "baseline"),))
    assert after[served] == 1.0  # both retailers, one version: the baseline rule
    assert after[("cartpredict_cached_retailers", (("kind", "baseline"),))] == 2.0
