"""The server sets TCP_NODELAY on every connection, whatever event loop runs it; with several
workers, gunicorn runs them with the same uvicorn settings, logs and shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from uvicorn.config import Config
from uvicorn.server import ServerState

from cartpredict.cli import main
from cartpredict.ops import server as serving
from cartpredict.ops.server import NoDelayHttpTools
from tests.support.factories import OPERATOR, OPERATOR_KEY, cart, retailer_spec
from tests.support.servers import free_port, running_server, server_pid

TWO_WORKERS = ("serve", "--no-migrate", "--workers", "2")
HEAD_S = 0.5
KEEP_ALIVE_S = 5.0  # uvicorn's default, which the workers keep under gunicorn
SLACK_S = 1.0  # timers on a possibly busy machine


class Transport(asyncio.Transport):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        info = {"socket": self._sock, "peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}
        return info.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def test_an_accepted_connection_gets_tcp_nodelay() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        config = Config(app=None, log_level="warning")
        config.load()
        loop = asyncio.new_event_loop()
        try:
            protocol = NoDelayHttpTools(config=config, server_state=ServerState(), app_state={},
                                        _loop=loop)  # fmt: skip
            protocol.connection_made(Transport(accepted))
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            protocol.connection_lost(None)
        finally:
            loop.close()
    finally:
        for s in (client, accepted, listener):
            s.close()


@pytest.mark.slow
def test_several_workers_run_under_gunicorn_with_the_same_uvicorn_settings(
    sqlite_url: str,
) -> None:
    """Under gunicorn's master, each uvicorn worker uses the service's protocol (a slow head
    gets its 408 after the app's ``header_timeout_s``) and uvicorn's keep-alive of 5 s, not
    gunicorn's 2 s."""
    env = {
        "CARTPREDICT_DATABASE_URL": sqlite_url,
        "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY,
        "CARTPREDICT_HEADER_TIMEOUT_S": str(HEAD_S),
    }
    with running_server(env, command=TWO_WORKERS) as server:
        address = ("127.0.0.1", server.base_url.port or 0)
        start = time.monotonic()  # the head's deadline runs from the connection
        with socket.create_connection(address, timeout=10) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and nothing more
            answer = read_until_closed(slow)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert HEAD_S <= time.monotonic() - start < HEAD_S + SLACK_S

        with socket.create_connection(address, timeout=10) as idle:
            idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            start = time.monotonic()
            answer = read_until_closed(idle)  # the answer, then the close once idle too long
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"status":"ok"}')
            assert KEEP_ALIVE_S - SLACK_S <= time.monotonic() - start < KEEP_ALIVE_S + SLACK_S


@pytest.mark.slow
def test_several_workers_log_json_and_write_their_predictions_on_sigterm(
    sqlite_url: str, tmp_path: Path
) -> None:
    """SIGTERM to gunicorn's master: every worker finishes and runs the app's shutdown, which
    writes the predictions still buffered; every line of the log, the master's too, is JSON."""
    env = {"CARTPREDICT_DATABASE_URL": sqlite_url, "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY}
    log = tmp_path / "server.log"
    with running_server(env, command=(*TWO_WORKERS, "--access-log"), log=log) as server:
        created = server.post("/retailer", json=retailer_spec("store_1"), headers=OPERATOR)
        auth = {"Authorization": f"Bearer {created.json()['api_key']}", "Connection": "close"}
        for i in range(20):  # each on a new connection: both workers take some
            body = cart("store_1", cart_id=f"cart-{i}")
            assert server.post("/predict_cart", json=body, headers=auth).status_code == 200
        master = server_pid(server)
        os.kill(master, signal.SIGTERM)  # at once: most predictions are still buffered
        deadline = time.monotonic() + 30
        while (reaped := os.waitpid(master, os.WNOHANG))[0] == 0:
            assert time.monotonic() < deadline, "the server did not stop"
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(reaped[1]) == 0
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        assert db.execute("select count(*) from prediction_log").fetchone() == (20,)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    loggers = {line["logger"] for line in lines}
    assert {"gunicorn.error", "uvicorn.error", "uvicorn.access"} <= loggers
    requests = [line for line in lines if line["message"] == "request"]
    assert sum(r["path"] == "/predict_cart" for r in requests) == 20
    assert lines[-1]["message"] == "Shutting down: Master"


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_several_workers_are_refused_where_gunicorn_cannot_run(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving, "SEVERAL_WORKERS", False)
    monkeypatch.setenv("CARTPREDICT_DATABASE_URL", sqlite_url)
    result = CliRunner().invoke(main, ["serve", "--no-migrate", "--workers", "2"])
    assert result.exit_code == 1
    assert "--workers above 1 needs gunicorn, which runs on Unix only" in result.output


def test_shared_metrics_need_prometheus_client_not_yet_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """prometheus_client picks memory or files once, on import: too late, the server refuses
    to start rather than serve per-worker counts."""
    monkeypatch.delenv(serving.SHARED_METRICS_VAR, raising=False)
    import prometheus_client  # noqa: F401  (imported, as in this test process)

    with pytest.raises(RuntimeError, match="imported before"), serving._shared_metrics(2):
        pass
    assert serving.SHARED_METRICS_VAR not in os.environ


def test_only_the_master_removes_the_shared_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forked worker that leaves by ``sys.exit`` unwinds the master's stack too: it must
    not take the other workers' files (or their directory) with it."""
    shared = tmp_path / "metrics"
    monkeypatch.setenv(serving.SHARED_METRICS_VAR, str(shared))
    figures = shared / "counter_1.db"
    context = serving._shared_metrics(2)
    context.__enter__()
    figures.write_bytes(b"")
    child = os.fork()
    if child == 0:  # a worker, leaving
        try:
            context.__exit__(SystemExit, SystemExit(0), None)
        finally:
            os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
    assert figures.exists()
    context.__exit__(None, None, None)
    assert shared.is_dir() and not figures.exists()


@pytest.mark.slow
def test_several_workers_that_cannot_start_stop_the_server(tmp_path: Path) -> None:
    """A schema that is behind fails every worker's start-up: gunicorn's master gives up
    (exit status 3) instead of restarting them for ever, and leaves no directory behind."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = os.environ | {
        "CARTPREDICT_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
        "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY,
        "TMPDIR": str(scratch),
    }
    command = [sys.executable, "-m", "cartpredict", *TWO_WORKERS, "--port", str(free_port())]
    done = subprocess.run(command, env=env, capture_output=True, timeout=30, check=False)
    assert done.returncode == 3
    assert b"run `cartpredict db upgrade`" in done.stderr
    assert list(scratch.iterdir()) == []
