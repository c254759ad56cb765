"""Tenant isolation: a retailer's key reaches its own retailer and nothing else.

Every endpoint, called with retailer A's key on retailer B's resources, answers exactly what it
answers for a retailer that does not exist, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.support.factories import OPERATOR, cart, create_retailer, snapshot

Call = tuple[str, str, Callable[[str], dict[str, Any]]]
EVENT = {"event_id": "e-1", "type": "purchased", "cart_id": "c-1", "at": "2026-11-01T10:00:00Z"}

# (method, path template, request kwargs for a target retailer id)
TENANT_CALLS: list[Call] = [
    ("GET", "/retailer/{rid}", lambda rid: {}),
    ("PATCH", "/retailer/{rid}", lambda rid: {"json": {"requires_account": False}}),
    ("DELETE", "/retailer/{rid}", lambda rid: {}),
    ("POST", "/retailer/{rid}/keys", lambda rid: {}),
    ("POST", "/retailer/{rid}/keys", lambda rid: {"json": {"name": "x", "scopes": ["read"]}}),
    ("GET", "/retailer/{rid}/keys", lambda rid: {}),
    ("POST", "/retailer/{rid}/keys/{key_id}/rotate", lambda rid: {"json": {"grace_seconds": 60}}),
    ("DELETE", "/retailer/{rid}/keys/{key_id}", lambda rid: {}),
    ("POST", "/predict_cart", lambda rid: {"json": cart(rid)}),
    ("POST", "/predict_cart/batch", lambda rid: {"json": {"carts": [cart(rid)]}}),
    ("POST", "/events", lambda rid: {"json": {"retailer_id": rid, "events": [EVENT]}}),
    ("GET", "/retailer/{rid}/model", lambda rid: {}),
    ("GET", "/retailer/{rid}/stats", lambda rid: {}),
    ("GET", "/retailer/{rid}/experiment", lambda rid: {}),
    ("POST", "/retailer/{rid}/model/rollback", lambda rid: {}),
]
# Routes with no tenant resource: open to all, or the operator's alone.
NOT_TENANT_SCOPED = {
    ("POST", "/retailer"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}


def _call(client: TestClient, call: Call, rid: str, auth: dict[str, str], key_id: str = "") -> Any:
    """``key_id``: the key a key route acts on (default: one no retailer has)."""
    method, template, kwargs = call
    path = template.format(rid=rid, key_id=key_id or "key_000000000000")
    return client.request(method, path, headers=auth, **kwargs(rid))


def _key_ids(client: TestClient, rid: str) -> list[str]:
    keys = client.get(f"/retailer/{rid}/keys", headers=OPERATOR).json()["keys"]
    return [k["key_id"] for k in keys]


def test_the_matrix_covers_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    routes = {
        (method.upper(), path.replace("{retailer_id}", "{rid}"))
        for path, operations in paths.items()
        for method in operations
    }
    covered = {(m, p) for m, p, _ in TENANT_CALLS} | NOT_TENANT_SCOPED
    assert routes == covered


def test_another_tenants_retailer_looks_like_no_retailer_and_nothing_changes(
    client: TestClient, database_url: str
) -> None:
    key_a = create_retailer(client, "retailer_a")
    key_b = create_retailer(client, "retailer_b")
    own_view = client.get("/retailer/retailer_b", headers=key_b).content
    [key_of_b] = _key_ids(client, "retailer_b")  # a real key id, of the other tenant
    before = snapshot(database_url)

    for call in TENANT_CALLS:
        foreign = _call(client, call, "retailer_b", key_a, key_of_b)
        missing = _call(client, call, "no_such_retailer", key_a)
        missing_for_operator = _call(client, call, "no_such_retailer", OPERATOR)
        assert foreign.status_code == 404, (call[:2], foreign.text)
        assert foreign.content == missing.content == missing_for_operator.content, call[:2]
        assert foreign.headers["content-type"] == missing.headers["content-type"]
        assert snapshot(database_url) == before, f"{call[:2]} changed the database"

    assert client.get("/retailer/retailer_b", headers=key_b).content == own_view
    assert client.post("/predict_cart", json=cart("retailer_b"), headers=key_b).status_code == 200


def test_a_batch_with_one_foreign_cart_is_refused_whole(
    client: TestClient, database_url: str
) -> None:
    key_a = create_retailer(client, "retailer_a")
    create_retailer(client, "retailer_b")
    before = snapshot(database_url)
    carts = [cart("retailer_a"), cart("retailer_b")]
    response = client.post("/predict_cart/batch", json={"carts": carts}, headers=key_a)
    missing = client.post("/predict_cart", json=cart("nobody"), headers=key_a)
    assert response.status_code == 404
    assert response.content == missing.content
    assert snapshot(database_url) == before


def test_a_deleted_tenants_key_opens_nothing(client: TestClient) -> None:
    key_a = create_retailer(client, "retailer_a")
    create_retailer(client, "retailer_b")
    client.delete("/retailer/retailer_a", headers=key_a)
    for call in TENANT_CALLS:
        assert _call(client, call, "retailer_b", key_a).status_code == 401
