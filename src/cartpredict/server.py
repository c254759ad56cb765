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
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from . import logs


class NoDelayHttpTools(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # the peer may already be gone
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


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
