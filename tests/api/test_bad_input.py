"""Bad input: the documented 4xx, one error shape, never a 5xx, and nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartpredict.serving.schemas import ErrorOut
from tests.support.factories import OPERATOR, cart, create_retailer, retailer_spec, snapshot

KEY = "retailer key"  # placeholder in headers, replaced by the real key
AUTH = {"Authorization": KEY}
JSON = {"Content-Type": "application/json"}


def raw(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": AUTH | JSON}


def predict(**fields: Any) -> dict[str, Any]:
    body = cart("store_1") | fields
    for name in [k for k, v in fields.items() if v is ...]:
        del body[name]
    return {"json": body, "headers": AUTH}


def events_at(at: Any, kind: str = "cart_updated") -> dict[str, Any]:
    """Two events, the second at ``at``: ``at`` must be an RFC 3339 date-time with a zone."""
    good = {"event_id": "e-1", "type": "cart_updated", "cart_id": "c-1",
            "at": "2026-11-01T10:00:00Z", "cart_value": 45.99, "item_count": 3,
            "device_type": "mobile", "shipping_speed": "standard"}  # fmt: skip
    bad = good | {"event_id": "e-2", "type": kind, "at": at}
    if kind == "purchased":
        bad = {k: bad[k] for k in ("event_id", "type", "cart_id", "at")}
    return {"json": {"retailer_id": "store_1", "events": [good, bad]}, "headers": AUTH}


class Chunked:
    """A body sent without Content-Length; iterable again for every backend's run."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"carts": ['
        yield b" " * self.size
        yield b"]}"


CASES: list[tuple[str, str, str, dict[str, Any], int, str | None]] = [
    # id, method, path, request kwargs, status, field named in details
    ("value as string", "POST", "/predict_cart", predict(cart_value="45.99"), 422, "cart_value"),
    ("value null", "POST", "/predict_cart", predict(cart_value=None), 422, "cart_value"),
    ("value negative", "POST", "/predict_cart", predict(cart_value=-0.01), 422, "cart_value"),
    ("value absurd", "POST", "/predict_cart", predict(cart_value=1e12), 422, "cart_value"),
    ("value missing", "POST", "/predict_cart", predict(cart_value=...), 422, "cart_value"),
    ("items fractional", "POST", "/predict_cart", predict(item_count=2.5), 422, "item_count"),
    ("items as string", "POST", "/predict_cart", predict(item_count="3"), 422, "item_count"),
    ("items boolean", "POST", "/predict_cart", predict(item_count=True), 422, "item_count"),
    ("items negative", "POST", "/predict_cart", predict(item_count=-1), 422, "item_count"),
    (
        "hours negative",
        "POST",
        "/predict_cart",
        predict(inactivity_hours=-2),
        422,
        "inactivity_hours",
    ),
    (
        "NaN",
        "POST",
        "/predict_cart",
        raw(
            '{"retailer_id": "store_1", "cart_value": NaN, '
            '"item_count": 1, "inactivity_hours": 1, "device_type": "mobile", "shipping_speed": '
            '"standard"}'
        ),
        422,
        "cart_value",
    ),
    (
        "Infinity",
        "POST",
        "/predict_cart",
        raw(
            '{"retailer_id": "store_1", "cart_value": 1, '
            '"item_count": 1, "inactivity_hours": Infinity, "device_type": "mobile", '
            '"shipping_speed": "standard"}'
        ),
        422,
        "inactivity_hours",
    ),
    (
        "overflow to infinity",
        "POST",
        "/predict_cart",
        raw(
            '{"retailer_id": "store_1", '
            '"cart_value": 1e999, "item_count": 1, "inactivity_hours": 1, "device_type": "mobile", '
            '"shipping_speed": "standard"}'
        ),
        422,
        "cart_value",
    ),
    ("unknown device", "POST", "/predict_cart", predict(device_type="phone"), 422, "device_type"),
    (
        "speed not offered",
        "POST",
        "/predict_cart",
        predict(shipping_speed="overnight"),
        422,
        "shipping_speed",
    ),
    (
        "unknown speed",
        "POST",
        "/predict_cart",
        predict(shipping_speed="teleport"),
        422,
        "shipping_speed",
    ),
    ("unknown field", "POST", "/predict_cart", predict(email="a@b.c"), 422, "email"),
    ("malformed JSON", "POST", "/predict_cart", raw('{"retailer_id": "store_1",'), 422, "body"),
    ("empty body", "POST", "/predict_cart", raw(""), 422, "body"),
    (
        "form-encoded body",
        "POST",
        "/predict_cart",
        {
            "content": b"cart_value=3",
            "headers": AUTH | {"Content-Type": "application/x-www-form-urlencoded"},
        },
        415,
        None,
    ),
    ("array not object", "POST", "/predict_cart", raw("[1, 2]"), 422, "body"),
    ("bad retailer id", "POST", "/predict_cart", predict(retailer_id="../etc"), 422, "retailer_id"),
    ("no key", "POST", "/predict_cart", {"json": cart("store_1")}, 401, None),
    (
        "wrong key",
        "POST",
        "/predict_cart",
        {"json": cart("store_1"), "headers": {"Authorization": "Bearer cpk_not_a_key"}},
        401,
        None,
    ),
    (
        "basic auth",
        "POST",
        "/predict_cart",
        {"json": cart("store_1"), "headers": {"Authorization": "Basic dXNlcjpwYXNz"}},
        401,
        None,
    ),
    (
        "oversized body",
        "POST",
        "/predict_cart/batch",
        {"json": {"carts": [cart("store_1")] * 40_000}, "headers": AUTH},
        413,
        None,
    ),
    (
        "oversized chunked",
        "POST",
        "/predict_cart/batch",
        {"content": Chunked(5_000_000), "headers": AUTH | JSON},
        413,
        None,
    ),
    (
        "batch empty",
        "POST",
        "/predict_cart/batch",
        {"json": {"carts": []}, "headers": AUTH},
        422,
        "carts",
    ),
    (
        "batch not a list",
        "POST",
        "/predict_cart/batch",
        {"json": {"carts": cart("store_1")}, "headers": AUTH},
        422,
        "carts",
    ),
    (
        "batch bad cart",
        "POST",
        "/predict_cart/batch",
        {
            "json": {"carts": [cart("store_1"), cart("store_1", device_type="fridge")]},
            "headers": AUTH,
        },
        422,
        "carts.1.device_type",
    ),
    (
        "duplicate retailer",
        "POST",
        "/retailer",
        {"json": retailer_spec("store_1"), "headers": OPERATOR},
        409,
        None,
    ),
    (
        "no speeds",
        "POST",
        "/retailer",
        {"json": retailer_spec("s2", shipping_speeds=[]), "headers": OPERATOR},
        422,
        "shipping_speeds",
    ),
    (
        "speed not an identifier",
        "POST",
        "/retailer",
        {"json": retailer_spec("s2", shipping_speeds=["Warp Speed"]), "headers": OPERATOR},
        422,
        "shipping_speeds.0",
    ),
    (
        "days of a speed not offered",
        "POST",
        "/retailer",
        {"json": retailer_spec("s2", shipping_days={"economy": 7}), "headers": OPERATOR},
        422,
        "shipping_days",
    ),
    (
        "negative delivery days",
        "POST",
        "/retailer",
        {
            "json": retailer_spec("s2", shipping_speeds=["economy"], shipping_days={"economy": -1}),
            "headers": OPERATOR,
        },
        422,
        "shipping_days.economy",
    ),
    (
        "repeated payment option",
        "POST",
        "/retailer",
        {"json": retailer_spec("s2", payment_options=["paypal", "paypal"]), "headers": OPERATOR},
        422,
        "payment_options",
    ),
    (
        "flag as string",
        "POST",
        "/retailer",
        {"json": retailer_spec("s2", requires_account="yes"), "headers": OPERATOR},
        422,
        "requires_account",
    ),
    (
        "precision out of range",
        "POST",
        "/retailer",
        {"json": retailer_spec("s2", precision_target=1.5), "headers": OPERATOR},
        422,
        "precision_target",
    ),
    (
        "personal data field",
        "POST",
        "/retailer",
        {"json": retailer_spec("s2", contact_email="owner@example.com"), "headers": OPERATOR},
        422,
        "contact_email",
    ),
    (
        "patch null",
        "PATCH",
        "/retailer/store_1",
        {"json": {"requires_account": None}, "headers": AUTH},
        422,
        "requires_account",
    ),
    ("patch nothing", "PATCH", "/retailer/store_1", {"json": {}, "headers": AUTH}, 422, "body"),
    (
        "patch the id",
        "PATCH",
        "/retailer/store_1",
        {"json": {"retailer_id": "other"}, "headers": AUTH},
        422,
        "retailer_id",
    ),
    (
        "patch NaN",
        "PATCH",
        "/retailer/store_1",
        {"content": b'{"precision_target": NaN}', "headers": AUTH | JSON},
        422,
        "precision_target",
    ),
    ("wrong method", "PUT", "/predict_cart", {"json": cart("store_1"), "headers": AUTH}, 405, None),
    ("no such route", "GET", "/predict", {"headers": AUTH}, 404, None),
    ("at a Unix time in a string", "POST", "/events", events_at("1700000000"), 422, "events.1.at"),
    ("at a Unix time", "POST", "/events", events_at(1700000000), 422, "events.1.at"),
    ("at a date only", "POST", "/events", events_at("2026-11-01"), 422, "events.1.at"),
    ("at without a zone", "POST", "/events", events_at("2026-11-01T10:00:00"), 422, "events.1.at"),
    ("at without seconds", "POST", "/events", events_at("2026-11-01T10:00Z"), 422, "events.1.at"),
    (
        "at with a zone without colon",
        "POST",
        "/events",
        events_at("2026-11-01T10:00:00+0100"),
        422,
        "events.1.at",
    ),
    (
        "purchase at a Unix time",
        "POST",
        "/events",
        events_at("1700000000.5", "purchased"),
        422,
        "events.1.at",
    ),
]


@pytest.fixture
def setup(client: TestClient, database_url: str) -> tuple[TestClient, dict[str, str], Any]:
    auth = create_retailer(client, "store_1")
    return client, auth, snapshot(database_url)


def _with_key(kwargs: dict[str, Any], auth: dict[str, str]) -> dict[str, Any]:
    headers = {
        k: (auth["Authorization"] if v == KEY else v) for k, v in kwargs.get("headers", {}).items()
    }
    return kwargs | {"headers": headers}


def test_there_are_at_least_25_cases() -> None:
    assert len(CASES) >= 25
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("name", "method", "path", "kwargs", "status", "field"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_request_gets_its_status_and_the_error_shape_and_writes_nothing(
    setup: tuple[TestClient, dict[str, str], Any],
    database_url: str,
    name: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    field: str | None,
) -> None:
    client, auth, before = setup
    response = client.request(method, path, **_with_key(kwargs, auth))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = ErrorOut.model_validate(response.json()).error
    assert error.status == status
    if field is not None:
        assert field in [d.field for d in error.details], error
        assert all(d.reason for d in error.details)
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    assert snapshot(database_url) == before


@pytest.mark.parametrize("path", ["/retailer/a%00b", "/retailer/a%00b/stats", "/retailer/%20x"])
def test_a_path_id_no_retailer_can_have_is_a_404_on_every_backend(
    client: TestClient, path: str
) -> None:
    """PostgreSQL refuses a NUL in text: such an id is answered before the store sees it."""
    response = client.get(path, headers=OPERATOR)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "retailer_not_found"


def test_a_body_that_is_not_text_names_the_body_as_the_problem(client: TestClient) -> None:
    auth = create_retailer(client, "s")
    response = client.post("/events", content=b'{"retailer_id": "s\xff"}', headers={
        **auth, "Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "body"
