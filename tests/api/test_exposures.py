"""Exposure events: what the retailer did with each decision, checked against the server's
groups and the policies in force, stored with the other events, left out of training."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from cartpredict.storage import open_store
from tests.support.factories import cart, create_retailer, snapshot

POLICY = {
    "margin": 0.4,
    "control_share": 0.5,
    "actions": [
        {"name": "reminder_email", "channel": "email", "cost": 0.01, "discount": 0.0},
        {"name": "popup_10", "channel": "onsite", "cost": 0.0, "discount": 0.1},
    ],
}


def decided(client: TestClient, auth: dict[str, str], n: int) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for i in range(n):
        body = cart("s", cart_id=f"c-{i}", cart_value=90.0, inactivity_hours=0, contactable=True)
        out.append((f"c-{i}", client.post("/predict_cart", json=body, headers=auth).json()))
    return out


def action_event(i: int, cart_id: str, action: str, group: str, **more: Any) -> dict[str, Any]:
    return {"event_id": f"x-{i}", "type": "action", "cart_id": cart_id,
            "at": later(), "action": action, "group": group, **more}  # fmt: skip


def stored(database_url: str) -> dict[str, Any]:
    """Every table but the prediction log, which the server flushes when it likes."""
    tables = snapshot(database_url)
    return {name: rows for name, rows in tables.items() if name != "prediction_log"}


def later() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_exposures_of_both_groups_are_stored_once(client: TestClient, database_url: str) -> None:
    auth = create_retailer(client, "s", recovery_policy=POLICY)
    carts = decided(client, auth, 20)
    events = []
    for i, (cart_id, answer) in enumerate(carts):
        d = answer["decision"]
        action = d["action"] if d["group"] == "treatment" else d["held_out"]
        events.append(action_event(i, cart_id, action, d["group"], delivered=i % 3 != 0))
    assert {e["group"] for e in events} == {"treatment", "control"}
    sent = client.post("/events", json={"retailer_id": "s", "events": events}, headers=auth)
    assert sent.status_code == 200, sent.text
    assert sent.json()["stored"] == 20
    again = client.post("/events", json={"retailer_id": "s", "events": events}, headers=auth)
    assert again.json() == {"retailer_id": "s", "received": 20, "stored": 0, "duplicates": 20}
    store = open_store(database_url)
    try:
        exposures = store.exposures(retailer_id="s")
        assert sorted((e.cart_id, e.action, e.group) for e in exposures) == sorted(
            (e["cart_id"], e["action"], e["group"]) for e in events
        )
        assert store.events(retailer_id="s") == []  # not cart activity
        assert list(store.event_rows(retailer_id="s")) == []  # training never sees them
    finally:
        store.close()


def test_a_wrong_group_or_an_action_of_no_policy_is_refused_and_nothing_is_stored(
    client: TestClient, database_url: str
) -> None:
    auth = create_retailer(client, "s", recovery_policy=POLICY)
    carts = decided(client, auth, 10)
    cart_id, answer = carts[0]
    group = answer["decision"]["group"]
    other = "control" if group == "treatment" else "treatment"
    good = action_event(0, cart_id, "reminder_email", group)
    before = stored(database_url)
    for bad, field in (
        (action_event(1, cart_id, "reminder_email", other), "events.1.group"),
        (action_event(1, cart_id, "sms_blast", group), "events.1.action"),
        (action_event(1, cart_id, "none", group), "events.1.action"),
        (action_event(1, cart_id, "reminder_email", "both"), "events.1.group"),
        (action_event(1, cart_id, "reminder_email", group, delivered="yes"), "events.1.delivered"),
    ):
        body = {"retailer_id": "s", "events": [good, bad]}
        refused = client.post("/events", json=body, headers=auth)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["error"]["details"][0]["field"] == field
        assert stored(database_url) == before  # the good event was not stored either
