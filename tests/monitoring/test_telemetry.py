"""Telemetry is aggregate-only: after predictions and events with distinctive values, neither
/metrics nor the server's log holds any of those values or the carts' ids."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.factories import OPERATOR, OPERATOR_KEY, cart, retailer_spec
from tests.support.servers import running_server

pytestmark = pytest.mark.slow

DISTINCT = {
    "cart_value": 73519.87,
    "item_count": 8675,
    "inactivity_hours": 4242.25,
    "points": 913377,
    "campaign": "zz-distinct-campaign",
    "cart_id": "cart-zq81x",
    "event_id": "evt-qq93k",
    "bad_value": -55555.5,
}


def test_metrics_and_logs_hold_no_cart_values_or_ids(sqlite_url: str, tmp_path: Path) -> None:
    env = {"CARTPREDICT_DATABASE_URL": sqlite_url, "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY}
    log = tmp_path / "server.log"
    attributes = [
        {"name": "points", "kind": "numeric"},
        {"name": "campaign", "kind": "categorical"},
    ]
    with running_server(env, command=("serve", "--access-log"), log=log) as server:
        spec = retailer_spec("store_1", attributes=attributes)
        key = server.post("/retailer", json=spec, headers=OPERATOR).json()["api_key"]
        auth = {"Authorization": f"Bearer {key}"}
        body = cart(
            "store_1",
            cart_value=DISTINCT["cart_value"],
            item_count=DISTINCT["item_count"],
            inactivity_hours=DISTINCT["inactivity_hours"],
            attributes={"points": DISTINCT["points"], "campaign": DISTINCT["campaign"]},
        )
        for explain in (False, True, False):  # framework path first, then the fast lane
            answer = server.post("/predict_cart", json=body | {"explain": explain}, headers=auth)
            assert answer.status_code == 200, answer.text
        batch = server.post("/predict_cart/batch", json={"carts": [body] * 3}, headers=auth)
        assert batch.status_code == 200
        bad = server.post("/predict_cart", json=body | {"cart_value": DISTINCT["bad_value"]},
                          headers=auth)  # fmt: skip
        assert bad.status_code == 422
        event = {"type": "cart_updated", "event_id": DISTINCT["event_id"],
                 "cart_id": DISTINCT["cart_id"], "at": "2026-11-01T10:00:00Z",
                 "cart_value": DISTINCT["cart_value"], "item_count": 2, "device_type": "mobile",
                 "shipping_speed": "standard"}  # fmt: skip
        stored = server.post("/events", json={"retailer_id": "store_1", "events": [event]},
                             headers=auth)  # fmt: skip
        assert stored.status_code == 200, stored.text
        metrics = server.get("/metrics").text
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    # Both were really written to: the checks below are not passing on empty output.
    assert 'cartpredict_predictions_total{kind="baseline"} 6.0' in metrics
    requests = [line for line in lines if line.get("message") == "request"]
    assert {(r["path"], r["status"]) for r in requests} >= {("/predict_cart", 200),
                                                            ("/predict_cart", 422),
                                                            ("/events", 200)}  # fmt: skip
    text = metrics + "\n" + log.read_text()
    for name, value in DISTINCT.items():
        # A number counts only standing alone: the figures' own times and sums hold every
        # string of digits sooner or later (a `_created` time of 1796068675.2 holds "8675").
        alone = rf"(?<![\d.]){re.escape(str(value))}(?![\d])"
        assert re.search(alone, text) is None, name
    fields = {"time", "level", "logger", "message", "method", "path", "status"}
    assert all(set(r) == fields for r in requests)  # no client address either
