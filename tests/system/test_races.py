"""Promises under concurrency, with real server processes racing on one database.

* Erasure wins every race: events sent while the retailer is deleted are either erased with it
  or refused, and a retailer created again with the same id starts empty.
* A 503 is truthful: a write stalled by a lock held elsewhere gives up before the request does,
  and nothing of it is committed once the lock is released.
* Ingest is idempotent under concurrency: the same batch sent four times at once is stored once,
  every answer a 200; an event id sent again with another payload is a 409 and nothing is stored.
* Concurrent key rotations leave exactly one valid key.
* An unexpected database error is logged without the request's data.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from cartpredict.storage.tables import api_keys, events, retailers
from tests.support.databases import as_admin
from tests.support.factories import OPERATOR, OPERATOR_KEY, retailer_spec
from tests.support.servers import running_server

pytestmark = pytest.mark.slow
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
STORE_TIMEOUT_S = 2.0


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(name, URL the server uses)."""
    return request.param, str(request.getfixturevalue(f"{request.param}_url"))


def server_env(url: str, **more: str) -> dict[str, str]:
    return {"CARTPREDICT_DATABASE_URL": url, "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY, **more}


def owner_url(name: str, url: str) -> str:
    return as_admin(url) if name == "postgres" else url


def count(url: str, table: Any, retailer_id: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = select(func.count()).select_from(table)
            return int(conn.execute(query.where(table.c.retailer_id == retailer_id)).scalar_one())
    finally:
        engine.dispose()


def batch(retailer_id: str, prefix: str, n: int, value: float = 20.0) -> dict[str, Any]:
    return {
        "retailer_id": retailer_id,
        "events": [
            {"event_id": f"{prefix}-{i}", "type": "cart_updated", "cart_id": f"{prefix}-c{i}",
             "at": "2026-11-01T10:00:00Z", "cart_value": value + i, "item_count": 1,
             "device_type": "mobile", "shipping_speed": "standard"}
            for i in range(n)
        ],
    }  # fmt: skip


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def onboard(server: Any, retailer_id: str) -> dict[str, str]:
    """Create the retailer; its key's Authorization header."""
    created = server.post("/retailer", json=retailer_spec(retailer_id), headers=OPERATOR)
    assert created.status_code == 201, created.text
    return bearer(created.json()["api_key"])


def test_erasure_wins_the_race_with_writers(backend: tuple[str, str]) -> None:
    name, url = backend
    with running_server(server_env(url)) as server:
        for trial in range(8):
            rid = f"racer_{trial}"
            accepted = erase_while_writing(server, rid, pause_s=0.05 * (trial + 1))
            assert accepted, "some batches were stored before the erasure"
            assert count(owner_url(name, url), events, rid) == 0
            again = server.post("/retailer", json=retailer_spec(rid), headers=OPERATOR)
            assert again.status_code == 201
            assert count(owner_url(name, url), events, rid) == 0


def erase_while_writing(server: Any, rid: str, pause_s: float) -> int:
    """Three writers send 200-event batches for the retailer while it is deleted; how many
    batches were answered 200."""
    key = server.post("/retailer", json=retailer_spec(rid), headers=OPERATOR).json()["api_key"]
    accepted: list[int] = []
    started = threading.Barrier(4)

    def send(writer: int) -> None:
        started.wait()
        for n in range(40):  # bounded: stops at the first refusal
            body = batch(rid, f"w{writer}-{n}", 200)
            status = server.post("/events", json=body, headers=bearer(key)).status_code
            if status != 200:
                assert status in (401, 404), status
                return
            accepted.append(200)

    with ThreadPoolExecutor(3) as pool:
        writers = [pool.submit(send, w) for w in range(3)]
        started.wait()
        deadline = time.monotonic() + 30
        while not accepted and time.monotonic() < deadline:  # a busy machine starts slowly
            time.sleep(0.005)
        time.sleep(pause_s)  # a few batches in, then erase
        assert server.delete(f"/retailer/{rid}", headers=OPERATOR).status_code == 204
        for future in writers:
            future.result(timeout=60)
    return len(accepted)


@contextmanager
def lock_held(name: str, url: str, table: str) -> Iterator[None]:
    """Another session holds a lock on the table until the block ends."""
    if name == "sqlite":  # one writer at a time: hold the database's write lock
        conn = sqlite3.connect(make_url(url).database, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_engine(as_admin(url))
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            yield
    finally:
        engine.dispose()


def settle(check: Callable[[], bool], seconds: float = 2.5) -> bool:
    """Whether ``check`` holds throughout ``seconds`` (a write that commits late would show)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not check():
            return False
        time.sleep(0.1)
    return True


def test_a_503_under_a_lock_stall_writes_nothing(backend: tuple[str, str]) -> None:
    name, url = backend
    owner = owner_url(name, url)
    env = server_env(url, CARTPREDICT_STORE_TIMEOUT_S=str(STORE_TIMEOUT_S))
    with running_server(env) as server:
        auth = onboard(server, "stalled")
        assert server.get("/retailer/stalled", headers=auth).status_code == 200  # cached

        def refused(response: Any) -> None:
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]

        def truthful(response: Any) -> None:
            assert "nothing was written" in response.json()["error"]["message"]

        with lock_held(name, url, "api_keys"):
            refused(answer := server.post("/retailer/stalled/keys", headers=auth))
        assert settle(lambda: count(owner, api_keys, "stalled") == 1)
        assert server.get("/retailer/stalled", headers=auth).status_code == 200
        truthful(answer)

        with lock_held(name, url, "retailers"):
            refused(answer := server.post("/retailer", json=retailer_spec("newcomer"),
                                          headers=OPERATOR))  # fmt: skip
        assert settle(lambda: count(owner, retailers, "newcomer") == 0)
        truthful(answer)
        retried = server.post("/retailer", json=retailer_spec("newcomer"), headers=OPERATOR)
        assert retried.status_code == 201

        with lock_held(name, url, "events"):
            refused(answer := server.post("/events", json=batch("stalled", "s", 50), headers=auth))
        assert settle(lambda: count(owner, events, "stalled") == 0)
        truthful(answer)

        with lock_held(name, url, "events"):
            refused(answer := server.delete("/retailer/stalled", headers=auth))
        assert settle(lambda: count(owner, retailers, "stalled") == 1)
        truthful(answer)
        assert server.delete("/retailer/stalled", headers=auth).status_code == 204


def test_concurrent_resends_are_stored_once_and_all_answered_200(
    backend: tuple[str, str], tmp_path: Path
) -> None:
    name, url = backend
    log = tmp_path / "server.log"
    with running_server(server_env(url), log=log) as server:
        auth = onboard(server, "resender")
        statuses: list[int] = []
        with ThreadPoolExecutor(4) as pool:
            for round_ in range(30):  # 120 requests, four at a time
                body = batch("resender", f"r{round_}", 50)
                answers = list(pool.map(post_events, [server] * 4, [body] * 4, [auth] * 4))
                statuses += [a.status_code for a in answers]
                stored = [a.json()["stored"] for a in answers if a.status_code == 200]
                assert sum(stored) == 50, stored
        assert statuses == [200] * 120
        assert count(owner_url(name, url), events, "resender") == 30 * 50

        changed = batch("resender", "r7", 50, value=99.0)
        changed["events"] = changed["events"][:3] + batch("resender", "fresh", 2)["events"]
        answer = server.post("/events", json=changed, headers=auth)
        assert answer.status_code == 409, answer.text
        fields = [d["field"] for d in answer.json()["error"]["details"]]
        assert fields == ["events.0.event_id", "events.1.event_id", "events.2.event_id"]
        assert count(owner_url(name, url), events, "resender") == 30 * 50  # "fresh" not stored
    text_ = log.read_text()
    assert "r7-c1" not in text_ and "r7-1" not in text_


def post_events(server: Any, body: dict[str, Any], auth: dict[str, str]) -> Any:
    return server.post("/events", json=body, headers=auth)


def test_concurrent_key_rotations_leave_exactly_one_valid_key(backend: tuple[str, str]) -> None:
    _, url = backend
    with running_server(server_env(url)) as server:
        for trial in range(8):
            rid = f"rotated_{trial}"
            first = server.post("/retailer", json=retailer_spec(rid), headers=OPERATOR).json()
            auth = bearer(first["api_key"])
            assert server.get(f"/retailer/{rid}", headers=auth).status_code == 200
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(rotate, [server] * 8, [rid] * 8, [auth] * 8))
            keys = [key for key in answers if key is not None]
            assert keys
            valid = [
                k for k in [first["api_key"], *keys]
                if server.get(f"/retailer/{rid}", headers=bearer(k)).status_code == 200
            ]  # fmt: skip
            assert len(valid) == 1, (len(valid), len(keys))


def rotate(server: Any, rid: str, auth: dict[str, str]) -> str | None:
    """The new key, or None when the caller's key was revoked by a rotation that came first."""
    response = server.post(f"/retailer/{rid}/keys", headers=auth)
    if response.status_code == 401:
        return None
    assert response.status_code == 201, response.text
    return str(response.json()["api_key"])


def test_an_unexpected_database_error_is_logged_without_request_data(
    backend: tuple[str, str], tmp_path: Path
) -> None:
    name, url = backend
    log = tmp_path / "server.log"
    with running_server(server_env(url), log=log) as server:
        auth = onboard(server, "logged")
        break_event_inserts(name, owner_url(name, url))
        marker = f"secret-{uuid.uuid4().hex[:8]}"
        body = batch("logged", marker, 3, value=4321.5)
        answer = server.post("/events", json=body, headers=auth)
        assert answer.status_code == 500
    text_ = log.read_text()
    assert text_.count("unhandled error") == 1  # the failure is logged, once
    assert "Exception in ASGI application" not in text_
    for value in (marker, "4321.5", "4322.5", "logged-c"):
        assert value not in text_, value


def break_event_inserts(name: str, url: str) -> None:
    """Every insert into events fails with an integrity error (not an outage: a 500)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if name == "sqlite":
                conn.execute(text("CREATE TRIGGER planted BEFORE INSERT ON events "
                                  "BEGIN SELECT RAISE(ABORT, 'planted'); END"))  # fmt: skip
            else:
                conn.execute(text("ALTER TABLE events ADD CONSTRAINT planted "
                                  "CHECK (cart_value < 0) NOT VALID"))  # fmt: skip
    finally:
        engine.dispose()
