"""Per-retailer rate limits: the bucket, the 429 on both paths, sharing through Redis, and one
retailer's flood leaving another untouched (real server processes)."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartpredict.api.app import create_app
from cartpredict.api.fastlane import FastLane
from cartpredict.api.ratelimit import RateLimiter, Sharing
from cartpredict.monitoring.metrics import Metrics
from cartpredict.serving.schemas import ErrorOut
from tests.api.test_fastlane import Counting
from tests.support.factories import OPERATOR, OPERATOR_KEY, cart, make_settings, retailer_spec
from tests.support.servers import free_port, running_server


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the bucket ------------------------------------------------------------------------------


def test_a_bucket_admits_its_burst_then_its_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 5, monotonic=clock)
    assert [limiter.take("a") for _ in range(5)] == [0.0] * 5
    assert limiter.take("a") == pytest.approx(0.1)  # one token comes back every 0.1 s
    clock.now += 0.1
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    clock.now += 60  # a long pause refills the bucket, never past the burst
    assert sum(limiter.take("a") == 0.0 for _ in range(50)) == 5


def test_refused_requests_spend_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1, monotonic=clock)
    assert limiter.take("a") == 0.0
    for _ in range(1000):
        clock.now += 0.00005
        assert limiter.take("a") > 0
    clock.now += 0.0501  # just past 0.1 s after the admitted request, in all
    assert limiter.take("a") == 0.0


def test_every_retailer_has_its_own_bucket() -> None:
    limiter = RateLimiter(1, 2, monotonic=FakeClock())
    assert [limiter.take("a") for _ in range(3)][-1] > 0
    assert limiter.take("b") == 0.0
    assert limiter.take("b") == 0.0


def test_idle_full_buckets_are_dropped_and_busy_ones_kept() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 5, monotonic=clock)
    limiter.take("idle")
    limiter.take("busy")
    limiter.outgoing()  # an exchange: nothing spent since
    for _ in range(5):
        limiter.take("busy")
    clock.now += 0.2  # "idle" refilled; "busy" has not
    limiter.prune()
    assert len(limiter) == 1
    assert limiter.take("busy") == 0.0  # its state survived: 2 tokens back, one taken
    assert limiter.take("busy") == 0.0
    assert limiter.take("busy") > 0


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    limiter = RateLimiter(10, 5)
    assert limiter.refusal(0.01).headers == {"Retry-After": "1"}
    assert limiter.refusal(2.3).headers == {"Retry-After": "3"}
    assert limiter.refusal(0.01).status == 429


# --- shared through Redis --------------------------------------------------------------------


async def flood_two_workers(
    one: RateLimiter, two: RateLimiter, clock: FakeClock, exchange: Callable[[], Awaitable[None]]
) -> int:
    """Both workers offered 500 requests a second each for 3 s (simulated), exchanging every
    0.1 s: how many they admitted together."""
    admitted = 0
    for step in range(300):  # 10 ms each
        clock.now += 0.01
        for limiter in (one, two):
            admitted += sum(limiter.take("a") == 0.0 for _ in range(5))
        if step % 10 == 9:
            await exchange()
    return admitted


async def nothing() -> None:
    return None


def test_workers_that_exchange_counts_spend_one_budget() -> None:
    clock = FakeClock()
    one, two = RateLimiter(40, 10, monotonic=clock), RateLimiter(40, 10, monotonic=clock)
    counters: Counter[str] = Counter()

    async def exchange() -> None:  # what the Lua script does, for both workers in turn
        for limiter in (one, two):
            pending = limiter.outgoing()
            for who, n in pending:
                counters[who] += n
            limiter.incoming(pending, [counters[who] for who, _ in pending])

    unshared = (RateLimiter(40, 10, monotonic=clock), RateLimiter(40, 10, monotonic=clock))
    alone = asyncio.run(flood_two_workers(*unshared, clock, nothing))
    shared = asyncio.run(flood_two_workers(one, two, clock, exchange))
    budget = 40 * 3  # the rate over the 3 s
    assert alone >= 2 * budget  # each worker alone gives the whole rate
    assert budget <= shared <= budget + 2 * 10 + 0.1 * budget, shared


@pytest.mark.redis
def test_workers_share_one_budget_through_redis(redis_url: str) -> None:
    clock = FakeClock()
    one, two = RateLimiter(40, 10, monotonic=clock), RateLimiter(40, 10, monotonic=clock)
    prefix = f"cartpredict-test-{uuid.uuid4().hex}:rate:"

    async def run() -> tuple[int, float]:
        sharing = [Sharing(one, redis_url, prefix), Sharing(two, redis_url, prefix)]

        async def exchange() -> None:
            for s in sharing:
                await s.exchange()

        try:
            admitted = await flood_two_workers(one, two, clock, exchange)
            ttl = await sharing[0]._client.pttl(prefix + "a")
        finally:
            for s in sharing:
                await s.close()
        return admitted, ttl

    admitted, ttl = asyncio.run(run())
    budget = 40 * 3
    assert budget <= admitted <= budget + 2 * 10 + 0.1 * budget, admitted
    assert 0 < ttl <= 60_000  # idle counters expire


def test_while_redis_is_down_each_worker_limits_alone(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 2, monotonic=clock)
    sharing = Sharing(limiter, f"redis://127.0.0.1:{free_port()}/0", "test:rate:")

    async def run() -> None:
        try:
            for _ in range(3):
                limiter.take("a")
                await sharing.exchange()  # refused connection: no error, no wait
        finally:
            await sharing.close()

    with caplog.at_level(logging.WARNING, logger="cartpredict.api.ratelimit"):
        asyncio.run(run())
    warnings = [r.getMessage() for r in caplog.records if r.name == "cartpredict.api.ratelimit"]
    assert len(warnings) == 1  # once, not at every exchange
    assert "each worker limits on its own" in warnings[0]
    assert limiter.take("a") > 0  # still limited, locally
    clock.now += 0.1
    assert limiter.take("a") == 0.0


# --- the API ---------------------------------------------------------------------------------


def limited_app(sqlite_url: str, **overrides: Any) -> Any:
    settings = make_settings(sqlite_url, **overrides)
    return create_app(settings)


def new_retailer(client: TestClient, retailer_id: str) -> dict[str, str]:
    response = client.post("/retailer", json=retailer_spec(retailer_id), headers=OPERATOR)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def both(sqlite_url: str, clock: FakeClock) -> Iterator[tuple[TestClient, TestClient, Counting]]:
    """The lane and the framework path, over one app and one bucket per retailer (burst 3,
    almost no refill): what one path spends, the other sees."""
    settings = make_settings(sqlite_url)
    plain = create_app(settings, fast_lane=False)
    limiter = RateLimiter(0.01, 3, monotonic=clock)
    plain.state.limiter = limiter
    inner = Counting(plain)
    lane = FastLane(inner, services=plain.state.services, metrics=Metrics(), limiter=limiter)
    with TestClient(lane) as lane_client:
        yield lane_client, TestClient(plain), inner


def test_429_has_retry_after_and_the_error_shape_on_the_lane_and_the_framework(
    both: tuple[TestClient, TestClient, Counting],
) -> None:
    lane, plain, inner = both
    key = new_retailer(plain, "store_1")
    assert plain.post("/predict_cart", json=cart("store_1"), headers=key).status_code == 200
    assert lane.post("/predict_cart", json=cart("store_1"), headers=key).status_code == 200
    before = inner.calls
    assert lane.post("/predict_cart", json=cart("store_1"), headers=key).status_code == 200
    assert inner.calls == before  # the lane answered that one itself: key and retailer cached

    fast = lane.post("/predict_cart", json=cart("store_1"), headers=key)
    assert inner.calls == before  # ... and refused this one itself
    slow = plain.post("/predict_cart", json=cart("store_1"), headers=key)
    for response in (fast, slow):
        assert response.status_code == 429
        assert response.headers["content-type"] == "application/json"
        assert response.headers["retry-after"] == "100"  # 1 token at 0.01 a second
        error = ErrorOut.model_validate(response.json()).error
        assert (error.status, error.code) == (429, "rate_limited")
    assert fast.content == slow.content
    # Other routes too, and on both paths.
    assert lane.get("/retailer/store_1", headers=key).status_code == 429
    assert plain.get("/retailer/store_1", headers=key).status_code == 429


def test_a_request_is_counted_once_whichever_path_answers_it(
    both: tuple[TestClient, TestClient, Counting],
) -> None:
    lane, plain, inner = both
    key = new_retailer(plain, "store_1")
    new_retailer(plain, "store_2")
    # 1: counted once, by whichever path answers it.
    assert lane.post("/predict_cart", json=cart("store_1"), headers=key).status_code == 200
    # 2 and 3: counted by the lane, which then hands them to the framework (another tenant's
    # cart): the framework must not count them again.
    for _ in range(2):
        before = inner.calls
        response = lane.post("/predict_cart", json=cart("store_2"), headers=key)
        assert response.status_code == 404
        assert inner.calls == before + 1
    assert lane.post("/predict_cart", json=cart("store_1"), headers=key).status_code == 429


def test_the_operator_is_never_limited(both: tuple[TestClient, TestClient, Counting]) -> None:
    lane, plain, _ = both
    new_retailer(plain, "store_1")
    for client in (lane, plain):
        statuses = {client.get("/retailer/store_1", headers=OPERATOR).status_code
                    for _ in range(10)}  # fmt: skip
        assert statuses == {200}
    # The operator scores carts for any retailer, unlimited too.
    for _ in range(10):
        assert lane.post("/predict_cart", json=cart("store_1"), headers=OPERATOR).status_code == 200


def test_one_retailer_over_its_limit_leaves_another_alone(
    both: tuple[TestClient, TestClient, Counting],
) -> None:
    lane, plain, _ = both
    flooder = new_retailer(plain, "store_1")
    other = new_retailer(plain, "store_2")
    statuses = [lane.post("/predict_cart", json=cart("store_1"), headers=flooder).status_code
                for _ in range(10)]  # fmt: skip
    assert statuses == [200] * 3 + [429] * 7
    for client in (lane, plain, lane):
        assert client.post("/predict_cart", json=cart("store_2"), headers=other).status_code == 200


def test_a_new_key_does_not_refill_the_budget(
    both: tuple[TestClient, TestClient, Counting],
) -> None:
    lane, plain, _ = both
    key = new_retailer(plain, "store_1")
    for _ in range(3):
        assert lane.get("/retailer/store_1", headers=key).status_code == 200
    rotated = plain.post("/retailer/store_1/keys", headers=OPERATOR)
    new_key = {"Authorization": f"Bearer {rotated.json()['api_key']}"}
    assert lane.get("/retailer/store_1", headers=new_key).status_code == 429


def test_a_call_over_the_limit_is_refused_before_its_body_is_read(sqlite_url: str) -> None:
    with TestClient(limited_app(sqlite_url, rate_limit_per_s=0.01, rate_limit_burst=2)) as client:
        key = new_retailer(client, "store_1")
        for _ in range(2):
            assert client.get("/retailer/store_1", headers=key).status_code == 200
        # Not even JSON: the framework would answer 422, had it read the body.
        response = client.post("/events", content=b"{not json", headers=key | {
            "Content-Type": "application/json"})  # fmt: skip
        assert response.status_code == 429
        assert response.headers["retry-after"] == "100"
        exposition = client.get("/metrics").text
    assert 'cartpredict_http_responses_total{route="/events",status="429"} 1.0' in exposition


def test_refusals_are_counted_in_the_metrics_without_naming_anyone(sqlite_url: str) -> None:
    with TestClient(limited_app(sqlite_url, rate_limit_per_s=0.01, rate_limit_burst=1)) as client:
        key = new_retailer(client, "store_1")
        for _ in range(4):
            client.post("/predict_cart", json=cart("store_1"), headers=key)
        client.get("/retailer/store_1", headers=key)
        exposition = client.get("/metrics").text
    limited = [line for line in exposition.splitlines() if "rate_limited" in line]
    assert "cartpredict_rate_limited_requests_total 4.0" in limited
    assert not any("store_1" in line for line in limited)


def test_a_limit_of_zero_is_no_limit(sqlite_url: str) -> None:
    app = limited_app(sqlite_url, rate_limit_per_s=0, rate_limit_burst=1)
    assert app.state.limiter is None
    with TestClient(app) as client:
        key = new_retailer(client, "store_1")
        statuses = {client.post("/predict_cart", json=cart("store_1"), headers=key).status_code
                    for _ in range(20)}  # fmt: skip
    assert statuses == {200}


# --- real servers ----------------------------------------------------------------------------

RATE = 50  # a retailer's limit in these tests: low, so that 5x is cheap to send
BURST = 10


class Sender(threading.Thread):
    """Sends one request every 1/rate s on one keep-alive connection until ``stop``."""

    def __init__(self, port: int, key: dict[str, str], body: bytes, rate: float) -> None:
        super().__init__(daemon=True)
        self.port, self.key, self.body, self.rate = port, key, body, rate
        self.statuses: Counter[int] = Counter()
        self.retry_after: set[str | None] = set()
        self.stop = threading.Event()
        self.seconds = 0.0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = self.key | {"Content-Type": "application/json"}
        started = due = time.monotonic()
        try:
            while not self.stop.is_set():
                conn.request("POST", "/predict_cart", body=self.body, headers=headers)
                response = conn.getresponse()
                response.read()
                self.statuses[response.status] += 1
                if response.status == 429:
                    self.retry_after.add(response.getheader("Retry-After"))
                # Late (a busy machine)? Carry on from now: never a burst to catch up.
                due = max(due + 1 / self.rate, time.monotonic())
                self.stop.wait(due - time.monotonic())
        finally:
            self.seconds = time.monotonic() - started
            conn.close()


def send_for(seconds: float, *senders: Sender) -> None:
    for sender in senders:
        sender.start()
    time.sleep(seconds)  # the load's duration, not a wait for a condition
    for sender in senders:
        sender.stop.set()
    for sender in senders:
        sender.join(timeout=15)
        assert not sender.is_alive()


def body(retailer_id: str) -> bytes:
    return json.dumps(cart(retailer_id)).encode()


def server_env(sqlite_url: str, **more: str) -> dict[str, str]:
    return {
        "CARTPREDICT_DATABASE_URL": sqlite_url,
        "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY,
        "CARTPREDICT_RATE_LIMIT_PER_S": str(RATE),
        "CARTPREDICT_RATE_LIMIT_BURST": str(BURST),
        **more,
    }


@pytest.mark.slow
def test_a_retailer_flooding_at_five_times_its_limit_does_not_slow_another(
    sqlite_url: str,
) -> None:
    with running_server(server_env(sqlite_url)) as server:
        port = server.base_url.port
        assert port is not None
        keys = {}
        for rid in ("flooder", "steady"):
            created = server.post("/retailer", json=retailer_spec(rid), headers=OPERATOR)
            keys[rid] = {"Authorization": f"Bearer {created.json()['api_key']}"}
        steady_rate = 0.6 * RATE  # well within its own limit

        alone = Sender(port, keys["steady"], body("steady"), steady_rate)
        send_for(3.0, alone)
        loaded = Sender(port, keys["steady"], body("steady"), steady_rate)
        flood = [Sender(port, keys["flooder"], body("flooder"), RATE * 5 / 4) for _ in range(4)]
        send_for(3.0, loaded, *flood)

    assert set(alone.statuses) == {200}
    assert set(loaded.statuses) == {200}, loaded.statuses  # not one 429 for the other retailer
    per_s = {s: s.statuses[200] / s.seconds for s in (alone, loaded)}
    assert per_s[loaded] >= 0.8 * per_s[alone], per_s
    flooded: Counter[int] = Counter()
    for sender in flood:
        flooded += sender.statuses
    seconds = max(s.seconds for s in flood)
    assert sum(flooded.values()) >= 4 * RATE * seconds  # it did send at about 5x
    assert set(flooded) == {200, 429}
    assert flooded[200] <= RATE * seconds * 1.1 + BURST, flooded  # held to its limit
    assert {s.retry_after.pop() for s in flood if s.retry_after} == {"1"}
    print(f"\nsteady alone {per_s[alone]:.1f}/s, with the flood {per_s[loaded]:.1f}/s; "
          f"flood {dict(flooded)} in {seconds:.1f} s")  # fmt: skip


@pytest.mark.slow
@pytest.mark.redis
def test_two_servers_with_redis_hold_a_retailer_to_one_limit(
    sqlite_url: str, redis_url: str
) -> None:
    env = server_env(
        sqlite_url,
        CARTPREDICT_REDIS_URL=redis_url,
        CARTPREDICT_REDIS_CHANNEL=f"cartpredict-test-{uuid.uuid4().hex}",
    )
    with running_server(env) as one, running_server(env) as two:
        created = one.post("/retailer", json=retailer_spec("flooder"), headers=OPERATOR)
        key = {"Authorization": f"Bearer {created.json()['api_key']}"}
        senders = [
            Sender(server.base_url.port or 0, key, body("flooder"), RATE * 5 / 4)
            for server in (one, two, one, two)
        ]
        send_for(3.0, *senders)
    admitted = sum(s.statuses[200] for s in senders)
    sent = sum(sum(s.statuses.values()) for s in senders)
    seconds = max(s.seconds for s in senders)
    budget = RATE * seconds
    # Alone, each server would admit the whole rate: twice the budget.
    assert sent >= 4 * budget
    assert 0.9 * budget <= admitted <= 1.25 * budget + 2 * BURST, (admitted, budget)
    print(f"\ntwo servers, one budget: {admitted} admitted of {sent} in {seconds:.1f} s "
          f"(limit {RATE}/s)")  # fmt: skip
