"""The fast lane answers ``POST /predict_cart`` exactly as the FastAPI route does.

Every request goes to the service twice: through the fast lane, and straight to the FastAPI
app it sits in front of. Status, headers that matter and body bytes must be equal. A counter on
the FastAPI app shows which requests the lane answered itself, so the comparison cannot pass
by the lane handing everything on.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartpredict.api.app import create_app
from cartpredict.api.fastlane import FastLane
from cartpredict.models.features import FeatureSpec
from cartpredict.models.logistic import LogisticModel
from cartpredict.monitoring.metrics import Metrics
from cartpredict.storage import POOLED_SCOPE, ModelVersion
from tests.api.test_bad_input import CASES
from tests.support.asgi import Counting
from tests.support.factories import OPERATOR, cart, create_retailer, make_settings
from tests.support.feeds import await_a_feed_poll

NOW = datetime(2026, 11, 1, tzinfo=UTC)


class Pair:
    def __init__(self, lane: TestClient, plain: TestClient, inner: Counting) -> None:
        self.lane, self.plain, self.inner = lane, plain, inner

    def both(self, **kwargs: Any) -> tuple[Any, bool]:
        """Send to both; assert the same answer; return it and whether the lane answered."""
        before = self.inner.calls
        fast = self.lane.post("/predict_cart", **kwargs)
        answered_by_lane = self.inner.calls == before
        slow = self.plain.post("/predict_cart", **kwargs)
        assert fast.status_code == slow.status_code, (kwargs, fast.text, slow.text)
        assert fast.content == slow.content, kwargs
        for header in ("content-type", "www-authenticate", "allow", "retry-after"):
            assert fast.headers.get(header) == slow.headers.get(header), header
        return fast, answered_by_lane


def logistic(scope: str, version_id: str, *, attributes: bool = False) -> ModelVersion:
    spec = FeatureSpec(
        site=scope == POOLED_SCOPE,
        numeric=("page_views",) if attributes else (),
        categorical=(("channel", ("email", "search")),) if attributes else (),
        interactions=(("log_value", "log_items"),),
        centers=(("log_items", 1.2), ("log_value", 3.5)),
    )
    rng = random.Random(version_id)
    model = LogisticModel(
        version=version_id,
        spec=spec,
        intercept=0.3,
        weights=tuple(rng.uniform(-1, 1) for _ in spec.names()),
        threshold=0.55,
    )
    return ModelVersion(
        version_id=version_id,
        scope=scope,
        created_at=NOW,
        train_start=NOW,
        train_end=NOW,
        n_train=100,
        threshold=0.55,
        metrics={},
        model=model.to_dict(),
    )


@pytest.fixture
def pair(database_url: str) -> Iterator[Pair]:
    plain_app = create_app(make_settings(database_url), fast_lane=False)
    services = plain_app.state.services
    inner = Counting(plain_app)
    lane = FastLane(inner, services=services, metrics=Metrics())
    with TestClient(lane) as lane_client:  # runs the app's lifespan once, through the lane
        yield Pair(lane_client, TestClient(plain_app), inner)


def test_the_lane_and_the_framework_give_the_same_answers(pair: Pair) -> None:
    keys = {
        "own": create_retailer(pair.plain, "own", attributes=attrs()),
        "pooled": create_retailer(pair.plain, "pooled", pooled_learning=True),
        "base": create_retailer(pair.plain, "base"),
    }
    store = pair.plain.app.state.services.store
    for version in (logistic("own", "m-own", attributes=True), logistic(POOLED_SCOPE, "m-pool")):
        store.add_model_version(version=version)
        store.set_served(scope=version.scope, version_id=version.version_id, action="promote",
                         at=NOW)  # fmt: skip
    rng = random.Random(5)
    answered = 0
    for i in range(300):
        rid = rng.choice(sorted(keys))
        body = cart(
            rid,
            cart_value=round(rng.lognormvariate(4, 1.2), 2),
            item_count=rng.randint(0, 12),
            inactivity_hours=round(rng.uniform(0, 48), 3),
            device_type=rng.choice(["mobile", "desktop", "tablet", "unknown"]),
            shipping_speed=rng.choice(["standard", "express"]),
            explain=i % 7 == 0,
        )
        if i % 3:  # a named cart gets a decision
            body["cart_id"] = f"c-{rng.randint(0, 60)}"
            body["contactable"] = bool(i % 5)
        if rid == "own" and i % 2:
            body["attributes"] = {"page_views": rng.randint(0, 40), "channel": "email"}
        response, by_lane = pair.both(json=body, headers=keys[rid])
        assert response.status_code == 200, response.text
        answered += by_lane
    # Only a retailer's first request (its key and config not yet cached) takes the long way.
    assert answered >= 300 - 2 * len(keys)
    assert {pair.both(json=cart(r), headers=keys[r])[0].json()["model_version"] for r in keys} == {
        "m-own",
        "m-pool",
        "baseline",
    }


def test_a_key_cannot_score_another_tenants_cart_even_with_both_cached(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane has everything it would need to score B's cart for A's key: A's key and B's
    retailer cached, and nothing invalidated meanwhile. Only its retailer check stops it; the
    framework then gives the one 404, the same as for a retailer that does not exist."""
    a = create_retailer(pair.plain, "store_a")
    b = create_retailer(pair.plain, "store_b")
    services = pair.plain.app.state.services
    await_a_feed_poll(monkeypatch, services.store)  # the creations are applied: none pending
    for key, rid in ((a, "store_a"), (b, "store_b")):
        assert pair.both(json=cart(rid), headers=key)[0].status_code == 200  # now cached
    assert services.auth.cached(a["Authorization"].removeprefix("Bearer ")) is not None
    assert services.tenants.cached("store_b") is not None
    epoch = services.cache.epoch

    response, by_lane = pair.both(json=cart("store_b"), headers=a)

    assert services.cache.epoch == epoch, "the cache changed during the request: nothing proven"
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "retailer_not_found"
    assert not by_lane  # refused by the lane's check: the framework answered
    nobody = pair.both(json=cart("store_c"), headers=a)[0]
    assert (nobody.status_code, nobody.content) == (response.status_code, response.content)
    assert pair.both(json=cart("store_b"), headers=b)[0].status_code == 200


def test_a_key_without_the_predict_scope_is_refused_by_the_framework(pair: Pair) -> None:
    """Its key and retailer cached, the lane would have all it needs: its scope check alone
    hands the request to the framework, whose 403 names the scope."""
    own = create_retailer(pair.plain, "store_1")
    assert pair.both(json=cart("store_1"), headers=own)[0].status_code == 200  # retailer cached
    body = {"name": "dashboard", "scopes": ["read"]}
    key = pair.plain.post("/retailer/store_1/keys", json=body, headers=OPERATOR).json()["api_key"]
    reader = {"Authorization": f"Bearer {key}"}
    assert pair.plain.get("/retailer/store_1", headers=reader).status_code == 200  # key cached
    services = pair.plain.app.state.services
    assert services.auth.cached(key) is not None
    assert services.tenants.cached("store_1") is not None

    response, by_lane = pair.both(json=cart("store_1"), headers=reader)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert not by_lane


def attrs() -> list[dict[str, str]]:
    return [{"name": "page_views", "kind": "numeric"}, {"name": "channel", "kind": "categorical"}]


def cart_bytes(extra: str) -> bytes:
    return (
        '{"retailer_id": "store_1", "cart_value": 45.99, "item_count": 3, '
        '"inactivity_hours": 12, "device_type": "mobile", "shipping_speed": "standard", '
        + extra
        + "}"
    ).encode()


ODD_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("no key", {"json": cart("store_1")}),
    ("unknown key", {"json": cart("store_1"), "headers": {"Authorization": "Bearer cpk_nope"}}),
    ("basic auth", {"json": cart("store_1"), "headers": {"Authorization": "Basic abc"}}),
    ("empty bearer", {"json": cart("store_1"), "headers": {"Authorization": "Bearer "}}),
    ("another tenant", {"json": cart("store_2"), "headers": "KEY"}),
    ("operator, no such retailer", {"json": cart("nope"), "headers": OPERATOR}),
    ("operator", {"json": cart("store_1"), "headers": OPERATOR}),
    ("speed not offered", {"json": cart("store_1", shipping_speed="overnight"), "headers": "KEY"}),
    ("undeclared attribute", {"json": cart("store_1", attributes={"x": 1}), "headers": "KEY"}),
    ("charset", {"content": b'{"retailer_id": "store_1"}', "headers": "KEY+charset"}),
    ("text/plain", {"content": b"{}", "headers": "KEY+text"}),
    ("empty body", {"content": b"", "headers": "KEY+json"}),
    ("not JSON", {"content": b"{nope", "headers": "KEY+json"}),
    ("array", {"content": b"[]", "headers": "KEY+json"}),
    (
        "NaN literal",
        {"content": b'{"retailer_id": "store_1", "cart_value": NaN}', "headers": "KEY+json"},
    ),
    (
        "duplicate keys",
        {"content": cart_bytes('"cart_value": -1, "cart_value": 5'), "headers": "KEY+json"},
    ),
    ("float item count", {"content": cart_bytes('"item_count": 3.0'), "headers": "KEY+json"}),
    ("huge int", {"content": cart_bytes('"item_count": ' + "9" * 40), "headers": "KEY+json"}),
    ("value as string", {"content": cart_bytes('"cart_value": "45.99"'), "headers": "KEY+json"}),
    ("two keys, the first wrong", {"json": cart("store_1"), "headers": "JUNK KEY+KEY"}),
    ("two content types", {"content": cart_bytes('"explain": false'), "headers": "TEXT+JSON"}),
]


@pytest.mark.parametrize("request_kwargs", [kw for _, kw in ODD_REQUESTS],
                         ids=[name for name, _ in ODD_REQUESTS])  # fmt: skip
def test_odd_requests_get_the_frameworks_answer(pair: Pair, request_kwargs: dict[str, Any]) -> None:
    key = create_retailer(pair.plain, "store_1")
    create_retailer(pair.plain, "store_2")
    pair.both(json=cart("store_1"), headers=key)  # warm: the key and retailer are cached
    kwargs = dict(request_kwargs)
    headers = kwargs.get("headers")
    if isinstance(headers, str):
        kinds = {"KEY": {}, "KEY+json": {"Content-Type": "application/json"},
                 "KEY+text": {"Content-Type": "text/plain"},
                 "KEY+charset": {"Content-Type": "application/json; charset=utf-8"}}  # fmt: skip
        if headers == "JUNK KEY+KEY":
            kwargs["headers"] = [("Authorization", "Bearer cpk_junk"), *key.items()]
        elif headers == "TEXT+JSON":
            kwargs["headers"] = [*key.items(), ("Content-Type", "text/plain"),
                                 ("Content-Type", "application/json")]  # fmt: skip
        else:
            kwargs["headers"] = key | kinds[headers]
    pair.both(**kwargs)


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c[2] == "/predict_cart" and c[1] == "POST"],
    ids=lambda c: c[0],
)
def test_every_bad_input_case_gets_the_same_answer(pair: Pair, case: tuple[Any, ...]) -> None:
    _, _, _, kwargs, status, _ = case
    key = create_retailer(pair.plain, "store_1")
    pair.both(json=cart("store_1"), headers=key)
    kwargs = dict(kwargs)
    kwargs["headers"] = {
        k: (key["Authorization"] if v == "retailer key" else v)
        for k, v in kwargs.get("headers", {}).items()
    }
    response, _ = pair.both(**kwargs)
    assert response.status_code == status


def test_the_body_limit_holds_in_the_lane_too(sqlite_url: str) -> None:
    with TestClient(create_app(make_settings(sqlite_url))) as client:
        key = create_retailer(client, "store_1")
    app = create_app(make_settings(sqlite_url, max_body_bytes=100))
    with TestClient(app) as client:
        services = app.state.services
        services.auth.lookup(key["Authorization"].removeprefix("Bearer "))  # cached: the lane
        services.tenants.load("store_1")  # would answer, but for the size of the body
        response = client.post("/predict_cart", json=cart("store_1"), headers=key)  # ~130 bytes
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"


def test_a_client_that_leaves_mid_request_gets_nothing_and_is_counted(sqlite_url: str) -> None:
    app = create_app(make_settings(sqlite_url))
    with TestClient(app) as client:
        key = create_retailer(client, "store_1")
        assert client.post("/predict_cart", json=cart("store_1"), headers=key).status_code == 200
    sent: list[Any] = []
    messages = iter([{"type": "http.disconnect"}])
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict_cart",
        "headers": [
            (b"authorization", key["Authorization"].encode()),
            (b"content-type", b"application/json"),
            (b"content-length", b"120"),
        ],
    }

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent == []
    assert 'status="499"' in app.state.services.metrics.exposition().decode()
