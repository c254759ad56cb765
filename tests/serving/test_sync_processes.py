"""Two real server processes on one database: a change made through one reaches the other.

The documented bound is 2 s (each worker polls the change feed every ``sync_interval_s``;
with Redis, the change is pushed at once).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from cartpredict.ops.loadtest import process_tree
from tests.support.factories import OPERATOR, OPERATOR_KEY, cart, retailer_spec
from tests.support.servers import running_server, server_pid

BOUND_S = 2.0

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ],
)
def test_a_patch_through_one_server_is_seen_by_the_other_within_the_bound(
    request: pytest.FixtureRequest, backend: str
) -> None:
    database, _, with_redis = backend.partition("+")
    env = {
        "CARTPREDICT_DATABASE_URL": request.getfixturevalue(f"{database}_url"),
        "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY,
    }
    if with_redis:
        env["CARTPREDICT_REDIS_URL"] = request.getfixturevalue("redis_url")
        env["CARTPREDICT_REDIS_CHANNEL"] = f"cartpredict-test-{uuid.uuid4().hex}"
    with running_server(env) as one, running_server(env) as two:
        created = one.post("/retailer", json=retailer_spec("store_1"), headers=OPERATOR)
        auth = {"Authorization": f"Bearer {created.json()['api_key']}"}
        express = cart("store_1", shipping_speed="express")
        # The second server has the retailer cached, and accepts express shipping.
        assert two.post("/predict_cart", json=express, headers=auth).status_code == 200
        assert two.get("/retailer/store_1", headers=auth).json()["shipping_speeds"] == [
            "standard",
            "express",
        ]

        patched = one.patch(
            "/retailer/store_1", json={"shipping_speeds": ["standard"]}, headers=auth
        )
        assert patched.status_code == 200
        start = time.monotonic()
        while two.post("/predict_cart", json=express, headers=auth).status_code == 200:
            assert time.monotonic() - start <= BOUND_S, "change not visible within the bound"
            time.sleep(0.01)
        elapsed = time.monotonic() - start
        assert two.get("/retailer/store_1", headers=auth).json() == patched.json()
        print(f"\n{backend}: PATCH visible in the other server after {elapsed * 1000:.0f} ms")

        # A revoked key stops working everywhere, too.
        one.post("/retailer/store_1/keys", headers=auth)
        start = time.monotonic()
        while two.get("/retailer/store_1", headers=auth).status_code == 200:
            assert time.monotonic() - start <= BOUND_S, "revoked key still accepted"
            time.sleep(0.01)


def test_one_server_with_two_workers_serves_and_every_worker_sees_a_change(
    sqlite_url: str,
) -> None:
    """Workers are forked from a parent that has imported the app; each builds its own."""
    env = {"CARTPREDICT_DATABASE_URL": sqlite_url, "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY}
    with running_server(env, command=("serve", "--workers", "2")) as server:
        created = server.post("/retailer", json=retailer_spec("store_1"), headers=OPERATOR)
        auth = {"Authorization": f"Bearer {created.json()['api_key']}"}
        close = auth | {"Connection": "close"}  # a new connection each time: either worker
        express = cart("store_1", shipping_speed="express")
        assert {server.post("/predict_cart", json=express, headers=close).status_code
                for _ in range(20)} == {200}  # fmt: skip
        server.patch("/retailer/store_1", json={"shipping_speeds": ["standard"]}, headers=auth)
        time.sleep(BOUND_S)
        statuses = [server.post("/predict_cart", json=express, headers=close).status_code
                    for _ in range(20)]  # fmt: skip
        assert set(statuses) == {422}, statuses

        # The workers were forked from the parent, not started as fresh interpreters.
        parent = server_pid(server)
        workers = process_tree(parent)[1:]
        assert len(workers) == 2
        for pid in workers:
            assert b"multiprocessing" not in Path(f"/proc/{pid}/cmdline").read_bytes()
