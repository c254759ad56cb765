"""Faults: the database or Redis goes away, under load, and comes back.

Proven without starting any server (fast):

* A database error that means the store did not answer (connection refused or lost, a
  connection invalidated mid-request, the pool exhausted) is a 503 ``store_unavailable`` with
  ``Retry-After``, in the one error shape, on every route that needs the store; any other
  database error is still a 500.
* Meanwhile cached retailers are still served (the fast lane, a batch, a cached read), a key
  that is not cached gets a 503, never a 401, and ``/readyz`` answers 503; once the store is
  back, writes succeed again.
* Periodic work (the change feed's poll, the purge) survives failures, warns once rather than
  on every attempt, and says when it has recovered; a feed unreadable for longer than it keeps
  entries keeps serving from the cache and drops it only once it can read again.
* Publishing to, or pinging, a Redis that is not there fails within a bound.

Proven against real processes (a ``cartpredict serve`` process, and a PostgreSQL or Redis
server of the test's own, stopped and restarted under a bounded load on loopback):

* PostgreSQL down: no prediction for a cached retailer fails; every write answers 503 with
  ``Retry-After`` quickly (never a 500, never a hang); ``/readyz`` is 503 until the database is
  back, then 200; every write refused meanwhile succeeds when retried, every event is in the
  database exactly once, and the change feed's poller works again.
* Redis down: predictions keep answering; a change made through another server still reaches
  this one (the change feed); ``/readyz`` stays 200 and reports Redis degraded, then ok once it
  is back; then the pub/sub path works again, end to end.

Before a fault, each test waits until the change feed has been read since the cache was warmed
(an event, not a few of its intervals slept away), so a busy machine changes nothing but the
figures: what the cache holds then is what the fault meets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cartpredict.api.app import create_app
from cartpredict.models import BaselineRule
from cartpredict.serving.background import repeat
from cartpredict.serving.cache import Tenant, TenantCache
from cartpredict.serving.sync import FEED_RETENTION, ChangeFeed, RedisBus
from cartpredict.storage import Retailer, open_store
from tests.support.databases import unavailable
from tests.support.factories import OPERATOR, OPERATOR_KEY, cart, create_retailer, make_settings
from tests.support.factories import retailer_spec as spec
from tests.support.feeds import await_a_feed_poll
from tests.support.servers import free_port, running_server

T0 = datetime(2026, 11, 1, tzinfo=UTC)
WRITE_BOUND_S = 5.0  # the longest any request may take to be answered, outage or not
FEED_BOUND_S = 2.0  # the documented bound for a change to reach every worker
OUTAGE_S = 3.0
BASELINE_S = 1.0
RECOVERY_S = 1.5
LOAD_LIMIT_S = 40.0  # every load thread stops by then, whatever happens
MAX_PREDICTIONS = 20_000  # per thread
MAX_EVENTS = 1_000


# --- without servers -------------------------------------------------------------------------


def refused() -> OperationalError:
    """The error a real driver raises when the database server is not there."""
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("connected to a port nobody listens on")


OUTAGES: dict[str, Callable[[], Exception]] = {
    "connection refused": refused,
    "connection closed": lambda: InterfaceError("SELECT 1", {}, Exception("connection closed")),
    "connection invalidated": lambda: DBAPIError(
        "SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True
    ),
    "pool exhausted": lambda: PoolTimeout("QueuePool limit of size 5 overflow 5 reached"),
}
BUGS: dict[str, Callable[[], Exception]] = {
    "programming error": lambda: ProgrammingError("SELEC 1", {}, Exception("syntax error")),
    "integrity error": lambda: IntegrityError("INSERT", {}, Exception("duplicate key")),
}


def raiser(error: Exception) -> Callable[..., Any]:
    def fail(*_: Any, **__: Any) -> Any:
        raise error

    return fail


def break_store(monkeypatch: pytest.MonkeyPatch, store: Any, error: Exception) -> None:
    """Every call of the store raises ``error`` (``monkeypatch.undo()`` mends it)."""
    for name in dir(store):
        if not name.startswith("_") and name != "close" and callable(getattr(store, name)):
            monkeypatch.setattr(store, name, raiser(error))


@pytest.fixture
def seeded(sqlite_url: str) -> dict[str, dict[str, str]]:
    """Retailers a and b, created before the app under test starts (so its change feed has
    nothing to invalidate later); their Authorization headers."""
    with TestClient(create_app(make_settings(sqlite_url))) as setup:
        return {rid: create_retailer(setup, rid) for rid in ("a", "b")}


def event(event_id: str, retailer_id: str = "a") -> dict[str, Any]:
    at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return {
        "retailer_id": retailer_id,
        "events": [
            {
                "event_id": event_id,
                "type": "cart_updated",
                "cart_id": f"c-{event_id}",
                "at": at,
                "cart_value": 45.99,
                "item_count": 3,
                "device_type": "mobile",
                "shipping_speed": "standard",
            }
        ],
    }


def assert_store_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"status", "code", "message", "details"}
    assert error["status"] == 503
    assert error["code"] == "store_unavailable"


@pytest.mark.parametrize("outage", list(OUTAGES))
def test_while_the_store_is_down_writes_are_503s_and_cached_retailers_are_served(
    sqlite_url: str,
    seeded: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    outage: str,
) -> None:
    a, b = seeded["a"], seeded["b"]
    app = create_app(make_settings(sqlite_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        for _ in range(2):  # the first caches a's key and configuration
            assert client.post("/predict_cart", json=cart("a"), headers=a).status_code == 200
        served = client.post("/predict_cart", json=cart("a"), headers=a).json()
        # The change feed has run since: whatever it evicts, it has evicted by now.
        await_a_feed_poll(monkeypatch, app.state.services.store)

        break_store(monkeypatch, app.state.services.store, OUTAGES[outage]())
        # Cached: answered as before.
        assert client.post("/predict_cart", json=cart("a"), headers=a).json() == served
        batch = client.post("/predict_cart/batch", json={"carts": [cart("a")] * 2}, headers=a)
        assert batch.status_code == 200
        assert client.get("/retailer/a", headers=a).status_code == 200
        assert client.get("/healthz").status_code == 200
        # Everything that needs the store: a 503 to retry, never a 500.
        for response in (
            client.post("/events", json=event("e-1"), headers=a),
            client.patch("/retailer/a", json={"precision_target": 0.8}, headers=a),
            client.patch("/retailer/b", json={"precision_target": 0.8}, headers=OPERATOR),
            client.post("/retailer", json=spec("c"), headers=OPERATOR),
            client.get("/retailer/b", headers=OPERATOR),  # not cached
            client.post("/predict_cart", json=cart("b"), headers=b),  # key not cached: not a 401
            client.get("/retailer/a/model", headers=a),
            client.delete("/retailer/b", headers=OPERATOR),
        ):
            assert_store_unavailable(response)
        ready = client.get("/readyz")
        assert_store_unavailable(ready)
        assert ready.json()["error"]["details"][0]["field"] == "store"

        monkeypatch.undo()  # the store is back
        assert client.get("/readyz").status_code == 200
        assert client.post("/events", json=event("e-1"), headers=a).json()["stored"] == 1
        patched = client.patch("/retailer/b", json={"precision_target": 0.8}, headers=OPERATOR)
        assert patched.status_code == 200
        assert client.post("/predict_cart", json=cart("b"), headers=b).status_code == 200


@pytest.mark.parametrize("bug", list(BUGS))
def test_any_other_database_error_is_still_a_500(
    sqlite_url: str, seeded: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch, bug: str
) -> None:
    app = create_app(make_settings(sqlite_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.get("/retailer/a", headers=seeded["a"])
        monkeypatch.setattr(app.state.services.store, "add_events", raiser(BUGS[bug]()))
        response = client.post("/events", json=event("e-1"), headers=seeded["a"])
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal_error"
        assert "retry-after" not in response.headers


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def background_log() -> Iterator[list[logging.LogRecord]]:
    """What ``cartpredict.serving.background`` logs, whatever logging configuration ran before."""
    logger, handler = logging.getLogger("cartpredict.serving.background"), Records()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_periodic_work_survives_an_outage_warns_once_and_says_when_it_recovered(
    background_log: list[logging.LogRecord],
) -> None:
    error = refused()
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        if 2 <= len(calls) <= 6:  # the store goes away after the first run, for five runs
            raise error

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            repeat(work, every_s=0.01, stop=stop, what="change feed poll", at_once=True)
        )
        deadline = time.monotonic() + 5
        while len(calls) < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(scenario())
    assert len(calls) >= 10  # kept running through the failures and after them
    messages = [r.getMessage() for r in background_log]
    failed = [m for m in messages if "failed:" in m]
    recovered = [m for m in messages if "recovered" in m]
    assert len(failed) == 1, messages  # once, not once per attempt
    assert failed[0].startswith("change feed poll failed: OperationalError")
    assert "[SQL" not in failed[0]  # the driver's message, not statements and parameters
    assert len(recovered) == 1 and "5 failed" in recovered[0], messages


class FailingFeed:
    """A change feed whose store can be taken away."""

    def __init__(self) -> None:
        self.down = False

    def last_change_seq(self) -> int:
        return 0

    def changes_after(self, *, seq: int) -> list[Any]:
        if self.down:
            raise refused()
        return []


def tenant(retailer_id: str) -> Tenant:
    retailer = Retailer(retailer_id, True, ("card",), ("standard",), False, 0.7, T0, T0)
    return Tenant(retailer=retailer, model=BaselineRule())


def test_a_long_outage_keeps_the_cache_serving_and_drops_it_once_the_feed_is_readable() -> None:
    now = [0.0]
    store, cache = FailingFeed(), TenantCache()
    feed = ChangeFeed(store, cache, monotonic=lambda: now[0])  # type: ignore[arg-type]
    cache.put_tenant(tenant("a"), generation=0)
    feed.poll()
    store.down = True
    for _ in range(3):  # far longer than the feed keeps its entries, and still unreadable
        now[0] += FEED_RETENTION.total_seconds()
        with pytest.raises(OperationalError):
            feed.poll()
        assert cache.tenant("a") is not None  # nothing can have changed without the store
    store.down = False
    feed.poll()
    assert cache.tenant("a") is None  # changes may have been pruned unseen: read afresh
    cache.put_tenant(tenant("a"), generation=cache.generation("a"))
    feed.poll()
    assert cache.tenant("a") is not None


def test_a_redis_that_is_not_there_fails_fast() -> None:
    bus = RedisBus(f"redis://127.0.0.1:{free_port()}/0", "cartpredict-test")
    try:
        started = time.monotonic()
        bus.publish("a")  # logged, not raised: the change feed carries the change
        assert time.monotonic() - started < 1.0
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            bus.ping()
        assert time.monotonic() - started < 1.0
    finally:
        bus.close()


# --- servers of the test's own ---------------------------------------------------------------


def _postgres_bin() -> Path | None:
    """``CARTPREDICT_TEST_POSTGRES_BIN``, else the newest /usr/lib/postgresql/*/bin, else
    where ``pg_ctl`` is on the PATH."""
    configured = os.environ.get("CARTPREDICT_TEST_POSTGRES_BIN")
    if configured:
        return Path(configured)

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.parent.name))

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=version)
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


class OwnPostgres:
    """A PostgreSQL cluster in a temporary directory: trust authentication, TCP on one
    loopback port, its Unix socket in the directory too. PostgreSQL refuses to run as root,
    so under root it runs as the ``postgres`` user."""

    def __init__(self, bin_dir: Path, root: Path, port: int, user: pwd.struct_passwd | None):
        self.bin, self.root, self.port, self.user = bin_dir, root, port, user
        self.data = root / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/cartpredict"

    def _run(self, *args: str, timeout_s: float = 60) -> None:
        as_user: dict[str, Any] = {}
        if self.user is not None:
            as_user = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        done = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.root,
            capture_output=True,
            timeout=timeout_s,
            check=False,
            **as_user,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.decode()}{self.log_tail()}")

    def init(self) -> None:
        flags = ["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions"]
        self._run("initdb", "-D", str(self.data), *flags)

    def start(self) -> None:
        sockets = self.root / "socket"
        sockets.mkdir(exist_ok=True)
        if self.user is not None:
            os.chown(sockets, self.user.pw_uid, self.user.pw_gid)
        options = f"-p {self.port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def log_tail(self) -> str:
        path = self.root / "postgres.log"
        return "\n" + path.read_text()[-2000:] if path.exists() else ""


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """A PostgreSQL server of this test's own, with a ``cartpredict`` database; stopped and
    deleted afterwards, whatever happened. (The shared server is never touched.)"""
    bin_dir = _postgres_bin()
    what = "PostgreSQL's own server (initdb, pg_ctl)"
    if bin_dir is None or not (bin_dir / "initdb").exists():
        unavailable(what, f"not found in {bin_dir or '/usr/lib/postgresql/*/bin or PATH'}")
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            unavailable(what, "running as root, and there is no postgres user to run it as")
    root = Path(tempfile.mkdtemp(prefix="cartpredict-pg-"))
    server = OwnPostgres(bin_dir, root, free_port(), user)  # type: ignore[arg-type]
    try:
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        server.init()
        server.start()
        admin = create_engine(
            server.url.replace("/cartpredict", "/postgres"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE cartpredict"))
        admin.dispose()
        yield server
    finally:
        _stop_postgres(server)
        shutil.rmtree(root, ignore_errors=True)


def _stop_postgres(server: OwnPostgres) -> None:
    if not server.running():
        return
    try:
        server.stop("immediate")
    except (RuntimeError, subprocess.TimeoutExpired):  # then the postmaster, by its own pid
        with contextlib.suppress(OSError, ValueError):
            pid = int((server.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)


class OwnRedis:
    """A Redis server on a free loopback port, persisting nothing, in a temporary directory."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary, self.root, self.port = binary, root, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.root / "redis.log").open("ab") as log:
            where = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root)]
            nothing_on_disk = ["--save", "", "--appendonly", "no"]
            self.process = subprocess.Popen(
                [self.binary, *where, *nothing_on_disk],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    """A Redis server of this test's own, stopped and deleted afterwards."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        unavailable("redis-server", f"not found at {binary}")
    root = Path(tempfile.mkdtemp(prefix="cartpredict-redis-"))
    server = OwnRedis(binary, root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- bounded load ----------------------------------------------------------------------------


@dataclass
class Sent:
    what: str
    started: float
    elapsed: float
    status: int | None  # None: no answer (a transport error or a timeout)
    response: httpx.Response | None
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def ended(self) -> float:
        return self.started + self.elapsed


def req(method: str, url: str, headers: dict[str, str], body: Any = None) -> dict[str, Any]:
    request: dict[str, Any] = {"method": method, "url": url, "headers": headers}
    if body is not None:
        request["json"] = body
    return request


def send(client: httpx.Client, what: str, request: dict[str, Any]) -> Sent:
    started = time.monotonic()
    try:
        response: httpx.Response | None = client.request(**request)
    except httpx.TransportError:
        response = None
    elapsed = time.monotonic() - started
    status = response.status_code if response is not None else None
    return Sent(what, started, elapsed, status, response, request)


class Load:
    """Threads sending requests until told to stop, each for at most ``LOAD_LIMIT_S`` and a
    fixed number of requests; every request and its answer is recorded."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.sent: list[Sent] = []
        self._threads: list[threading.Thread] = []
        self._deadline = time.monotonic() + LOAD_LIMIT_S

    def add(
        self, server: httpx.Client, what: str, make: Callable[[int], dict[str, Any]], limit: int
    ) -> None:
        """A thread sending ``make(0)``, ``make(1)``, ... to the server, a few ms apart."""

        def run() -> None:
            with httpx.Client(base_url=server.base_url, timeout=WRITE_BOUND_S * 2) as client:
                for i in range(limit):
                    if self.stopping.is_set() or time.monotonic() > self._deadline:
                        return
                    self.sent.append(send(client, what, make(i)))
                    time.sleep(PAUSE_S[what.split()[0]])

        thread = threading.Thread(target=run, name=f"load: {what}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=LOAD_LIMIT_S)
        assert not any(t.is_alive() for t in self._threads)

    def of(self, what: str) -> list[Sent]:
        return [s for s in self.sent if s.what.startswith(what)]


PAUSE_S = {"predict": 0.002, "event": 0.02}


def statuses(sent: list[Sent]) -> dict[int | None, int]:
    out: dict[int | None, int] = {}
    for s in sent:
        out[s.status] = out.get(s.status, 0) + 1
    return out


def wait_for(check: Callable[[], bool], *, within_s: float, what: str) -> float:
    """Poll ``check`` until true; how long it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within_s, f"{what}: not within {within_s}s"
        time.sleep(0.02)
    return time.monotonic() - started


def log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# --- a real server's change feed, waited for rather than slept on ----------------------------

MARK = "feed_mark"  # a retailer nothing changes but ``FeedMark``


def created_before_start(url: str, *retailer_ids: str) -> dict[str, dict[str, str]]:
    """Create the retailers, and ``MARK``, through an app of the test's own before any server
    starts: committed before a server's change feed began, they are never applied by it (no
    eviction at an unknown moment). Their Authorization headers."""
    with TestClient(create_app(make_settings(url))) as setup:
        return {rid: create_retailer(setup, rid) for rid in (*retailer_ids, MARK)}


class FeedMark:
    """Waits until servers have read their change feed up to now. ``MARK``, cached by every
    server, is changed in the store as another process would change it (no Redis message);
    a server answers with the change only once its feed has read it, and so every change
    committed before it. Call it with every server there is: a change the feed of one of them
    has not read yet could evict ``MARK`` there at the wrong moment."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._marks = 0

    def __call__(self, *servers: httpx.Client, within_s: float = 10.0) -> float:
        """How long it took."""

        def target(server: httpx.Client) -> float:
            retailer = server.get(f"/retailer/{MARK}", headers=OPERATOR)
            assert retailer.status_code == 200, retailer.text
            return float(retailer.json()["precision_target"])

        for server in servers:
            target(server)  # cached
        self._marks += 1
        value = 0.5 + self._marks / 1000
        store = open_store(self._url)
        try:
            changes = {"precision_target": value}
            store.update_retailer(retailer_id=MARK, changes=changes, updated_at=datetime.now(UTC))
        finally:
            store.close()
        return wait_for(
            lambda: all(target(server) == value for server in servers),
            within_s=within_s,
            what="a change read through the change feed",
        )


# --- PostgreSQL stopped and restarted under load ---------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_stopped_and_restarted_under_load(
    own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    url = own_postgres.url
    env = {
        "CARTPREDICT_DATABASE_URL": url,
        "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY,
        "CARTPREDICT_SYNC_INTERVAL_S": "0.2",
    }
    migrate = [sys.executable, "-m", "cartpredict", "db", "upgrade"]
    migrated = subprocess.run(migrate, env=os.environ | env, capture_output=True, timeout=60)
    assert migrated.returncode == 0, migrated.stderr.decode()
    server_log = tmp_path / "server.log"
    keys = created_before_start(url, "a", "b", "c")
    a, b = keys["a"], keys["b"]
    feed_read = FeedMark(url)
    with running_server(env, log=server_log) as server:
        for _ in range(3):  # a's key and configuration cached; b's configuration too
            assert server.post("/predict_cart", json=cart("a"), headers=a).status_code == 200
        assert server.get("/retailer/b", headers=OPERATOR).status_code == 200
        feed_read(server)  # and so they stay: the feed has nothing to evict

        load = Load()
        try:
            for n in range(2):
                predict = req("POST", "/predict_cart", a, cart("a"))
                load.add(server, f"predict {n}", lambda _, r=predict: r, MAX_PREDICTIONS)
            unique = uuid.uuid4().hex[:8]

            def post_event(i: int) -> dict[str, Any]:
                return req("POST", "/events", a, event(f"ev-{unique}-{i}"))

            load.add(server, "event", post_event, MAX_EVENTS)
            time.sleep(BASELINE_S)

            stop_began = time.monotonic()
            own_postgres.stop("fast")
            stopped = time.monotonic()
            ready_503_after = wait_for(
                lambda: server.get("/readyz").status_code == 503, within_s=2.0, what="503"
            )
            down = [  # one-off calls while the database is down
                send(server, what, request)
                for what, request in (
                    ("readyz", req("GET", "/readyz", {})),
                    ("patch", req("PATCH", "/retailer/b", OPERATOR, {"precision_target": 0.8})),
                    ("patch", req("PATCH", "/retailer/a", a, {"precision_target": 0.75})),
                    ("create", req("POST", "/retailer", OPERATOR, spec("d"))),
                    ("uncached key", req("POST", "/predict_cart", b, cart("b"))),
                    ("uncached retailer", req("GET", "/retailer/c", OPERATOR)),
                    ("cached retailer", req("GET", "/retailer/a", a)),
                    ("cached batch", req("POST", "/predict_cart/batch", a, {"carts": [cart("a")]})),
                )
            ]
            time.sleep(max(0.0, stopped + OUTAGE_S - time.monotonic()))

            start_began = time.monotonic()
            own_postgres.start()
            started = time.monotonic()
            ready_200_after = wait_for(
                lambda: server.get("/readyz").status_code == 200, within_s=15.0, what="200"
            )
            time.sleep(RECOVERY_S)
        finally:
            load.stop()

        predictions, events = load.of("predict"), load.of("event")
        # Cached retailers: not one failure, throughout.
        assert statuses(predictions) == {200: len(predictions)}
        during_predictions = [s for s in predictions if stop_began < s.started < started]
        assert len(during_predictions) > 100
        # Writes: stored, or refused with a 503 to retry; promptly, always.
        assert set(statuses(events)) <= {200, 503}, statuses(events)
        assert max(s.elapsed for s in events) < WRITE_BOUND_S
        during = [s for s in events if s.started > stopped and s.ended < start_began]
        assert during and all(s.status == 503 for s in during), statuses(during)
        for s in events:
            if s.status == 503:
                assert_store_unavailable(s.response)
        cached = ("cached retailer", "cached batch")
        for s in down:
            assert s.status == (200 if s.what in cached else 503), (s.what, s.response)
            assert s.elapsed < WRITE_BOUND_S
            if s.status == 503:
                assert_store_unavailable(s.response)

        # Every request refused during the outage succeeds when retried.
        refused = [s for s in events + down if s.status == 503 and s.request["method"] != "GET"]
        retried = [send(server, s.what, s.request) for s in refused]
        for s in retried:
            assert s.status == (201 if s.what == "create" else 200), (s.what, s.response)

        # No event lost, none twice: the database holds exactly the events sent.
        sent_ids = [s.request["json"]["events"][0]["event_id"] for s in events]
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT event_id FROM events WHERE retailer_id = 'a'"))
                stored_ids = [row[0] for row in rows]
        finally:
            engine.dispose()
        assert sorted(stored_ids) == sorted(sent_ids)
        late = sum(s.response.json()["duplicates"] for s in retried if s.what == "event")  # type: ignore[union-attr]

        # The change feed's poller is back: a change written by another process is seen.
        assert server.get("/retailer/b", headers=b).json()["precision_target"] == 0.8
        store = open_store(url)
        try:
            changes = {"precision_target": 0.9}
            store.update_retailer(retailer_id="b", changes=changes, updated_at=datetime.now(UTC))
        finally:
            store.close()
        feed_after = wait_for(
            lambda: server.get("/retailer/b", headers=b).json()["precision_target"] == 0.9,
            within_s=FEED_BOUND_S,
            what="a change by another process, after the outage",
        )

    lines = log_lines(server_log)
    assert not [line for line in lines if '"level":"error"' in line], lines
    # One warning for a hundred refused requests, not one each.
    assert len([line for line in lines if "store unavailable, answering 503" in line]) == 1
    # Each periodic job: one warning when the outage began, one line when it ended.
    assert len([line for line in lines if "change feed poll failed" in line]) == 1, lines
    assert len([line for line in lines if "change feed poll recovered" in line]) == 1, lines
    refused_events = [s for s in events if s.status == 503]
    print(
        f"\nPostgreSQL: stop took {ms(stopped - stop_began)}, down {ms(start_began - stopped)}, "
        f"start took {ms(started - start_began)}; /readyz 503 after {ms(ready_503_after)}, "
        f"200 {ms(ready_200_after)} after the restart"
        f"\n  predictions: {len(predictions)} sent, {len(during_predictions)} during the outage, "
        f"statuses {statuses(predictions)}"
        f"\n  events: {len(events)} sent, statuses {statuses(events)}, {len(during)} wholly within "
        f"the outage; slowest 503 {ms(max(s.elapsed for s in refused_events))}, slowest "
        f"write {ms(max(s.elapsed for s in events))}"
        f"\n  one-off while down: {', '.join(f'{s.what} {s.status} {ms(s.elapsed)}' for s in down)}"
        f"\n  retried {len(retried)} refused requests: {statuses(retried)}; {late} of the events "
        f"had been stored after all; events in the database {len(stored_ids)} = sent "
        f"{len(sent_ids)}; a change by another process seen after {ms(feed_after)}"
    )


# --- PostgreSQL frozen: it holds its connections but answers nothing ------------------------


def cluster_pids(server: OwnPostgres) -> list[int]:
    """The postmaster and every process it started."""
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


@pytest.mark.slow
@pytest.mark.postgres
def test_a_frozen_postgres_costs_a_write_a_503_in_bounded_time_not_a_hang(
    own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    """SIGSTOP, not a shutdown: connections stay open and nothing answers, as in a network
    partition, which no connect timeout catches. Requests that need the store get a 503 once
    ``CARTPREDICT_STORE_TIMEOUT_S`` has passed; cached retailers are served throughout; after
    the thaw, the retried write is stored exactly once."""
    timeout_s = 1.5
    env = {
        "CARTPREDICT_DATABASE_URL": own_postgres.url,
        "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY,
        "CARTPREDICT_STORE_TIMEOUT_S": str(timeout_s),
    }
    migrate = [sys.executable, "-m", "cartpredict", "db", "upgrade"]
    migrated = subprocess.run(migrate, env=os.environ | env, capture_output=True, timeout=60)
    assert migrated.returncode == 0, migrated.stderr.decode()
    a = created_before_start(own_postgres.url, "a")["a"]
    feed_read = FeedMark(own_postgres.url)
    with running_server(env, log=tmp_path / "server.log") as server:
        for _ in range(3):
            assert server.post("/predict_cart", json=cart("a"), headers=a).status_code == 200
        feed_read(server)  # a stays cached: the feed has nothing to evict
        frozen = cluster_pids(own_postgres)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            calls = [
                send(server, "event", req("POST", "/events", a, event("ev-frozen"))),
                send(server, "patch", req("PATCH", "/retailer/a", a, {"precision_target": 0.8})),
                send(server, "readyz", req("GET", "/readyz", {})),
                send(server, "predict", req("POST", "/predict_cart", a, cart("a"))),
            ]
        finally:
            for pid in frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        for call in calls[:3]:
            assert_store_unavailable(call.response)
            assert timeout_s <= call.elapsed < timeout_s + 1.0, (call.what, call.elapsed)
        assert calls[3].status == 200 and calls[3].elapsed < 0.5  # cached: no store needed
        wait_for(lambda: server.get("/readyz").status_code == 200, within_s=15, what="ready")
        retried = send(server, "event", calls[0].request)
        assert retried.status == 200, retried.response
        engine = create_engine(own_postgres.url)
        try:
            with engine.connect() as conn:
                query = text("SELECT count(*) FROM events WHERE event_id = 'ev-frozen'")
                assert conn.execute(query).scalar() == 1
        finally:
            engine.dispose()
        answers = ", ".join(f"{c.what} {c.status} {ms(c.elapsed)}" for c in calls)
        print(f"\nfrozen PostgreSQL: {answers}")


# --- Redis stopped and restarted under load --------------------------------------------------


def precision(server: httpx.Client, headers: dict[str, str]) -> float:
    return float(server.get("/retailer/b", headers=headers).json()["precision_target"])


def behind_the_back(sqlite_url: str, value: float) -> None:
    """Change b in the database without a change-feed entry: only a message on the Redis
    channel can tell a server its cached copy is stale."""
    engine = create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            update = "UPDATE retailers SET precision_target = :v WHERE retailer_id = 'b'"
            conn.execute(text(update), {"v": value})
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.redis
def test_redis_stopped_and_restarted_under_load(
    own_redis: OwnRedis, sqlite_url: str, tmp_path: Path
) -> None:
    channel = f"cartpredict-test-{uuid.uuid4().hex}"
    env = {
        "CARTPREDICT_DATABASE_URL": sqlite_url,
        "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY,
        "CARTPREDICT_REDIS_URL": own_redis.url,
        "CARTPREDICT_REDIS_CHANNEL": channel,
        "CARTPREDICT_SYNC_INTERVAL_S": "0.2",
    }
    publisher = redis.Redis.from_url(own_redis.url, socket_timeout=1)
    log_one = tmp_path / "one.log"
    keys = created_before_start(sqlite_url, "a", "b")
    a, b = keys["a"], keys["b"]
    feed_read = FeedMark(sqlite_url)
    with running_server(env, log=log_one) as one, running_server(env) as two:
        for server in (one, two):
            assert server.post("/predict_cart", json=cart("a"), headers=a).status_code == 200

        def pushed(value: float) -> float:
            """b changed behind the servers' backs, then announced on the channel: how long
            until ``one`` serves the new value (it can only learn of it through Redis)."""
            feed_read(one, two)  # whatever the feed carried has been applied
            before = precision(one, b)  # cached from here on
            behind_the_back(sqlite_url, value)
            feed_read(one, two)
            assert precision(one, b) == before  # the feed, read since, does not carry it
            started = time.monotonic()
            while publisher.publish(channel, "b") < 2:  # until both servers are subscribed
                assert time.monotonic() - started < 10, "servers not subscribed again"
                time.sleep(0.05)
            wait_for(lambda: precision(one, b) == value, within_s=1.0, what="announced change")
            return time.monotonic() - started

        pushed_before = pushed(0.71)

        load = Load()
        try:
            predict = req("POST", "/predict_cart", a, cart("a"))
            load.add(one, "predict one", lambda _: predict, MAX_PREDICTIONS)
            load.add(two, "predict two", lambda _: predict, MAX_PREDICTIONS)
            time.sleep(BASELINE_S)

            stop_began = time.monotonic()
            own_redis.stop()
            stopped = time.monotonic()
            with pytest.raises(redis.ConnectionError):
                publisher.publish(channel, "b")

            def degraded() -> bool:
                ready = one.get("/readyz")
                assert ready.status_code == 200, ready.text
                return str(ready.json()["checks"]["redis"]).startswith("degraded")

            degraded_after = wait_for(degraded, within_s=3.0, what="/readyz redis degraded")
            ready_down = one.get("/readyz").json()
            # A change through the other server reaches this one: the change feed.
            to_b = req("PATCH", "/retailer/b", OPERATOR, {"precision_target": 0.8})
            patch_b = send(two, "patch", to_b)
            assert patch_b.status == 200, patch_b.response
            feed_during = wait_for(
                lambda: precision(one, b) == 0.8, within_s=FEED_BOUND_S, what="feed, Redis down"
            )
            # A change through this server: seen by it at once, by the other through the feed.
            patch_a = send(one, "patch", req("PATCH", "/retailer/a", a, {"precision_target": 0.75}))
            assert patch_a.status == 200, patch_a.response
            assert one.get("/retailer/a", headers=a).json()["precision_target"] == 0.75
            wait_for(
                lambda: two.get("/retailer/a", headers=a).json()["precision_target"] == 0.75,
                within_s=FEED_BOUND_S,
                what="feed the other way, Redis down",
            )
            time.sleep(max(0.0, stopped + OUTAGE_S - time.monotonic()))

            start_began = time.monotonic()
            own_redis.start()
            started = time.monotonic()

            def redis_ok() -> bool:
                return all(s.get("/readyz").json()["checks"]["redis"] == "ok" for s in (one, two))

            ok_after = wait_for(redis_ok, within_s=5.0, what="/readyz redis ok again")
            time.sleep(RECOVERY_S)
        finally:
            load.stop()

        predictions = load.of("predict")
        during_predictions = [s for s in predictions if stop_began < s.started < started]
        assert statuses(predictions) == {200: len(predictions)}
        assert len(during_predictions) > 100
        assert ready_down["status"] == "ready" and ready_down["checks"]["store"] == "ok"
        assert max(patch_a.elapsed, patch_b.elapsed) < WRITE_BOUND_S

        # Pub/sub works again, both ends: the other server publishes its change ...
        subscriber = publisher.pubsub()
        subscriber.subscribe(channel)
        assert subscriber.get_message(timeout=1.0)["type"] == "subscribe"  # type: ignore[index]
        patched = two.patch("/retailer/b", json={"precision_target": 0.85}, headers=OPERATOR)
        assert patched.status_code == 200
        message = subscriber.get_message(timeout=1.0)
        assert message is not None and message["data"] == b"b", message
        subscriber.close()
        wait_for(lambda: precision(one, b) == 0.85, within_s=FEED_BOUND_S, what="Redis back")
        # ... and this server acts on what it hears.
        pushed_after = pushed(0.72)
    publisher.close()

    lines = log_lines(log_one)
    assert not [line for line in lines if '"level":"error"' in line], lines
    assert len([line for line in lines if "redis subscription lost" in line]) == 1, lines
    assert len([line for line in lines if "redis subscription restored" in line]) == 1, lines
    print(
        f"\nRedis: stop took {ms(stopped - stop_began)}, down {ms(start_began - stopped)}, "
        f"start took {ms(started - start_began)}; /readyz redis degraded after "
        f"{ms(degraded_after)} ({ready_down['checks']['redis']!r}), ok {ms(ok_after)} after "
        f"the restart"
        f"\n  predictions: {len(predictions)} sent, {len(during_predictions)} during the outage, "
        f"statuses {statuses(predictions)}"
        f"\n  PATCH while down: through the other server {ms(patch_b.elapsed)}, seen here "
        f"through the feed after {ms(feed_during)}; through this server {ms(patch_a.elapsed)}"
        f"\n  a change announced on Redis acted on after {ms(pushed_before)} before the outage, "
        f"{ms(pushed_after)} after it"
    )
