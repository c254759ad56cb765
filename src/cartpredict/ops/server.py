"""Running the API: uvicorn with uvloop and httptools, one or more worker processes.

The protocol answers ``POST /predict_cart`` itself when the app's fast lane
(``api/fastlane.py``) can: once the request's head is in, it asks the lane whether the
request is its; the body read, it writes the lane's answer at once, with uvicorn's default
headers and keep-alive, without the ASGI message, the task and the event each request
otherwise costs. Anything the lane leaves (a cache miss, a bad cart, other routes) goes to the
app through uvicorn's own request cycle, with the body already read. Only a request with
nothing before it still being answered on its connection is taken, so answers keep the order
of the requests; pipelined requests behind an app's answer go the usual way.

One worker is uvicorn alone, in one process. Several are uvicorn workers under gunicorn's
master (through its application API), on Unix: the master imports the application's code
once and forks the workers (as gunicorn's ``--preload`` would, but each worker builds its own
app, database pool and cache after the fork, so nothing but imported modules crosses it: no
connection, thread or event loop exists yet). They serve sooner and share the imported code's
memory. The master starts a new worker in place of one that dies, running the code imported
at start: restart the server to run new code. On SIGTERM or SIGINT it asks every worker to
finish its requests and run the app's shutdown (which writes the buffered predictions), and
kills those still running after gunicorn's ``graceful_timeout`` (30 s). The workers share
their metrics through a directory of files (see ``metrics.py``), made for each start and
removed at exit.

Every accepted connection gets TCP_NODELAY. Where the listening socket is not one that
asyncio's default event loop marks as TCP (a socket a supervisor bound and passed on), replies
on a keep-alive connection could otherwise wait for Nagle's algorithm and the peer's delayed
ACK (~40 ms each). uvloop sets the option anyway; setting it here keeps the guarantee whatever
loop runs.

Every connection also gets deadlines for what the client sends (uvicorn has none: a client
sending a few bytes a second would hold a connection, and a worker's memory, for ever): the
request's head must be complete ``header_timeout_s`` after the connection opened or after its
first byte (an idle keep-alive connection is uvicorn's to close, after ``KEEP_ALIVE_S``),
and its body ``body_timeout_s`` after the head. Past a deadline the client gets 408 in the
service's error shape and the connection is closed (a connection that sent nothing at all is
just closed). While the server itself holds the data back (reading paused: a pipelined request
waiting its turn), the clock restarts. The deadlines live in the protocol, which uvicorn's
workers take alike, alone or under gunicorn, and cost a request two clock reads and a few
attribute writes (about 0.5 µs): one timer per connection, re-armed only when it fires before
the deadline it watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import get_client_addr

from cartpredict.core import logs
from cartpredict.core.errors import error_body
from cartpredict.core.settings import Settings

if TYPE_CHECKING:  # (imported with the app: prometheus_client must wait for the workers' setup)
    from cartpredict.api.fastlane import FastLane

log = logging.getLogger(__name__)

HEAD, BODY = "head", "body"
KEEP_ALIVE_S = 5  # uvicorn's default: how long an idle keep-alive connection stays open
HEARTBEAT_S = 1.0  # a worker's heartbeat to gunicorn's master, which publishes its figures
SHARED_METRICS_VAR = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client on import
SEVERAL_WORKERS = os.name == "posix"  # gunicorn forks: Unix only


class NoDelayHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, with TCP_NODELAY, deadlines for the head and body, and
    the fast lane taken between two reads of the socket."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = _timeouts(self.app)
        self._phase: str | None = None  # HEAD or BODY while one is being received
        self._deadline = 0.0  # loop time by which the phase must be over
        self._begun = False  # a byte of the current request arrived
        self._watch: asyncio.TimerHandle | None = None
        self._watch_at = 0.0  # when the timer fires
        self._lane = _lane(self.app) if self.root_path == "" else None
        self._taken: tuple[float, bytes] | None = None  # (began, Authorization) of one it took
        self._body: list[bytes] = []
        self._closing = False  # the server is shutting down: close after the lane's answer

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # the peer may already be gone
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        self._expect(HEAD)

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = None
        if self._taken is not None and self._lane is not None:  # gone before its body was in
            self._lane.left(self._taken[0])
            self._taken = None
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # A pipelined request after one the lane answered, in the same read: the keep-alive
        # timer that answer armed is not the idle connection's (uvicorn cancels it per read).
        self._unset_keepalive_if_required()
        self._begun = True
        if self._phase is None:  # a new connection's first head is timed from the connection
            self._expect(HEAD)

    def on_headers_complete(self) -> None:
        lane = self._lane
        if lane is not None and self._for_the_lane(lane):
            authorization = lane.admits(self.headers)
            if authorization is not None:
                self._taken = (time.perf_counter(), authorization)
                self._body = []
                self._expect(BODY)
                return
        super().on_headers_complete()
        self._expect(BODY)  # over at once, in on_message_complete, when there is none

    def on_body(self, body: bytes) -> None:
        if self._taken is not None:
            self._body.append(body)  # (no more than the lane's limit: its content-length)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        taken = self._taken
        if taken is None:
            super().on_message_complete()
        else:
            self._taken = None
            body = b"".join(self._body)
            self._body = []
            self._answer(*taken, body)
        self._phase = None
        self._begun = False

    def shutdown(self) -> None:
        if self._taken is not None:  # its body is arriving: answered, then closed
            self._closing = True
        else:
            super().shutdown()

    def _for_the_lane(self, lane: FastLane) -> bool:
        """Whether the request whose head just arrived may be the lane's: ``POST`` to its
        path, no query, no upgrade or ``100-continue``, and nothing before it still being
        answered on this connection (answers go out in the order of the requests)."""
        cycle = self.cycle
        return (
            self.url == lane.raw_path
            and not self.expect_100_continue
            and (cycle is None or cycle.response_complete)
            and not self.pipeline
            and self.parser.get_method() == b"POST"
            and not self.parser.should_upgrade()
        )

    def _answer(self, began: float, authorization: bytes, body: bytes) -> None:
        """The lane's answer, written at once, with uvicorn's default headers; or, when the
        lane leaves the request to the app, the app's, through uvicorn's own cycle."""
        assert self._lane is not None
        try:
            reply, charged = self._lane.answer(authorization, body)
        except Exception:  # (the lane catches its own errors: a bug here is the server's)
            log.exception("fast lane failed; handing the request to the app")
            reply, charged = None, False
        if reply is None:
            self._lane.hand_on(self.scope, began, charged)  # type: ignore[arg-type]
            super().on_headers_complete()  # uvicorn's: the scope completed, the app's task made
            if self.cycle is not None:
                self.cycle.body += body
            super().on_message_complete()
            return
        version = self.parser.get_http_version()
        keep_alive = version != "1.0" and self.parser.should_keep_alive() and not self._closing
        head = [STATUS_LINE[reply.status]]
        for name, value in (*self.server_state.default_headers, *reply.headers):
            head.extend([name, b": ", value, b"\r\n"])
        head.append(b"\r\n" if keep_alive else b"connection: close\r\n\r\n")
        head.append(reply.body)
        self.transport.write(b"".join(head))
        self._lane.timed(reply.status, began)
        if self.access_log:
            self.access_logger.info('%s - "%s %s HTTP/%s" %d', get_client_addr(self.scope),
                                    "POST", self._lane.path, version, reply.status)  # fmt: skip
        if not keep_alive:
            self.transport.close()
        self.on_response_complete()  # uvicorn's: the next pipelined request, or keep-alive

    def _expect(self, phase: str) -> None:
        self._phase = phase
        self._deadline = self.loop.time() + self._limits[phase]
        if self._watch is None or self._deadline < self._watch_at:  # (a body's may be later)
            self._arm()

    def _arm(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self._watch = self.loop.call_at(self._deadline, self._check)
        self._watch_at = self._deadline

    def _check(self) -> None:
        """The timer: act if the phase it watches is late, else wait for its deadline."""
        self._watch = None
        if self._phase is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the server, not the client, is holding the data back
            self._deadline = now + self._limits[self._phase]
        if now < self._deadline:
            self._arm()
            return
        self._time_out(self._phase)

    def _time_out(self, phase: str) -> None:
        self._phase = None
        # (A body the lane is reading has no cycle of its own: self.cycle is the previous one.)
        cycle = self.cycle if phase == BODY and self._taken is None else None
        self._taken = None
        if cycle is not None:  # the app is waiting for the body: it gets a disconnect
            cycle.keep_alive = False
            answered = cycle.response_started
            cycle.disconnected = True
            cycle.message_event.set()
            if answered:
                self.transport.close()
                return
        if phase == HEAD and not self._begun:  # nothing was asked: nothing to answer
            self.transport.close()
            return
        self.transport.write(self._timeout_response(phase))
        self.transport.close()

    def _timeout_response(self, phase: str) -> bytes:
        after = "" if phase == HEAD else " of its head"
        message = f"The request's {phase} did not arrive within {self._limits[phase]:g} s{after}."
        body = orjson.dumps(error_body(408, "request_timeout", message))
        head = [STATUS_LINE[408]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
        )
        return b"".join(head) + body


# How every worker runs uvicorn, alone or under gunicorn: uvloop where it is installed, the
# protocol above, and no WebSocket library imported at start-up (there are no WebSocket routes).
UVICORN: dict[str, Any] = {"loop": "auto", "http": NoDelayHttpTools, "ws": "none"}


def _timeouts(app: Any) -> dict[str, float]:
    """The head and body deadlines of the app's settings, or the defaults for an app
    without them."""
    services = _services(app)
    if services is not None:
        return {HEAD: services.settings.header_timeout_s, BODY: services.settings.body_timeout_s}
    fields = Settings.model_fields
    return {HEAD: fields["header_timeout_s"].default, BODY: fields["body_timeout_s"].default}


def _lane(app: Any) -> FastLane | None:
    """The app's fast lane, found under uvicorn's wrappers, if it is enabled."""
    from cartpredict.api.fastlane import FastLane

    for _ in range(10):
        entry = getattr(app, "entry", None)
        if isinstance(entry, FastLane):
            return entry if entry.enabled else None
        app = getattr(app, "app", None)
    return None


def _services(app: Any) -> Any:
    """The app's services, found under uvicorn's wrappers (None for an app without them)."""
    for _ in range(10):
        services = getattr(getattr(app, "state", None), "services", None)
        if services is not None:
            return services
        app = getattr(app, "app", None)
    return None


def run(*, host: str, port: int, workers: int, access_log: bool) -> None:
    with _shared_metrics(workers):
        if workers == 1:
            _serve_alone(host=host, port=port, access_log=access_log)
        else:
            _serve_workers(host=host, port=port, workers=workers, access_log=access_log)


def _serve_alone(*, host: str, port: int, access_log: bool) -> None:
    """One process: uvicorn alone, with nothing to supervise."""
    uvicorn.run(
        "cartpredict.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        log_config=logs.config(access_log=access_log),
        timeout_keep_alive=KEEP_ALIVE_S,
        **UVICORN,
    )


def _serve_workers(*, host: str, port: int, workers: int, access_log: bool) -> None:
    """gunicorn's master, through its application API, forking uvicorn workers. gunicorn is
    imported here: one worker alone does without it (and its ~10 ms of imports)."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.errors import HaltServer
    from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

    from cartpredict.api import app  # noqa: F401  (imported before the fork, shared by every worker)

    class Worker(UvicornWorker):
        CONFIG_KWARGS: ClassVar[dict[str, Any]] = {**UVICORN, "timeout_notify": HEARTBEAT_S}

        async def callback_notify(self) -> None:
            """The heartbeat to the master, every ``HEARTBEAT_S``; it also publishes the
            figures the metrics read from this worker's cache and buffer."""
            self.notify()
            _publish(self.wsgi)

    class Master(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
                "workers": workers,
                "worker_class": Worker,
                "preload_app": False,  # the code is shared already; each worker builds its app
                "keepalive": KEEP_ALIVE_S,
                "logconfig_dict": logs.config(access_log=access_log),
                "proc_name": "cartpredict",
                "child_exit": _worker_exited,
                "control_socket_disable": True,  # (gunicorn 27+) no socket in the user's home
            }
            for name, value in options.items():
                if name in self.cfg.settings:
                    self.cfg.set(name, value)

        def load(self) -> Any:
            from cartpredict.api.app import create_app

            return create_app()

    try:
        Master().run()
    except HaltServer as halted:
        # gunicorn's master handles a worker that cannot boot by stopping the others and
        # exiting with status 3; when a second one fails while it stops, that second halt
        # escapes its loop as an exception (exit status 1). Exit as the first one would have.
        print(f"cartpredict: {halted.reason}", file=sys.stderr)
        sys.exit(halted.exit_status)


def _publish(app: Any) -> None:
    services = _services(app)
    if services is not None:
        services.metrics.publish()


def _worker_exited(_master: Any, worker: Any) -> None:
    """gunicorn's hook, in the master once a worker has exited: its gauges go (its counts
    stay in the totals; the master starts a new worker in its place)."""
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(worker.pid, os.environ[SHARED_METRICS_VAR])


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """For the server's lifetime, the directory its workers share their metrics through
    (see ``metrics.py``): the operator's ``PROMETHEUS_MULTIPROC_DIR``, else, with several
    workers, a fresh temporary one, named in the environment for the workers to inherit.
    Figures an earlier server left there are removed first, and this server's when it stops
    (with the directory, when it made it). One worker and no directory: counts in memory.

    prometheus_client chooses memory or files once, when it is imported, hence the check."""
    given = os.environ.get(SHARED_METRICS_VAR)
    if not given and workers == 1:
        yield
        return
    if not given and "prometheus_client" in sys.modules:
        raise RuntimeError(f"prometheus_client was imported before {SHARED_METRICS_VAR} was set")
    path = Path(given or tempfile.mkdtemp(prefix="cartpredict-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    _remove_figures(path)
    os.environ[SHARED_METRICS_VAR] = str(path)
    master = os.getpid()
    try:
        yield
    finally:
        if os.getpid() == master:  # (a worker leaving by sys.exit passes here too: not its to do)
            _remove_figures(path)
            if not given:
                os.environ.pop(SHARED_METRICS_VAR, None)
                shutil.rmtree(path, ignore_errors=True)


def _remove_figures(path: Path) -> None:
    for figures in path.glob("*.db"):  # prometheus_client's: one file per process and kind
        figures.unlink(missing_ok=True)
