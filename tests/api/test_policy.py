"""The recovery policy in the retailer's configuration: defaults, versions, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartpredict.decisions.policy import DEFAULT_POLICY
from cartpredict.storage import open_store
from tests.support.factories import OPERATOR, create_retailer, retailer_spec, snapshot

POLICY: dict[str, Any] = {
    "margin": 0.4,
    "control_share": 0.2,
    "max_action_share": 0.3,
    "explore_share": 0.05,
    "actions": [
        {"name": "reminder_sms", "channel": "sms", "cost": 0.05, "discount": 0.0,
         "recovery_rate": 0.08, "decay_per_hour": 0.1},
        {"name": "popup_15", "channel": "onsite", "cost": 0.0, "discount": 0.15},
    ],
}  # fmt: skip


def test_a_retailer_without_a_policy_gets_the_documented_default_as_version_1(
    client: TestClient,
) -> None:
    auth = create_retailer(client, "s")
    body = client.get("/retailer/s", headers=auth).json()
    assert body["recovery_policy"] == DEFAULT_POLICY.to_dict()
    assert body["policy_version"] == 1
    yen = client.post("/retailer", json=retailer_spec("y", currency="JPY"), headers=OPERATOR)
    email = yen.json()["recovery_policy"]["actions"][0]
    assert email["name"] == "reminder_email" and email["cost"] == 1.6  # $0.01 in yen


def test_every_change_makes_a_new_version_and_patch_replaces_the_whole_policy(
    client: TestClient, database_url: str
) -> None:
    created = client.post("/retailer", json=retailer_spec("s", recovery_policy=POLICY),
                          headers=OPERATOR)  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["recovery_policy"] == POLICY
    auth = {"Authorization": f"Bearer {created.json()['api_key']}"}
    smaller = {"margin": 0.3, "control_share": 0.1, "actions": [POLICY["actions"][1]]}
    changed = client.patch("/retailer/s", json={"recovery_policy": smaller}, headers=auth)
    assert changed.status_code == 200, changed.text
    assert changed.json()["policy_version"] == 2
    defaults = {"max_action_share": None, "explore_share": 0.10}
    assert changed.json()["recovery_policy"] == smaller | defaults
    other = client.patch("/retailer/s", json={"precision_target": 0.8}, headers=auth)
    assert other.json()["policy_version"] == 2  # not a policy change
    store = open_store(database_url)
    try:
        versions = store.policy_versions(
            retailer_id="s", since=datetime.now(UTC) - timedelta(days=30)
        )
    finally:
        store.close()
    assert [(v, p["margin"]) for v, p, _ in versions] == [(1, 0.4), (2, 0.3)]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"margin": 0}, "recovery_policy.margin"),
        ({"margin": 1.5}, "recovery_policy.margin"),
        ({"control_share": 0.005}, "recovery_policy.control_share"),
        ({"control_share": 0.6}, "recovery_policy.control_share"),
        ({"max_action_share": 0}, "recovery_policy.max_action_share"),
        ({"explore_share": 0.6}, "recovery_policy.explore_share"),
        ({"explore_share": -0.1}, "recovery_policy.explore_share"),
        ({"actions": [{"name": "none", "channel": "email", "cost": 0, "discount": 0}]},
         "recovery_policy.actions.0.name"),
        ({"actions": [{"name": "Big Sale", "channel": "email", "cost": 0, "discount": 0}]},
         "recovery_policy.actions.0.name"),
        ({"actions": [{"name": "a", "channel": "fax", "cost": 0, "discount": 0}]},
         "recovery_policy.actions.0.channel"),
        ({"actions": [{"name": "a", "channel": "email", "cost": -1, "discount": 0}]},
         "recovery_policy.actions.0.cost"),
        ({"actions": [{"name": "a", "channel": "email", "cost": 0, "discount": 1.0}]},
         "recovery_policy.actions.0.discount"),
        ({"actions": [{"name": "a", "channel": "email", "cost": 0, "discount": 0,
                       "recovery_rate": 2}]}, "recovery_policy.actions.0.recovery_rate"),
        ({"actions": [{"name": "a", "channel": "email", "cost": 0, "discount": 0}] * 2},
         "recovery_policy.actions"),
        ({"actions": [{"name": "a", "channel": "email", "cost": 0, "discount": 0,
                       "colour": "red"}]}, "recovery_policy.actions.0.colour"),
    ],
)  # fmt: skip
def test_a_bad_policy_is_refused_naming_the_field_and_changes_nothing(
    client: TestClient, database_url: str, change: dict[str, Any], field: str
) -> None:
    auth = create_retailer(client, "s")
    before = snapshot(database_url)
    bad = {**POLICY, **change}
    patched = client.patch("/retailer/s", json={"recovery_policy": bad}, headers=auth)
    assert patched.status_code == 422, patched.text
    assert patched.json()["error"]["details"][0]["field"] == field
    assert snapshot(database_url) == before
    created = client.post("/retailer", json=retailer_spec("t", recovery_policy=bad),
                          headers=OPERATOR)  # fmt: skip
    assert created.status_code == 422
    assert created.json()["error"]["details"][0]["field"] == field
    assert snapshot(database_url) == before
