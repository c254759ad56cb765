"""Retailer configuration over HTTP."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from cartpredict.decisions.policy import DEFAULT_POLICY, default_policy
from tests.support.factories import OPERATOR, create_retailer, make_settings, retailer_spec

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_create_returns_the_config_and_a_key_once(client: TestClient) -> None:
    response = client.post("/retailer", json=retailer_spec("store_1"), headers=OPERATOR)
    assert response.status_code == 201
    assert response.headers["location"] == "/retailer/store_1"
    body = response.json()
    assert body["api_key"].startswith("cpk_")
    assert body | {"api_key": None, "last_updated": None} == retailer_spec("store_1") | {
        "pooled_learning": False,
        "precision_target": 0.7,
        "attributes": [],
        "shipping_days": {},
        "currency": "USD",
        "baseline_threshold": 20.0,
        "typical_cart_value": 60.0,
        "recovery_policy": DEFAULT_POLICY.to_dict(),
        "policy_version": 1,
        "api_key": None,
        "last_updated": None,
    }
    shown = client.get("/retailer/store_1", headers={"Authorization": f"Bearer {body['api_key']}"})
    assert "api_key" not in shown.json()


def test_get_returns_what_post_takes_plus_last_updated(client: TestClient) -> None:
    spec = retailer_spec(
        "store_1",
        pooled_learning=True,
        precision_target=0.8,
        attributes=[{"name": "coupon", "kind": "categorical"}],
        shipping_speeds=["standard", "economy", "two_day"],
        shipping_days={"economy": 7.0, "two_day": 2.0},
        currency="EUR",
        baseline_threshold=18.0,
        typical_cart_value=70.0,
    )
    key = client.post("/retailer", json=spec, headers=OPERATOR).json()["api_key"]
    body = client.get("/retailer/store_1", headers={"Authorization": f"Bearer {key}"}).json()
    assert RFC3339_UTC.match(body.pop("last_updated"))
    assert body.pop("policy_version") == 1
    assert body.pop("recovery_policy") == default_policy("EUR").to_dict()  # costs in euros
    assert body == spec


def test_a_currency_converts_the_baseline_and_typical_cart_once_or_takes_the_stores_own(
    client: TestClient,
) -> None:
    def create(rid: str, **fields: object) -> tuple[int, dict]:
        response = client.post("/retailer", json=retailer_spec(rid, **fields), headers=OPERATOR)
        return response.status_code, response.json()

    status, yen = create("yen", currency="JPY")
    assert status == 201
    assert (yen["baseline_threshold"], yen["typical_cart_value"]) == (3100.0, 9400.0)
    status, own = create("own_amounts", currency="JPY", baseline_threshold=2000.0)
    assert (own["baseline_threshold"], own["typical_cart_value"]) == (2000.0, 9400.0)
    status, unknown = create("unknown", currency="XAU")  # not in the rate table
    assert status == 422
    assert unknown["error"]["details"][0]["field"] == "currency"
    assert "baseline_threshold and typical_cart_value" in unknown["error"]["details"][0]["reason"]
    status, given = create("given", currency="XAU", baseline_threshold=0.01,
                           typical_cart_value=0.03)  # fmt: skip
    assert status == 201 and given["currency"] == "XAU"
    for bad in ({"currency": "usd"}, {"currency": "DOLLARS"}, {"baseline_threshold": 0},
                {"typical_cart_value": -5.0}, {"baseline_threshold": "20"}):  # fmt: skip
        status, body = create("bad", **bad)
        assert status == 422, bad
        assert body["error"]["details"][0]["field"] == next(iter(bad))
    auth = {"Authorization": f"Bearer {yen['api_key']}"}
    changed = client.patch("/retailer/yen", json={"baseline_threshold": 2500.0}, headers=auth)
    assert changed.status_code == 200 and changed.json()["baseline_threshold"] == 2500.0
    fixed = client.patch("/retailer/yen", json={"currency": "USD"}, headers=auth)
    assert fixed.status_code == 422
    assert fixed.json()["error"]["details"][0]["field"] == "currency"
    assert client.get("/retailer/yen", headers=auth).json()["currency"] == "JPY"


def test_operator_reads_any_retailer(client: TestClient) -> None:
    create_retailer(client, "store_1")
    assert client.get("/retailer/store_1", headers=OPERATOR).status_code == 200


def test_patch_changes_given_fields_only_and_moves_last_updated(client: TestClient) -> None:
    auth = create_retailer(client, "store_1")
    before = client.get("/retailer/store_1", headers=auth).json()
    response = client.patch("/retailer/store_1", json={"requires_account": False}, headers=auth)
    assert response.status_code == 200
    after = response.json()
    assert after["requires_account"] is False
    assert after["last_updated"] > before["last_updated"]
    assert {k: v for k, v in after.items() if k not in {"requires_account", "last_updated"}} == {
        k: v for k, v in before.items() if k not in {"requires_account", "last_updated"}
    }
    assert client.get("/retailer/store_1", headers=auth).json() == after


def test_patch_is_visible_at_once_to_predictions_in_the_same_worker(client: TestClient) -> None:
    auth = create_retailer(client, "store_1")
    body = {
        "retailer_id": "store_1",
        "cart_value": 30.0,
        "item_count": 1,
        "inactivity_hours": 1,
        "device_type": "desktop",
        "shipping_speed": "overnight",
    }
    assert client.post("/predict_cart", json=body, headers=auth).status_code == 422
    client.patch("/retailer/store_1", json={"shipping_speeds": ["overnight"]}, headers=auth)
    assert client.post("/predict_cart", json=body, headers=auth).status_code == 200


def test_delete_erases_the_retailer_and_disables_its_key(client: TestClient) -> None:
    auth = create_retailer(client, "store_1")
    assert client.delete("/retailer/store_1", headers=auth).status_code == 204
    assert client.get("/retailer/store_1", headers=OPERATOR).status_code == 404
    assert client.get("/retailer/store_1", headers=auth).status_code == 401
    # the id is free again
    assert (
        client.post("/retailer", json=retailer_spec("store_1"), headers=OPERATOR).status_code == 201
    )


def test_rotating_a_key_revokes_the_old_one(client: TestClient) -> None:
    old = create_retailer(client, "store_1")
    response = client.post("/retailer/store_1/keys", headers=old)
    assert response.status_code == 201
    new = {"Authorization": f"Bearer {response.json()['api_key']}"}
    assert client.get("/retailer/store_1", headers=old).status_code == 401
    assert client.get("/retailer/store_1", headers=new).status_code == 200


def test_creating_a_retailer_needs_the_operator_key(client: TestClient) -> None:
    auth = create_retailer(client, "store_1")
    response = client.post("/retailer", json=retailer_spec("store_2"), headers=auth)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert client.post("/retailer", json=retailer_spec("store_2")).status_code == 401


def test_without_an_operator_key_configured_no_key_is_the_operator(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, operator_key=None)
    from cartpredict.api.app import create_app

    with TestClient(create_app(settings)) as test_client:
        for token in ("", "None", "null"):
            response = test_client.post(
                "/retailer", json=retailer_spec("s"), headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "checks": {"store": "ok"}}


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) >= {
        "/retailer",
        "/retailer/{retailer_id}",
        "/retailer/{retailer_id}/keys",
        "/predict_cart",
        "/predict_cart/batch",
        "/healthz",
        "/readyz",
    }
    assert set(paths["/retailer/{retailer_id}"]) == {"get", "patch", "delete"}
