"""Decisions on /predict_cart: the contract, control groups, consent, fixed decisions, the log."""

from __future__ import annotations

import math
import random
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from cartpredict.monitoring.rollup import rollup_now
from tests.support.factories import cart, create_retailer

MESSAGES = {"email", "sms", "push"}
POLICY = {
    "margin": 0.4,
    "control_share": 0.1,
    "actions": [
        {"name": "reminder_email", "channel": "email", "cost": 0.01, "discount": 0.0,
         "recovery_rate": 0.1},
        {"name": "reminder_sms", "channel": "sms", "cost": 0.02, "discount": 0.0,
         "recovery_rate": 0.12},
        {"name": "popup_10", "channel": "onsite", "cost": 0.0, "discount": 0.10,
         "recovery_rate": 0.3},
    ],
}  # fmt: skip
CHANNEL = {a["name"]: a["channel"] for a in POLICY["actions"]}


def random_cart(rng: random.Random, i: int) -> dict[str, Any]:
    return cart(
        "s", cart_id=f"c-{i}",
        cart_value=0.0 if rng.random() < 0.05 else round(rng.lognormvariate(4, 1.0), 2),
        item_count=rng.randint(1, 6), inactivity_hours=rng.choice([0, 0.5, 1, 3, 7]),
        device_type=rng.choice(["mobile", "desktop"]), contactable=rng.random() < 0.5,
    )  # fmt: skip


def test_a_cart_without_an_id_gets_no_decision_and_one_with_gets_the_contract(
    client: TestClient,
) -> None:
    auth = create_retailer(client, "s", recovery_policy=POLICY)
    plain = client.post("/predict_cart", json=cart("s"), headers=auth).json()
    assert plain["decision"] is None
    named = client.post("/predict_cart", json=cart("s", cart_id="c-1"), headers=auth).json()
    decision = named["decision"]
    assert set(decision) == {"action", "group", "held_out", "send_after_hours", "expected_gain",
                             "reason", "policy_version", "explored", "propensity"}  # fmt: skip
    assert decision["group"] in {"treatment", "control"}
    assert decision["reason"] in {"control", "gain", "no_gain", "not_contactable", "budget",
                                  "no_policy"}  # fmt: skip
    assert decision["policy_version"] == 1
    assert decision["send_after_hours"] >= 12  # the request's inactivity_hours
    assert set(named) == set(plain)  # the seed's fields stay as they are, with a decision


def test_over_ten_thousand_carts_groups_consent_and_repeats_hold(client: TestClient) -> None:
    auth = create_retailer(client, "s", recovery_policy=POLICY)
    rng = random.Random(7)
    carts = [random_cart(rng, i) for i in range(10_000)]
    answers: list[dict[str, Any]] = []
    for start in range(0, len(carts), 1000):
        batch = {"carts": carts[start : start + 1000]}
        response = client.post("/predict_cart/batch", json=batch, headers=auth)
        assert response.status_code == 200, response.text
        answers += [p["decision"] for p in response.json()["predictions"]]
    control = [d for d in answers if d["group"] == "control"]
    se = math.sqrt(0.1 * 0.9 / len(answers))
    assert abs(len(control) / len(answers) - 0.1) < 4 * se
    assert all(d["action"] == "none" and d["reason"] == "control" for d in control)
    assert any(d["held_out"] != "none" for d in control)
    treated = [d for d in answers if d["group"] == "treatment"]
    assert {d["reason"] for d in treated} >= {"gain", "no_gain"}
    for body, d in zip(carts, answers, strict=True):
        if not body["contactable"]:
            assert CHANNEL.get(d["action"], "onsite") not in MESSAGES
            assert CHANNEL.get(d["held_out"], "onsite") not in MESSAGES
    again = rng.sample(range(len(carts)), 300)
    for i in again:  # the same cart, another call, later: the same group and action
        later = {**carts[i], "inactivity_hours": carts[i]["inactivity_hours"] + 1}
        d = client.post("/predict_cart", json=later, headers=auth).json()["decision"]
        assert (d["group"], d["action"], d["held_out"]) == (
            answers[i]["group"], answers[i]["action"], answers[i]["held_out"]
        )  # fmt: skip


def test_a_policy_change_starts_new_decisions(client: TestClient) -> None:
    auth = create_retailer(client, "s", recovery_policy=POLICY)
    body = cart("s", cart_id="c-7", cart_value=150.0, inactivity_hours=1, contactable=True)
    first = client.post("/predict_cart", json=body, headers=auth).json()["decision"]
    assert first["policy_version"] == 1
    none = {**POLICY, "actions": []}
    assert (
        client.patch("/retailer/s", json={"recovery_policy": none}, headers=auth).status_code == 200
    )
    after = client.post("/predict_cart", json=body, headers=auth).json()["decision"]
    assert after["policy_version"] == 2
    assert after["action"] == "none" and after["reason"] in {"no_policy", "control"}


def test_every_decision_is_logged_with_the_prediction(
    client: TestClient, database_url: str
) -> None:
    auth = create_retailer(client, "s", recovery_policy=POLICY)
    rng = random.Random(3)
    bodies = [random_cart(rng, i) for i in range(40)]
    decided = [client.post("/predict_cart", json=b, headers=auth).json()["decision"]
               for b in bodies]  # fmt: skip
    services = client.app.state.services
    assert services.recorder.flush(services.store) == 40
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT cart_id, policy_version, arm, action, held_out, send_after_hours, "
                "expected_gain, reason, explored, propensity FROM prediction_log ORDER BY id"
            )).all()  # fmt: skip
    finally:
        engine.dispose()
    assert [(r.cart_id, r.arm, r.action, r.held_out, r.reason, r.policy_version,
             bool(r.explored), round(r.propensity, 6)) for r in rows] == [
        (b["cart_id"], d["group"], d["action"], d["held_out"], d["reason"], d["policy_version"],
         d["explored"], d["propensity"])
        for b, d in zip(bodies, decided, strict=True)
    ]  # fmt: skip


def test_a_share_of_carts_is_explored_whatever_its_expected_gain(client: TestClient) -> None:
    explore = {**POLICY, "explore_share": 0.3}
    auth = create_retailer(client, "s", recovery_policy=explore)
    rng = random.Random(5)
    carts = [random_cart(rng, i) for i in range(2000)]
    answers = [
        p["decision"]
        for start in range(0, len(carts), 500)
        for p in client.post("/predict_cart/batch", json={"carts": carts[start : start + 500]},
                             headers=auth).json()["predictions"]
    ]  # fmt: skip
    explored = [d for d in answers if d["explored"]]
    # 30 % explored, and a further share of message actions sent at a random time
    assert 0.27 < len(explored) / len(answers) < 0.45
    assert any(d["expected_gain"] < 0 and d["action"] != "none" for d in explored)
    assert any(d["group"] == "control" and d["held_out"] != "none" for d in explored)
    for body, d in zip(carts, answers, strict=True):
        assert 0 < d["propensity"] <= 1
        named = d["held_out"] if d["group"] == "control" else d["action"]
        if not body["contactable"]:  # consent still bounds exploration
            assert CHANNEL.get(named, "onsite") not in MESSAGES
        if d["explored"] and CHANNEL[named] == "onsite":
            assert d["send_after_hours"] == body["inactivity_hours"]
    plain = {**POLICY, "explore_share": 0.0}
    assert client.patch("/retailer/s", json={"recovery_policy": plain},
                        headers=auth).status_code == 200  # fmt: skip
    again = client.post("/predict_cart/batch", json={"carts": carts[:500]}, headers=auth)
    assert not any(p["decision"]["explored"] for p in again.json()["predictions"])


def test_a_budget_acts_on_the_top_share_of_recent_expected_gains(
    client: TestClient, database_url: str
) -> None:
    budget = {**POLICY, "max_action_share": 0.3, "explore_share": 0.0}  # the budget alone
    auth = create_retailer(client, "s", recovery_policy=budget)
    rng = random.Random(11)
    carts = [random_cart(rng, i) for i in range(600)]
    for start in range(0, len(carts), 300):
        batch = {"carts": carts[start : start + 300]}
        assert client.post("/predict_cart/batch", json=batch, headers=auth).status_code == 200
    services = client.app.state.services
    rollup_now(services.store, services.recorder, clock=services.clock)
    cut = services.store.budget_cutoff(retailer_id="s")
    assert cut is not None and cut[0] == 1 and cut[1] > 0
    services.cache.clear()  # (a server hears of the new cut-off through the change feed)
    fresh = [random_cart(rng, 1000 + i) for i in range(600)]
    decided = [
        p["decision"]
        for start in range(0, 600, 300)
        for p in client.post("/predict_cart/batch", json={"carts": fresh[start : start + 300]},
                             headers=auth).json()["predictions"]
    ]  # fmt: skip
    acting = [d for d in decided if d["reason"] == "gain" or d["held_out"] != "none"]
    assert 0.2 < len(acting) / len(decided) < 0.4  # about the 30 % asked for
    assert any(d["reason"] == "budget" for d in decided)
    assert all(d["expected_gain"] >= cut[1] for d in decided if d["reason"] == "gain")
    assert all(d["expected_gain"] < cut[1] for d in decided if d["reason"] == "budget")


def test_a_fixed_decision_keeps_its_send_time_until_the_cart_is_past_it(
    client: TestClient,
) -> None:
    auth = create_retailer(client, "s", recovery_policy=POLICY)
    body = cart("s", cart_id="c-9", cart_value=400.0, inactivity_hours=0.0, contactable=True)
    first = client.post("/predict_cart", json=body, headers=auth).json()["decision"]
    named = first["action"] if first["group"] == "treatment" else first["held_out"]
    assert named != "none"  # a decision that names an action is fixed for a day
    send = first["send_after_hours"]
    for hours, expected in ((send / 2, send), (send, send), (send + 7.5, send + 7.5)):
        later = client.post("/predict_cart", json={**body, "inactivity_hours": hours},
                            headers=auth).json()["decision"]  # fmt: skip
        assert later == {**first, "send_after_hours": expected}, hours
    again = client.post("/predict_cart", json=body, headers=auth).json()["decision"]
    assert again == first  # the fixed decision itself is unchanged by the later answers
