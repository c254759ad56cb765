"""Events in over HTTP; the model endpoint; explanations; a promotion reaches a live server."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartpredict.learning.simulate import simulate
from cartpredict.learning.training import Trainer
from cartpredict.storage import open_store
from tests.support.factories import (
    OPERATOR,
    OPERATOR_KEY,
    cart,
    create_retailer,
    retailer_spec,
    snapshot,
)
from tests.support.servers import running_server


def updated(event_id: str, **changes: Any) -> dict[str, Any]:
    event = {
        "event_id": event_id,
        "type": "cart_updated",
        "cart_id": "c-1",
        "at": "2026-11-01T10:00:00Z",
        "cart_value": 45.99,
        "item_count": 3,
        "device_type": "mobile",
        "shipping_speed": "standard",
    }
    return event | changes


def purchased(event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "purchased",
        "cart_id": "c-1",
        "at": "2026-11-01T12:00:00Z",
    }


def test_events_are_stored_once_however_often_they_are_sent(client: TestClient) -> None:
    auth = create_retailer(client, "s")
    batch = {"retailer_id": "s", "events": [updated("e-1"), purchased("e-2")]}
    first = client.post("/events", json=batch, headers=auth)
    assert first.status_code == 200
    assert first.json() == {"retailer_id": "s", "received": 2, "stored": 2, "duplicates": 0}
    again = client.post("/events", json=batch, headers=auth).json()
    assert (again["stored"], again["duplicates"]) == (0, 2)


def test_one_id_for_two_different_events_in_a_batch_is_refused(client: TestClient) -> None:
    auth = create_retailer(client, "s")
    same = {"retailer_id": "s", "events": [updated("e-1"), updated("e-1")]}
    assert client.post("/events", json=same, headers=auth).json()["duplicates"] == 1
    clash = {"retailer_id": "s", "events": [updated("e-2"), updated("e-2", cart_id="c-9")]}
    refused = client.post("/events", json=clash, headers=auth)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "events.1.event_id"


def test_a_batch_with_bad_events_is_refused_whole_with_every_problem(
    client: TestClient, database_url: str
) -> None:
    auth = create_retailer(client, "s")
    before = snapshot(database_url)
    batch = {
        "retailer_id": "s",
        "events": [
            updated("e-1"),
            updated("e-2", shipping_speed="overnight"),
            updated("e-3", at="2099-01-01T00:00:00Z"),
            updated("e-4", attributes={"coupon": "X"}),
        ],
    }
    response = client.post("/events", json=batch, headers=auth)
    assert response.status_code == 422
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert fields == ["events.1.shipping_speed", "events.2.at", "events.3.attributes.coupon"]
    assert snapshot(database_url) == before


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (updated("e-1", email="a@b.c"), "events.0.email"),
        (updated("e-1", cart_value=-1), "events.0.cart_value"),
        (updated("e-1", at="2026-11-01T10:00:00"), "events.0.at"),
        ({"event_id": "e-1", "type": "viewed", "cart_id": "c", "at": "2026-11-01T10:00:00Z"},
         "events.0"),
        (purchased("e 1"), "events.0.event_id"),
    ],
)  # fmt: skip
def test_malformed_events_name_their_index_and_field(
    client: TestClient, event: dict[str, Any], field: str
) -> None:
    auth = create_retailer(client, "s")
    response = client.post("/events", json={"retailer_id": "s", "events": [event]}, headers=auth)
    assert response.status_code == 422
    assert field in [d["field"] for d in response.json()["error"]["details"]]


def test_declared_attributes_are_checked_on_carts(client: TestClient) -> None:
    attributes = [{"name": "coupon", "kind": "categorical"}, {"name": "visits", "kind": "numeric"}]
    auth = create_retailer(client, "s", attributes=attributes)
    good = cart("s", attributes={"coupon": "WELCOME", "visits": 3})
    assert client.post("/predict_cart", json=good, headers=auth).status_code == 200
    bad = cart("s", attributes={"coupon": 5, "visits": "many", "other": 1})
    details = client.post("/predict_cart", json=bad, headers=auth).json()["error"]["details"]
    assert {d["field"] for d in details} == {
        "attributes.coupon",
        "attributes.visits",
        "attributes.other",
    }


def test_personal_data_cannot_be_declared_as_an_attribute(client: TestClient) -> None:
    spec = retailer_spec("s", attributes=[{"name": "email", "kind": "categorical"}])
    response = client.post("/retailer", json=spec, headers=OPERATOR)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "attributes.0.name"


def test_before_training_the_model_endpoint_describes_the_baseline(client: TestClient) -> None:
    auth = create_retailer(client, "s")
    body = client.get("/retailer/s/model", headers=auth).json()
    assert body["kind"] == "baseline"
    assert body["weights"] is None
    explained = client.post("/predict_cart", json=cart("s", explain=True), headers=auth).json()
    assert explained["contributions"] is None
    conflict = client.post("/retailer/s/model/rollback", headers=auth)
    assert conflict.status_code == 409


@pytest.mark.slow
def test_a_promoted_model_is_served_by_a_running_server_without_restart(sqlite_url: str) -> None:
    config = {
        "retailer_id": "live",
        "requires_account": False,
        "payment_options": ["credit_card"],
        "shipping_speeds": ["standard", "express"],
        "pooled_learning": False,
    }
    sim = simulate(retailers=1, days=14, seed=4, carts_per_day=200, configs=[config])
    env = {"CARTPREDICT_DATABASE_URL": sqlite_url, "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY}
    with running_server(env) as server:
        key = server.post("/retailer", json=config, headers=OPERATOR).json()["api_key"]
        auth = {"Authorization": f"Bearer {key}"}
        events = [{k: v for k, v in e.items() if k != "retailer_id"} for e in sim.events()]
        for start in range(0, len(events), 5000):
            batch = {"retailer_id": "live", "events": events[start : start + 5000]}
            assert server.post("/events", json=batch, headers=auth).status_code == 200
        body = cart("live", explain=True)
        assert (
            server.post("/predict_cart", json=body, headers=auth).json()["model_version"]
            == "baseline"
        )

        store = open_store(sqlite_url)
        as_of = sim.end + timedelta(days=1)
        try:
            outcome = Trainer(store, clock=lambda: as_of).train_retailer("live", as_of=as_of)
        finally:
            store.close()
        assert outcome.status == "promoted"

        start_wait = time.monotonic()
        while (answer := server.post("/predict_cart", json=body, headers=auth).json())[
            "model_version"
        ] != outcome.version_id:
            assert time.monotonic() - start_wait < 2.0, "promotion not served within 2 s"
            time.sleep(0.02)
        assert answer["contributions"]["intercept"] != 0
        info = server.get("/retailer/live/model", headers=auth).json()
        assert info["model_version"] == outcome.version_id
        assert info["kind"] == "retailer"
        assert set(info["weights"]) >= {"log_value", "log_inactivity", "device_mobile"}
        assert info["threshold"] == answer["threshold"]


ECONOMY = "international_economy_ground_svc"  # a store's own speed, as long as a name may be


def test_a_yen_store_with_speeds_of_its_own_onboards_sends_events_trains_and_is_predicted(
    client: TestClient, database_url: str
) -> None:
    seed = {"retailer_id": "own", "requires_account": False, "payment_options": ["card"],
            "shipping_speeds": ["standard", "express"], "pooled_learning": False}  # fmt: skip
    sim = simulate(retailers=1, days=10, seed=6, carts_per_day=120, configs=[seed])
    renamed = {"standard": ECONOMY}  # the simulator's standard, under the store's own name
    config = {**seed, "shipping_speeds": [ECONOMY, "express"], "shipping_days": {ECONOMY: 7},
              "currency": "JPY"}  # fmt: skip
    created = client.post("/retailer", json=config, headers=OPERATOR)
    assert created.status_code == 201, created.text
    # $20 and $60 at the dated table's 157.25 yen to the dollar, to two figures
    assert created.json()["baseline_threshold"] == 3100.0
    assert created.json()["typical_cart_value"] == 9400.0
    auth = {"Authorization": f"Bearer {created.json()['api_key']}"}
    rule = client.get("/retailer/own/model", headers=auth).json()
    assert rule["kind"] == "baseline"
    assert rule["description"] == "abandoned when cart_value < 3100 JPY"
    untrained = client.post("/predict_cart", json=cart("own", cart_value=3000.0,
                            shipping_speed=ECONOMY), headers=auth).json()  # fmt: skip
    assert untrained["prediction"] == "abandoned"  # below ¥3,100, where $3,000 would not be
    events = []
    for e in sim.events():
        event = {k: v for k, v in e.items() if k != "retailer_id"}
        if "shipping_speed" in event:
            event["shipping_speed"] = renamed.get(event["shipping_speed"], event["shipping_speed"])
        if "cart_value" in event:
            event["cart_value"] = round(event["cart_value"] * 157.25)  # the same carts, in yen
        events.append(event)
    for start in range(0, len(events), 5000):
        batch = {"retailer_id": "own", "events": events[start : start + 5000]}
        assert client.post("/events", json=batch, headers=auth).status_code == 200
    as_of = sim.end + timedelta(days=1)
    store = open_store(database_url)
    try:
        outcome = Trainer(store, clock=lambda: as_of).train_retailer("own", as_of=as_of)
    finally:
        store.close()
    assert outcome.status == "promoted"
    client.app.state.services.cache.clear()  # (a server would see the promotion in the feed)
    body = cart("own", shipping_speed=ECONOMY, cart_value=2500.0, explain=True, cart_id="c-9")
    answer = client.post("/predict_cart", json=body, headers=auth).json()
    services = client.app.state.services
    assert services.recorder.flush(services.store) == 1  # a long speed name fits the log
    assert answer["model_version"] == outcome.version_id
    assert answer["contributions"]["below_threshold"] != 0.0  # ¥2,500 < ¥3,100
    assert all(
        answer["contributions"][f"ship_{s}"] == 0.0
        for s in ("express", "overnight", "same_day", "pickup")
    )  # economy: standard
    refused = client.post("/predict_cart", json=cart("own", shipping_speed="standard"),
                          headers=auth)  # fmt: skip
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "shipping_speed"
    dropped = client.patch("/retailer/own", json={"shipping_speeds": ["express"]}, headers=auth)
    assert dropped.status_code == 422
    assert dropped.json()["error"]["details"][0]["field"] == "shipping_days." + ECONOMY
    kept = client.get("/retailer/own", headers=auth).json()
    assert kept["shipping_speeds"] == [ECONOMY, "express"]
    assert kept["shipping_days"] == {ECONOMY: 7.0}
