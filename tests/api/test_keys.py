"""API keys with names and scopes: each scope opens its endpoints and no other; keys are listed,
issued, rotated with a grace period and revoked one at a time.

``ROUTE_SCOPES`` is the one table of which scope each endpoint needs: the app's routes must
declare exactly these (a new route without a scope fails here), and every endpoint is called
with a key of every scope, answering 2xx for its own and 403 for the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute

from cartpredict.api import deps
from cartpredict.api.app import create_app
from cartpredict.core.scopes import Scope
from tests.api.test_fastlane import logistic
from tests.support.factories import (
    OPERATOR,
    SettableClock,
    cart,
    create_retailer,
    make_settings,
    snapshot,
)
from tests.support.feeds import await_a_feed_poll

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
EVENT = {"event_id": "e-1", "type": "purchased", "cart_id": "c-1", "at": "2026-11-01T10:00:00Z"}

# The scope every endpoint that takes a retailer's key needs.
ROUTE_SCOPES: dict[tuple[str, str], Scope] = {
    ("POST", "/predict_cart"): Scope.predict,
    ("POST", "/predict_cart/batch"): Scope.predict,
    ("POST", "/events"): Scope.events,
    ("GET", "/retailer/{retailer_id}"): Scope.read,
    ("GET", "/retailer/{retailer_id}/model"): Scope.read,
    ("GET", "/retailer/{retailer_id}/stats"): Scope.read,
    ("GET", "/retailer/{retailer_id}/experiment"): Scope.read,
    ("PATCH", "/retailer/{retailer_id}"): Scope.manage,
    ("DELETE", "/retailer/{retailer_id}"): Scope.manage,
    ("POST", "/retailer/{retailer_id}/model/rollback"): Scope.manage,
    ("GET", "/retailer/{retailer_id}/keys"): Scope.manage,
    ("POST", "/retailer/{retailer_id}/keys"): Scope.manage,
    ("POST", "/retailer/{retailer_id}/keys/{key_id}/rotate"): Scope.manage,
    ("DELETE", "/retailer/{retailer_id}/keys/{key_id}"): Scope.manage,
}
OPERATOR_ONLY = {("POST", "/retailer")}

# What each endpoint is sent, for retailer "s" (``key_id``: a key of its that has ``manage``).
REQUESTS: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
    ("POST", "/predict_cart"): lambda: {"json": cart("s")},
    ("POST", "/predict_cart/batch"): lambda: {"json": {"carts": [cart("s")]}},
    ("POST", "/events"): lambda: {"json": {"retailer_id": "s", "events": [EVENT]}},
    ("PATCH", "/retailer/{retailer_id}"): lambda: {"json": {"requires_account": False}},
    ("POST", "/retailer/{retailer_id}/keys"): lambda: {
        "json": {"name": "new", "scopes": ["manage"]}
    },
    ("POST", "/retailer/{retailer_id}/keys/{key_id}/rotate"): lambda: {
        "json": {"grace_seconds": 60}
    },
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def issue(client: TestClient, rid: str, name: str, *scopes: str, auth: Any = OPERATOR) -> Any:
    body = {"name": name, "scopes": list(scopes)}
    return client.post(f"/retailer/{rid}/keys", json=body, headers=auth)


def issued(client: TestClient, rid: str, name: str, *scopes: str) -> tuple[str, dict[str, str]]:
    """(key id, Authorization header) of a new key."""
    response = issue(client, rid, name, *scopes)
    assert response.status_code == 201, response.text
    return response.json()["key_id"], bearer(response.json()["api_key"])


def listed(client: TestClient, rid: str) -> list[dict[str, Any]]:
    response = client.get(f"/retailer/{rid}/keys", headers=OPERATOR)
    assert response.status_code == 200, response.text
    keys: list[dict[str, Any]] = response.json()["keys"]
    return keys


def declared(dependant: Dependant) -> set[str]:
    """The scopes (and "operator") a route's dependencies declare, at any depth."""
    found: set[str] = set()
    for sub in dependant.dependencies:
        if isinstance(sub.call, deps.Needs | deps.OnRetailer):
            found.add(sub.call.scope.value)
        elif sub.call is deps.operator:
            found.add("operator")
        found |= declared(sub)
    return found


def takes_a_key(dependant: Dependant) -> bool:
    return dependant.call is deps.principal or any(takes_a_key(d) for d in dependant.dependencies)


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every route of the app, those of included routers too (FastAPI keeps them there)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def test_every_route_that_takes_a_key_declares_the_scope_of_the_table(sqlite_url: str) -> None:
    app = create_app(make_settings(sqlite_url))
    routes = [r for r in api_routes(app.routes) if takes_a_key(r.dependant)]
    assert len(routes) > len(ROUTE_SCOPES) / 2  # (the walk finds them)
    seen = {(m, r.path): declared(r.dependant) for r in routes for m in r.methods}
    assert all(len(scopes) == 1 for scopes in seen.values()), seen
    assert {k: v.pop() for k, v in seen.items()} == (
        {k: s.value for k, s in ROUTE_SCOPES.items()} | dict.fromkeys(OPERATOR_ONLY, "operator")
    )
    app.state.services.close()


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(NOW)


@pytest.fixture
def timed(database_url: str, clock: SettableClock) -> Iterator[TestClient]:
    """The app, on a clock the test moves."""
    with TestClient(create_app(make_settings(database_url), clock=clock)) as client:
        yield client


@pytest.mark.parametrize("route", list(ROUTE_SCOPES), ids=[" ".join(r) for r in ROUTE_SCOPES])
def test_each_scope_opens_its_endpoints_and_no_other(
    timed: TestClient, database_url: str, route: tuple[str, str]
) -> None:
    create_retailer(timed, "s")
    store = timed.app.state.services.store  # type: ignore[attr-defined]
    for version in ("m-1", "m-2"):  # something to roll back to
        store.add_model_version(version=logistic("s", version))
        store.set_served(scope="s", version_id=version, action="promote", at=NOW)
    keys = {scope: issued(timed, "s", f"only-{scope.value}", scope)[1] for scope in Scope}
    target, _ = issued(timed, "s", "target", Scope.manage)
    method, template = route
    path = template.format(retailer_id="s", key_id=target)
    kwargs = REQUESTS.get(route, dict)()
    needed = ROUTE_SCOPES[route]
    before = snapshot(database_url)
    for scope in set(Scope) - {needed}:
        for attempt in ("looked up", "cached"):  # the second through the fast lane's checks
            refused = timed.request(method, path, headers=keys[scope], **kwargs)
            assert refused.status_code == 403, (route, scope, attempt, refused.text)
            error = refused.json()["error"]
            assert (error["status"], error["code"]) == (403, "missing_scope")
            assert f"'{needed.value}' scope" in error["message"]
    assert snapshot(database_url) == before, f"{route} changed the database when refused"
    allowed = timed.request(method, path, headers=keys[needed], **kwargs)
    assert 200 <= allowed.status_code < 300, (route, needed, allowed.text)


def test_a_missing_scope_is_the_one_error_shape_naming_the_scope(timed: TestClient) -> None:
    create_retailer(timed, "s")
    _, reader = issued(timed, "s", "dashboard", Scope.read)
    response = timed.post("/predict_cart", json=cart("s"), headers=reader)
    assert response.json() == {
        "error": {
            "status": 403,
            "code": "missing_scope",
            "message": "This API key lacks the 'predict' scope, which this operation needs.",
            "details": [{"field": "scope", "reason": "this key lacks 'predict'"}],
        }
    }


def test_another_tenants_retailer_is_a_404_whatever_the_keys_scopes(timed: TestClient) -> None:
    """Access before scope: a key without ``read`` learns nothing of another retailer."""
    create_retailer(timed, "a")
    create_retailer(timed, "b")
    _, predictor = issued(timed, "a", "checkout", Scope.predict)
    foreign = timed.get("/retailer/b", headers=predictor)
    missing = timed.get("/retailer/nobody", headers=predictor)
    assert foreign.status_code == 404
    assert foreign.content == missing.content
    assert timed.get("/retailer/a", headers=predictor).status_code == 403
    for rid in ("b", "nobody"):
        response = timed.post("/predict_cart", json=cart(rid), headers=predictor)
        assert (response.status_code, response.content) == (404, missing.content)


def test_keys_are_listed_without_secrets_oldest_first(timed: TestClient, clock: Any) -> None:
    create_retailer(timed, "s")
    clock.now = NOW + timedelta(minutes=1)
    created = issue(timed, "s", "marketing", "read", "events")
    assert created.status_code == 201
    body = created.json()
    assert body["api_key"].startswith("cpk_")
    assert body["key_id"].startswith("key_") and len(body["key_id"]) == 16
    assert (body["retailer_id"], body["name"], body["scopes"]) == ("s", "marketing",
                                                                   ["events", "read"])  # fmt: skip
    keys = listed(timed, "s")
    assert [k["name"] for k in keys] == ["default", "marketing"]
    assert keys[0]["scopes"] == ["predict", "events", "read", "manage"]
    assert keys[1] == {key: body[key] for key in keys[1]}
    assert keys[1] == {"key_id": body["key_id"], "name": "marketing", "scopes": ["events", "read"],
                       "created_at": "2026-11-02T09:01:00Z", "expires_at": None}  # fmt: skip
    assert body["api_key"] not in timed.get("/retailer/s/keys", headers=OPERATOR).text


def test_posting_keys_without_a_body_still_revokes_every_other_key(timed: TestClient) -> None:
    first = create_retailer(timed, "s")
    _, named = issued(timed, "s", "marketing", Scope.read)
    old_id, rotated = issued(timed, "s", "checkout", Scope.predict)
    timed.post(f"/retailer/s/keys/{old_id}/rotate", json={"grace_seconds": 3600}, headers=OPERATOR)
    response = timed.post("/retailer/s/keys", headers=first)
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "default" and body["scopes"] == ["predict", "events", "read", "manage"]
    for old in (first, named, rotated):
        assert timed.get("/retailer/s", headers=old).status_code == 401
    assert timed.get("/retailer/s", headers=bearer(body["api_key"])).status_code == 200
    assert [k["key_id"] for k in listed(timed, "s")] == [body["key_id"]]


def test_a_named_key_with_replace_revokes_the_others(timed: TestClient) -> None:
    first = create_retailer(timed, "s")
    body = {"name": "checkout", "scopes": ["predict"], "replace": True}
    response = timed.post("/retailer/s/keys", json=body, headers=first)
    assert response.status_code == 201
    assert timed.get("/retailer/s", headers=first).status_code == 401
    assert [k["name"] for k in listed(timed, "s")] == ["checkout"]


def test_revoking_one_key_leaves_the_others_working(timed: TestClient) -> None:
    default = create_retailer(timed, "s")
    gone_id, gone = issued(timed, "s", "marketing", Scope.read)
    _, kept = issued(timed, "s", "dashboard", Scope.read)
    for auth in (default, gone, kept):
        assert timed.get("/retailer/s", headers=auth).status_code == 200  # now cached
    assert timed.delete(f"/retailer/s/keys/{gone_id}", headers=default).status_code == 204
    assert timed.get("/retailer/s", headers=gone).status_code == 401
    assert timed.get("/retailer/s", headers=kept).status_code == 200
    assert timed.post("/predict_cart", json=cart("s"), headers=default).status_code == 200
    again = timed.delete(f"/retailer/s/keys/{gone_id}", headers=default)
    assert (again.status_code, again.json()["error"]["code"]) == (404, "key_not_found")
    assert "marketing" not in [k["name"] for k in listed(timed, "s")]
    reused = issue(timed, "s", "marketing", "read")  # the name is free again
    assert reused.status_code == 201


def test_a_key_may_revoke_itself(timed: TestClient) -> None:
    default = create_retailer(timed, "s")
    [key] = listed(timed, "s")
    assert timed.delete(f"/retailer/s/keys/{key['key_id']}", headers=default).status_code == 204
    assert timed.get("/retailer/s", headers=default).status_code == 401
    assert timed.get("/retailer/s/keys", headers=OPERATOR).json()["keys"] == []


def test_rotation_keeps_the_old_secret_working_until_its_grace_period_ends(
    timed: TestClient, clock: Any
) -> None:
    create_retailer(timed, "s")
    old_id, old = issued(timed, "s", "checkout", Scope.predict, Scope.read)
    assert timed.post("/predict_cart", json=cart("s"), headers=old).status_code == 200
    response = timed.post(f"/retailer/s/keys/{old_id}/rotate", json={"grace_seconds": 3600},
                          headers=OPERATOR)  # fmt: skip
    assert response.status_code == 201
    body = response.json()
    new = bearer(body["api_key"])
    assert body["key_id"] != old_id
    assert (body["name"], body["scopes"]) == ("checkout", ["predict", "read"])
    assert body["replaced"] == {"key_id": old_id, "expires_at": "2026-11-02T10:00:00Z"}
    keys = {k["key_id"]: k for k in listed(timed, "s")}
    assert keys[old_id]["expires_at"] == "2026-11-02T10:00:00Z"
    assert keys[body["key_id"]]["expires_at"] is None
    auth = timed.app.state.services.auth  # type: ignore[attr-defined]
    for seconds in (0, 1800, 3599):
        clock.now = NOW + timedelta(seconds=seconds)
        for key in (old, new):  # the old one cached: the fast lane's path
            assert timed.post("/predict_cart", json=cart("s"), headers=key).status_code == 200
            assert timed.get("/retailer/s", headers=key).status_code == 200
        assert auth.key_live(old_id)
    clock.now = NOW + timedelta(seconds=3600)
    assert timed.post("/predict_cart", json=cart("s"), headers=old).status_code == 401
    assert timed.get("/retailer/s", headers=old).status_code == 401
    assert timed.post("/predict_cart", json=cart("s"), headers=new).status_code == 200
    assert not auth.key_live(old_id) and auth.key_live(body["key_id"])
    after = [k["key_id"] for k in listed(timed, "s")]
    assert body["key_id"] in after and old_id not in after


def test_rotation_without_grace_revokes_the_old_secret_at_once(timed: TestClient) -> None:
    create_retailer(timed, "s")
    old_id, old = issued(timed, "s", "checkout", Scope.predict)
    assert timed.post("/predict_cart", json=cart("s"), headers=old).status_code == 200
    response = timed.post(f"/retailer/s/keys/{old_id}/rotate", headers=OPERATOR)  # no body
    assert response.status_code == 201
    assert response.json()["replaced"] == {"key_id": old_id, "expires_at": "2026-11-02T09:00:00Z"}
    assert timed.post("/predict_cart", json=cart("s"), headers=old).status_code == 401
    new = bearer(response.json()["api_key"])
    assert timed.post("/predict_cart", json=cart("s"), headers=new).status_code == 200
    assert old_id not in [k["key_id"] for k in listed(timed, "s")]


def test_a_rotated_key_cannot_be_rotated_again_its_successor_can(timed: TestClient) -> None:
    create_retailer(timed, "s")
    old_id, _ = issued(timed, "s", "checkout", Scope.predict)
    grace = {"grace_seconds": 600}
    first = timed.post(f"/retailer/s/keys/{old_id}/rotate", json=grace, headers=OPERATOR)
    again = timed.post(f"/retailer/s/keys/{old_id}/rotate", json=grace, headers=OPERATOR)
    assert again.status_code == 409
    assert "rotate the key that replaced it" in again.json()["error"]["message"]
    successor = first.json()["key_id"]
    assert timed.post(f"/retailer/s/keys/{successor}/rotate", json=grace,
                      headers=OPERATOR).status_code == 201  # fmt: skip
    assert [k["name"] for k in listed(timed, "s")].count("checkout") == 3  # two in grace


def test_another_retailers_key_id_is_no_key_of_this_one(timed: TestClient) -> None:
    own = create_retailer(timed, "a")
    other = create_retailer(timed, "b")
    [b_key] = listed(timed, "b")
    for auth in (own, OPERATOR):
        for method, path in (("DELETE", f"/retailer/a/keys/{b_key['key_id']}"),
                             ("POST", f"/retailer/a/keys/{b_key['key_id']}/rotate"),
                             ("DELETE", "/retailer/a/keys/key_nonexistent1"),
                             ("DELETE", "/retailer/a/keys/not-a-key%00")):  # fmt: skip
            response = timed.request(method, path, headers=auth)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["code"] == "key_not_found"
    assert timed.get("/retailer/b", headers=other).status_code == 200
    assert listed(timed, "b") == [b_key]
    for path in ("/retailer/nobody/keys/key_nonexistent1", "/retailer/nobody/keys/junk"):
        response = timed.delete(path, headers=OPERATOR)
        assert response.json()["error"]["code"] == "retailer_not_found"


def test_a_key_grants_no_scope_it_lacks(timed: TestClient) -> None:
    create_retailer(timed, "s")
    _, manager = issued(timed, "s", "admin", Scope.manage)
    reader_id, _ = issued(timed, "s", "dashboard", Scope.read)
    everything = timed.post("/retailer/s/keys", headers=manager)  # the default: every scope
    assert everything.status_code == 403
    assert everything.json()["error"]["code"] == "missing_scope"
    assert "can grant only the scopes it has" in everything.json()["error"]["message"]
    more = issue(timed, "s", "checkout", "predict", "manage", auth=manager)
    assert more.status_code == 403
    assert more.json()["error"]["details"] == [{"field": "scope",
                                                "reason": "this key lacks 'predict'"}]  # fmt: skip
    assert timed.post(f"/retailer/s/keys/{reader_id}/rotate", headers=manager).status_code == 403
    assert issue(timed, "s", "helper", "manage", auth=manager).status_code == 201
    assert timed.delete(f"/retailer/s/keys/{reader_id}", headers=manager).status_code == 204
    assert sorted(k["name"] for k in listed(timed, "s")) == ["admin", "default", "helper"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": ["admin"]}, "scopes.0"),
        ({"name": "x", "scopes": ["read", "read"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x"}, "scopes"),
        ({"scopes": ["read"]}, "name"),
        ({"name": "Marketing", "scopes": ["read"]}, "name"),
        ({"name": "9lives", "scopes": ["read"]}, "name"),
        ({"name": "x" * 33, "scopes": ["read"]}, "name"),
        ({"name": "x", "scopes": ["read"], "replace": "yes"}, "replace"),
        ({"name": "x", "scopes": ["read"], "owner": "me"}, "owner"),
    ],
)
def test_a_bad_key_request_is_a_422_naming_the_field(
    timed: TestClient, body: dict[str, Any], field: str
) -> None:
    create_retailer(timed, "s")
    response = timed.post("/retailer/s/keys", json=body, headers=OPERATOR)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == field
    assert len(listed(timed, "s")) == 1


def test_grace_is_a_whole_number_of_seconds_up_to_a_day(timed: TestClient) -> None:
    create_retailer(timed, "s")
    [key] = listed(timed, "s")
    path = f"/retailer/s/keys/{key['key_id']}/rotate"
    for grace in (-1, 86_401, 1.5, "60"):
        response = timed.post(path, json={"grace_seconds": grace}, headers=OPERATOR)
        assert response.status_code == 422, grace
        assert response.json()["error"]["details"][0]["field"] == "grace_seconds"
    assert timed.post(path, json={"grace_seconds": 86_400}, headers=OPERATOR).status_code == 201


def test_a_name_is_unique_among_live_keys(timed: TestClient) -> None:
    create_retailer(timed, "s")
    assert issue(timed, "s", "marketing", "read").status_code == 201
    taken = issue(timed, "s", "marketing", "events")
    assert taken.status_code == 409
    assert taken.json()["error"]["details"] == [{"field": "name",
                                                 "reason": "'marketing' is taken"}]  # fmt: skip
    assert issue(timed, "s", "default", "read").status_code == 409


def test_a_revoked_key_stops_working_in_another_worker(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the change feed, as every change does: no Redis here."""
    first = create_app(make_settings(database_url, sync_interval_s=0.1))
    second = create_app(make_settings(database_url, sync_interval_s=0.1))
    with TestClient(first) as one, TestClient(second) as two:
        create_retailer(one, "s")
        key_id, key = issued(one, "s", "checkout", Scope.predict)
        _, kept = issued(one, "s", "other", Scope.predict)
        for auth in (key, kept):
            assert two.post("/predict_cart", json=cart("s"), headers=auth).status_code == 200
        assert one.delete(f"/retailer/s/keys/{key_id}", headers=OPERATOR).status_code == 204
        await_a_feed_poll(monkeypatch, second.state.services.store)
        assert two.post("/predict_cart", json=cart("s"), headers=key).status_code == 401
        assert two.post("/predict_cart", json=cart("s"), headers=kept).status_code == 200
