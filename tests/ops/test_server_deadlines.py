"""Slow clients: a request's head and body each have a deadline (408, then the connection is
closed); a connection that sends nothing is closed; keep-alive connections are unaffected.

A real server (uvicorn with the service's protocol) and raw sockets, with deadlines of 1 s for
a head and 4 s for a body.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from cartpredict.serving.schemas import ErrorOut
from tests.support.factories import OPERATOR, OPERATOR_KEY, cart, retailer_spec
from tests.support.servers import running_server

pytestmark = pytest.mark.slow

HEAD_S = 1.0
BODY_S = 4.0  # longer than two heads' deadlines: a body's deadline must not stretch a head's
SLACK_S = 1.0  # the deadline is checked by a timer on a possibly busy machine
KEEP_ALIVE_S = 5.0  # uvicorn's default, left as it is


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    from cartpredict.storage.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('slow') / 'cartpredict.db'}"
    upgrade(url)
    env = {
        "CARTPREDICT_DATABASE_URL": url,
        "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY,
        "CARTPREDICT_HEADER_TIMEOUT_S": str(HEAD_S),
        "CARTPREDICT_BODY_TIMEOUT_S": str(BODY_S),
    }
    with running_server(env) as client:
        yield client


@pytest.fixture(scope="module")
def key(server: httpx.Client) -> str:
    created = server.post("/retailer", json=retailer_spec("store_1"), headers=OPERATOR)
    assert created.status_code == 201, created.text
    return str(created.json()["api_key"])


def connect(server: httpx.Client) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.base_url.port or 0), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def trickle(sock: socket.socket, data: bytes, *, every_s: float, until_s: float) -> bytes:
    """Send ``data`` a byte every ``every_s`` until the server answers or closes (what it
    sent is returned, up to the close), or ``until_s`` have passed."""
    received = b""
    deadline = time.monotonic() + until_s
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # closed by the server
            break
        readable, _, _ = select.select([sock], [], [], every_s)
        if readable:
            received += read_until_closed(sock, deadline)
            break
        assert time.monotonic() < deadline, "still open after the deadline"
    return received


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    received = b""
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"not closed in time; got {received!r}") from None
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, read whole."""
    sock.settimeout(10)
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def assert_408(response: bytes, what: str) -> None:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 408 Request Timeout", response
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    error = ErrorOut.model_validate(json.loads(body)).error
    assert (error.status, error.code) == (408, "request_timeout")
    assert what in error.message


def assert_body_times_out(sock: socket.socket, head: bytes, body: bytes) -> None:
    """The head sent at once, the body a byte at a time: 408 at the body's deadline."""
    sock.sendall(head)
    started = time.monotonic()
    response = trickle(sock, body, every_s=0.05, until_s=BODY_S + SLACK_S)
    elapsed = time.monotonic() - started
    assert_408(response, "body")
    assert BODY_S - 0.1 <= elapsed <= BODY_S + SLACK_S


def request_bytes(path: str, key: str, body: bytes) -> tuple[bytes, bytes]:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


def test_a_head_sent_slowly_gets_408_and_is_closed_at_the_deadline(server: httpx.Client) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
    with connect(server) as sock:
        started = time.monotonic()
        response = trickle(sock, head, every_s=0.05, until_s=HEAD_S + SLACK_S)
        elapsed = time.monotonic() - started
    assert_408(response, "head")
    assert HEAD_S - 0.1 <= elapsed <= HEAD_S + SLACK_S


@pytest.mark.parametrize("path", ["/predict_cart", "/events"])
def test_a_body_sent_slowly_gets_408_and_is_closed_at_the_deadline(
    server: httpx.Client, key: str, path: str
) -> None:
    """On the fast lane and on the framework's path alike: the deadline is the server's."""
    head, body = request_bytes(path, key, json.dumps(cart("store_1")).encode())
    with connect(server) as sock:
        assert_body_times_out(sock, head, body)


def test_a_slow_body_after_an_answered_request_gets_its_408_too(
    server: httpx.Client, key: str
) -> None:
    """The fast lane reads a prediction's body itself: the request the app answered before it
    on the connection is not the one the deadline cuts short."""
    head, body = request_bytes("/predict_cart", key, json.dumps(cart("store_1")).encode())
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 OK\r\n")
        assert_body_times_out(sock, head, body)


def test_a_connection_that_sends_nothing_is_closed_at_the_head_deadline(
    server: httpx.Client,
) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        assert read_until_closed(sock, started + HEAD_S + SLACK_S) == b""  # nothing to answer
    assert time.monotonic() - started >= HEAD_S - 0.1


def test_many_slow_connections_are_all_closed(server: httpx.Client) -> None:
    socks = [connect(server) for _ in range(100)]
    try:
        for sock in socks:
            sock.sendall(b"POST /predict_cart HTTP/1.1\r\nHost: te")  # and no more
        deadline = time.monotonic() + HEAD_S + 2 * SLACK_S
        for sock in socks:
            assert_408(read_until_closed(sock, deadline), "head")
        assert server.get("/healthz").status_code == 200
    finally:
        for sock in socks:
            sock.close()


def test_keep_alive_is_unaffected_by_the_deadlines(server: httpx.Client, key: str) -> None:
    """A body in pieces within the deadline is fine; idle time between requests is the
    keep-alive timeout's, not the head deadline's; and the keep-alive timeout still closes."""
    head, body = request_bytes("/predict_cart", key, json.dumps(cart("store_1")).encode())
    with connect(server) as sock:
        for pause_s in (0.0, 1.5 * HEAD_S):  # idle for longer than the head deadline
            time.sleep(pause_s)  # the client's idle time under test
            sock.sendall(head + body[:10])
            time.sleep(HEAD_S / 3)  # the body comes in pieces, well within its deadline
            sock.sendall(body[10:])
            response = read_response(sock)
            assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response
            assert b"abandonment_probability" in response
        idle_since = time.monotonic()
        assert read_until_closed(sock, idle_since + KEEP_ALIVE_S + SLACK_S) == b""
    assert time.monotonic() - idle_since >= KEEP_ALIVE_S - 0.5


def test_a_slow_body_within_its_deadline_does_not_stretch_the_next_head(
    server: httpx.Client, key: str
) -> None:
    """A body may take longer than a head's deadline; the next head still gets its own."""
    head, body = request_bytes("/predict_cart", key, json.dumps(cart("store_1")).encode())
    with connect(server) as sock:
        sock.sendall(head + body[:10])
        time.sleep(1.5 * HEAD_S)  # longer than a head may take, well within the body's deadline
        sock.sendall(body[10:])
        assert read_response(sock).startswith(b"HTTP/1.1 200 OK\r\n")
        started = time.monotonic()
        response = trickle(sock, head, every_s=0.05, until_s=HEAD_S + SLACK_S)
        elapsed = time.monotonic() - started
    assert_408(response, "head")
    assert elapsed <= HEAD_S + SLACK_S
