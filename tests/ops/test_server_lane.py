"""The fast lane taken in the HTTP protocol: ``POST /predict_cart`` answered between two reads
of the socket gets the very answer the app gives, whatever comes before or after it on the
connection.

Two real servers (uvicorn with the service's protocol, in threads) on one database: one app
with the fast lane, one without (every request through FastAPI). The same raw bytes go to
both; status, headers (but the date) and body must be equal, in the same order. A counter in
front of the lane's app shows which requests never reached it, so the comparison cannot pass
by the protocol handing everything on.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2 as httpx
import pytest
import uvicorn

from cartpredict.api.app import create_app
from cartpredict.ops.server import UVICORN
from tests.support.asgi import Counting
from tests.support.factories import OPERATOR, cart, make_settings, retailer_spec
from tests.support.feeds import await_a_feed_poll
from tests.support.servers import free_port

Answer = tuple[int, dict[str, str], bytes]  # status, headers but the date, body
BURST = 20  # a retailer's calls before the rate limit (which refills by 0.001 a second)


@contextmanager
def serving(app: Any) -> Iterator[int]:
    """The app served by uvicorn as ``cartpredict serve`` runs it, in a thread; its port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                            lifespan="on", **UVICORN)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield config.port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class Pair:
    def __init__(self, lane: int, plain: int, counted: Counting) -> None:
        self.lane, self.plain, self.counted = lane, plain, counted

    def both(self, raw: bytes, expect: int) -> tuple[list[Answer], int]:
        """Send ``raw`` on a new connection to each server; read ``expect`` answers (fewer if
        the server closes); assert they are the same; return them and how many requests
        reached the lane's app."""
        before = self.counted.calls
        fast, fast_closed = exchange(self.lane, raw, expect)
        reached = self.counted.calls - before
        slow, slow_closed = exchange(self.plain, raw, expect)
        assert fast == slow
        assert fast_closed == slow_closed
        return fast, reached


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    from cartpredict.storage.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('lane') / 'cartpredict.db'}"
    upgrade(url)
    # A burst that every test's calls for one retailer fit in, and the rate limit's test
    # exceeds: to see the limit answered alike and a request counted once.
    settings = make_settings(url, rate_limit_per_s=0.001, rate_limit_burst=BURST)
    counted = Counting(create_app(settings))
    with serving(counted) as lane, serving(create_app(settings, fast_lane=False)) as plain:
        yield Pair(lane, plain, counted)


def new_key(pair: Pair, retailer_id: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new retailer's key; returned once the lane's app has read the change (which would
    otherwise evict what a first request caches there)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{pair.plain}") as client:
        created = client.post("/retailer", json=retailer_spec(retailer_id), headers=OPERATOR)
    assert created.status_code == 201, created.text
    with monkeypatch.context() as patched:
        await_a_feed_poll(patched, pair.counted.app.state.services.store)
    return str(created.json()["api_key"])


def post(body: Any, key: str | None, *, version: str = "1.1", extra: str = "") -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (
        f"POST /predict_cart HTTP/{version}\r\nHost: test\r\n{auth}{extra}"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def answered(pair: Pair, status: int) -> float:
    """The lane's server's count of ``/predict_cart`` answers with ``status`` (/metrics)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{pair.lane}") as client:
        text = client.get("/metrics").text
    line = f'cartpredict_http_responses_total{{route="/predict_cart",status="{status}"}}'
    return float(next((x for x in text.splitlines() if x.startswith(line)), "_ 0").split()[-1])


def exchange(port: int, raw: bytes, expect: int) -> tuple[list[Answer], bool]:
    """The answers to ``raw``, sent in one write, and whether the server then closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        buffer, answers = b"", []
        while len(answers) < expect:
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    return answers, True
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
            length = int(headers["content-length"])
            while len(buffer) < length:
                buffer += sock.recv(65536)
            body, buffer = buffer[:length], buffer[length:]
            headers.pop("date", None)
            answers.append((int(lines[0].split()[1]), headers, body))
        sock.settimeout(0.3)  # a connection the server closes is closed by now
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
        return answers, closed


def test_the_protocol_answers_as_the_app_and_keeps_the_order(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key(pair, "store_1", monkeypatch)
    other = new_key(pair, "store_2", monkeypatch)
    pair.both(post(cart("store_1"), key) + post(cart("store_2"), other), 2)  # warm the caches
    requests = [
        post(cart("store_1", cart_value=12.5), key),
        b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n",  # the app's, between two of the lane's
        post(cart("store_1", cart_id="c-1", contactable=True), key),
        post(cart("store_1", cart_id="c-1", contactable=True), key),  # its decision, fixed
        post(b'{"retailer_id": "store_1", "cart_value": ', key),  # bad JSON: the app's 422
        post(cart("store_1", explain=True, device_type="desktop"), key),
        post(cart("store_1"), "cpk_unknown"),  # an unknown key: the app's 401
        post(cart("store_1", item_count=-1), key),  # an invalid cart
        post(cart("store_2", inactivity_hours=40), other),
    ]
    answers, _ = pair.both(b"".join(requests), len(requests))  # pipelined, in one write
    assert [status for status, _, _ in answers] == [200, 200, 200, 200, 422, 200, 401, 422, 200]
    first, fixed = json.loads(answers[2][2]), json.loads(answers[3][2])
    assert first["decision"] is not None and first["decision"] == fixed["decision"]
    assert "contributions" in json.loads(answers[5][2])
    statuses, reached = [], 0
    for raw in requests:  # one request a connection
        answered, reaching = pair.both(raw, 1)
        statuses.append(answered[0][0])
        reached += reaching
    assert statuses == [200, 200, 200, 200, 422, 200, 401, 422, 200]
    assert reached == 4  # the health check and the three errors; the lane answered the rest


def test_http_1_0_and_connection_close_are_answered_then_closed(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key(pair, "store_3", monkeypatch)
    pair.both(post(cart("store_3"), key), 1)
    for raw in (
        post(cart("store_3"), key, version="1.0"),
        post(cart("store_3"), key, extra="Connection: close\r\n"),
    ):
        before = pair.counted.calls
        answers, closed = exchange(pair.lane, raw + post(cart("store_3"), key), 2)
        assert pair.counted.calls == before  # the lane's answer
        assert len(answers) == 1 and answers[0][0] == 200 and closed
        assert answers[0][1]["connection"] == "close"
        pair.both(raw, 1)


def test_the_rate_limit_is_answered_alike_and_counts_a_request_once(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call for another retailer's cart is counted by the lane, then answered by the app
    (404), which must not count it again: ``BURST`` calls fit, the next gets 429 with its
    Retry-After. One call a connection, so that the protocol sees each."""
    key = new_key(pair, "store_4", monkeypatch)
    new_key(pair, "store_5", monkeypatch)
    calls = [post(cart("store_4"), key)] * 2 + [post(cart("store_5"), key)] * 2
    calls += [post(cart("store_4"), key)] * (BURST - 3)
    answers, reached = [], 0
    for raw in calls:
        answered, reaching = pair.both(raw, 1)
        answers += answered
        reached += reaching
    expected = [200, 200, 404, 404] + [200] * (BURST - 4) + [429]
    assert [status for status, _, _ in answers] == expected
    assert reached == 3  # the first call (the key not yet cached) and the two 404s
    assert int(answers[-1][1]["retry-after"]) >= 1
    assert json.loads(answers[-1][2])["error"]["code"] == "rate_limited"


def test_an_answer_of_the_lane_is_in_the_metrics(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key(pair, "store_6", monkeypatch)
    pair.both(post(cart("store_6"), key), 1)

    before, calls = answered(pair, 200), pair.counted.calls
    exchange(pair.lane, post(cart("store_6"), key) * 5, 5)
    assert pair.counted.calls == calls  # the lane answered the five
    assert answered(pair, 200) == before + 5


def test_a_client_that_leaves_mid_body_is_counted(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key(pair, "store_7", monkeypatch)

    before = answered(pair, 499)
    raw = post(cart("store_7"), key)
    with socket.create_connection(("127.0.0.1", pair.lane), timeout=10) as sock:
        sock.sendall(raw[:-20])  # the head and most of the body
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while answered(pair, 499) != before + 1:
        assert time.monotonic() < deadline, "the request that was left is not counted"
        time.sleep(0.05)
