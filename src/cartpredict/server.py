"""Running the API: uvicorn with uvloop and httptools, one or more worker processes.

With several workers on Linux, the parent imports the application's code once and forks the
workers (as gunicorn's ``--preload`` does) instead of letting each start a fresh interpreter:
they serve sooner and share the imported code's memory. Nothing but imported modules crosses
the fork (no connection, thread or event loop exists yet); each worker builds its own app,
database pool and cache, and starts with default signal handlers until uvicorn installs its
own. Workers restarted later (uvicorn restarts any that die) run the code imported at start:
restart the server to run new code.

Every accepted connection gets TCP_NODELAY. With several workers, uvicorn binds the listening
socket itself in a way that asyncio's default event loop does not mark as TCP, so replies on a
keep-alive connection could wait for Nagle's algorithm and the peer's delayed ACK (~40 ms each).
uvloop sets the option anyway; setting it here keeps the guarantee whatever loop runs.

Every connection also gets deadlines for what the client sends (uvicorn has none: a client
sending a few bytes a second would hold a connection, and a worker's memory, for ever): the
request's head must be complete ``header_timeout_s`` after the connection opened or after its
first byte (an idle keep-alive connection is uvicorn's to close, after ``timeout_keep_alive``),
and its body ``body_timeout_s`` after the head. Past a deadline the client gets 408 in the
service's error shape and the connection is closed (a connection that sent nothing at all is
just closed). While the server itself holds the data back (reading paused: a pipelined request
waiting its turn), the clock restarts. The deadlines live in the protocol, which uvicorn's
workers under any supervisor take alike (``http="cartpredict.server:NoDelayHttpTools"``), and
cost a request two clock reads and a few attribute writes (about 0.5 µs): one timer per
connection, re-armed only when it fires before the deadline it watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from . import logs
from .errors import error_body
from .settings import Settings

HEAD, BODY = "head", "body"


class NoDelayHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, with TCP_NODELAY and deadlines for the head and body."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = _timeouts(self.app)
        self._phase: str | None = None  # HEAD or BODY while one is being received
        self._deadline = 0.0  # loop time by which the phase must be over
        self._begun = False  # a byte of the current request arrived
        self._watch: asyncio.TimerHandle | None = None
        self._watch_at = 0.0  # when the timer fires

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # the peer may already be gone
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        self._expect(HEAD)

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = None
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        if self._phase is None:  # a new connection's first head is timed from the connection
            self._expect(HEAD)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._expect(BODY)  # over at once, in on_message_complete, when there is none

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = None
        self._begun = False

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
        cycle = self.cycle if phase == BODY else None
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


def _timeouts(app: Any) -> dict[str, float]:
    """The head and body deadlines of the app's settings (found under uvicorn's wrappers),
    or the defaults for an app without them."""
    for _ in range(10):
        services = getattr(getattr(app, "state", None), "services", None)
        if services is not None:
            return {
                HEAD: services.settings.header_timeout_s,
                BODY: services.settings.body_timeout_s,
            }
        app = getattr(app, "app", None)
    fields = Settings.model_fields
    return {HEAD: fields["header_timeout_s"].default, BODY: fields["body_timeout_s"].default}


def run(*, host: str, port: int, workers: int, access_log: bool) -> None:
    if workers > 1:
        _fork_workers()
    uvicorn.run(
        "cartpredict.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
        log_config=logs.config(),
        loop="auto",
        http=NoDelayHttpTools,
        ws="none",  # no WebSocket routes: skip importing a WebSocket library at start-up
    )


def _fork_workers() -> None:
    import multiprocessing
    import os
    import signal
    import sys

    import uvicorn._subprocess

    if sys.platform != "linux" or not hasattr(uvicorn._subprocess, "spawn"):
        return  # uvicorn's default: each worker starts a fresh interpreter

    from .api import app  # noqa: F401  (imported before the fork, shared by every worker)

    def default_signals() -> None:  # not the parent's supervisor handlers
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, signal.SIG_DFL)

    os.register_at_fork(after_in_child=default_signals)
    uvicorn._subprocess.spawn = multiprocessing.get_context("fork")  # type: ignore[assignment]
