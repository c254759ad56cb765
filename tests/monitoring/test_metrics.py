"""/metrics counts every response and every scored cart, whichever path served them, and,
with several workers, whichever worker is scraped."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from cartpredict.api.app import create_app
from cartpredict.ops.loadtest import process_tree
from tests.support.factories import (
    OPERATOR,
    OPERATOR_KEY,
    cart,
    create_retailer,
    make_settings,
    retailer_spec,
)
from tests.support.feeds import await_a_feed_poll
from tests.support.servers import running_server, server_pid

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
TWO_WORKERS = ("serve", "--no-migrate", "--workers", "2")


def samples(client: httpx.Client) -> Samples:
    response = client.get("/metrics", headers={"Connection": "close"})  # either worker
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def predictions(client: TestClient, kind: str) -> float:
    return samples(client)[("cartpredict_predictions_total", (("kind", kind),))]


def responses(client: TestClient, route: str, status: int) -> float:
    key = ("cartpredict_http_responses_total", (("route", route), ("status", str(status))))
    return samples(client).get(key, 0.0)


@pytest.mark.parametrize("fast_lane", [True, False])
def test_every_scored_cart_is_counted_once(sqlite_url: str, fast_lane: bool) -> None:
    with TestClient(create_app(make_settings(sqlite_url), fast_lane=fast_lane)) as client:
        key = create_retailer(client, "store_1")
        for _ in range(3):  # the first one fills the cache through the framework
            assert (
                client.post("/predict_cart", json=cart("store_1"), headers=key).status_code == 200
            )
        batch = {"carts": [cart("store_1")] * 4}
        assert client.post("/predict_cart/batch", json=batch, headers=key).status_code == 200
        refused = {"carts": [cart("store_1"), cart("store_1", shipping_speed="overnight")]}
        assert client.post("/predict_cart/batch", json=refused, headers=key).status_code == 422
        assert predictions(client, "baseline") == 7
        assert responses(client, "/predict_cart", 200) == 3
        assert responses(client, "/predict_cart/batch", 422) == 1


def test_server_errors_are_counted(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(make_settings(sqlite_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        create_retailer(client, "store_1")

        def broken(*_: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setattr(app.state.services.models, "info", broken)
        answer = client.get("/retailer/store_1/model", headers=OPERATOR)
        assert answer.status_code == 500
        assert answer.json()["error"]["code"] == "internal_error"
        assert responses(client, "/retailer/{retailer_id}/model", 500) == 1
        client.get("/no/such/path")
        assert responses(client, "other", 404) == 1


def test_cache_lookups_and_the_models_served_are_counted(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth_a = create_retailer(client, "store_a")
    auth_b = create_retailer(client, "store_b")
    store = client.app.state.services.store
    await_a_feed_poll(monkeypatch, store)  # the creations are applied: nothing invalidates later
    monkeypatch.undo()
    before = samples(client)

    def lookups(now: dict[Any, float], cache: str, result: str) -> float:
        key = ("cartpredict_cache_lookups_total", (("cache", cache), ("result", result)))
        return now.get(key, 0.0) - before.get(key, 0.0)

    for _ in range(3):
        for rid, auth in (("store_a", auth_a), ("store_b", auth_b)):
            assert client.post("/predict_cart", json=cart(rid), headers=auth).status_code == 200
    after = samples(client)
    assert lookups(after, "tenant", "hit") >= 4  # the first of each was a miss, then cached
    assert lookups(after, "tenant", "miss") >= 2
    assert lookups(after, "key", "hit") >= 4
    served = ("cartpredict_model_versions_served", (("kind", "baseline"),))
    assert after[served] == 1.0  # both retailers, one version: the baseline rule
    assert after[("cartpredict_cached_retailers", (("kind", "baseline"),))] == 2.0


def total(now: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's samples over every label not given."""
    wanted = set(labels.items())
    return sum(value for (n, ls), value in now.items() if n == name and wanted <= set(ls))


def tenant_lookups(now: Samples) -> float:
    return total(now, "cartpredict_cache_lookups_total", cache="tenant")


def cached_by_worker(now: Samples) -> dict[str, float]:
    """Retailers each worker has loaded (one series per worker, labelled by its pid)."""
    return {
        dict(labels)["pid"]: value
        for (name, labels), value in now.items()
        if name == "cartpredict_cached_retailers" and dict(labels)["kind"] == "baseline"
    }


def both_warm(cached: dict[str, float]) -> bool:
    return len(cached) == 2 and set(cached.values()) == {1.0}


def from_files(directory: Path) -> Samples:
    """What a scrape would read, read from the workers' files without asking any of them."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in MultiProcessCollector(None, path=str(directory)).collect()
        for s in family.samples
    }


def predict_until(
    server: httpx.Client, auth: dict[str, str], done: Callable[[], bool], *, bound_s: float = 15
) -> int:
    """Predict, each on a new connection (either worker may take it), until ``done``; return
    how many were made."""
    made, deadline = 0, time.monotonic() + bound_s
    while not done():
        assert time.monotonic() < deadline, f"not done after {made} predictions"
        for _ in range(5):
            answer = server.post("/predict_cart", json=cart("store_1"), headers=auth)
            assert answer.status_code == 200, answer.text
        made += 5
    return made


def wait_until(done: Callable[[], bool], *, bound_s: float = 10) -> None:
    deadline = time.monotonic() + bound_s
    while not done():
        assert time.monotonic() < deadline, "not within the bound"
        time.sleep(0.05)


def worker_pids(server: httpx.Client) -> set[str]:
    return {str(pid) for pid in process_tree(server_pid(server))[1:]}


def onboard(server: httpx.Client) -> dict[str, str]:
    created = server.post("/retailer", json=retailer_spec("store_1"), headers=OPERATOR)
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['api_key']}", "Connection": "close"}


@pytest.mark.slow
def test_with_two_workers_every_scrape_counts_what_both_served(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Ten scrapes in a row, each answered by either worker, all report the server's N
    predictions (not the answering worker's share), in every counter and the histogram."""
    scratch = tmp_path / "tmp"  # where the server makes its metrics directory
    scratch.mkdir()
    env = {
        "CARTPREDICT_DATABASE_URL": sqlite_url,
        "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY,
        "TMPDIR": str(scratch),
    }
    with running_server(env, command=TWO_WORKERS) as server:
        assert len(list(scratch.glob("cartpredict-metrics-*"))) == 1
        auth = onboard(server)
        # Until both workers hold the retailer: both have served predictions.
        n = predict_until(server, auth, lambda: both_warm(cached_by_worker(samples(server))))
        wait_until(lambda: tenant_lookups(samples(server)) >= n)  # each worker's, within 1 s
        for _ in range(10):
            now = samples(server)
            assert total(now, "cartpredict_predictions_total") == n
            assert total(now, "cartpredict_http_responses_total", route="/predict_cart") == n
            assert now[("cartpredict_http_responses_total",
                        (("route", "/predict_cart"), ("status", "200")))] == n  # fmt: skip
            assert total(now, "cartpredict_http_request_duration_seconds_count",
                         route="/predict_cart") == n  # fmt: skip
            assert total(now, "cartpredict_http_responses_total", route="/retailer") == 1
            assert tenant_lookups(now) >= n  # one per prediction, or more
    assert list(scratch.glob("cartpredict-metrics-*")) == []  # removed when the server stopped


@pytest.mark.slow
def test_workers_publish_unasked_and_a_replaced_worker_keeps_its_counts(
    sqlite_url: str, tmp_path: Path
) -> None:
    """In the operator's directory: stale files go at start; each worker writes its cache
    figures without being scraped; a worker that dies loses its gauges but not its counts."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    (shared / "counter_999999.db").write_bytes(b"left by an earlier server")
    env = {
        "CARTPREDICT_DATABASE_URL": sqlite_url,
        "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY,
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    with running_server(env, command=TWO_WORKERS) as server:
        assert not (shared / "counter_999999.db").exists()
        wait_until(lambda: len(worker_pids(server)) == 2)
        workers = worker_pids(server)
        auth = onboard(server)
        # No scrape in this loop: what the files show, each worker wrote of its own accord.
        n = predict_until(
            server,
            auth,
            lambda: cached_by_worker(from_files(shared)) == dict.fromkeys(workers, 1.0),
        )
        gone = min(workers)
        os.kill(int(gone), signal.SIGKILL)

        def replaced() -> bool:
            now = worker_pids(server)
            return len(now) == 2 and gone not in now | set(cached_by_worker(samples(server)))

        wait_until(replaced)
        for _ in range(10):
            assert total(samples(server), "cartpredict_predictions_total") == n
    assert list(shared.glob("*.db")) == []  # the directory is the operator's: only emptied
