"""Start a server, time its cold start, read its peak memory, stop it (and all it started)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cartpredict.ops.loadtest import peak_rss_mb, process_tree


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    path: str  # the prediction route
    ready_body: bytes
    ready_key: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    workers: int = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"


@dataclass
class Running:
    server: Server
    process: subprocess.Popen[bytes]
    cold_start_s: float
    log: Path

    def peak_memory_mb(self) -> tuple[float, float]:
        """(sum over the process tree, largest single process) of VmHWM, in MB."""
        peaks = [peak_rss_mb(pid) for pid in process_tree(self.process.pid)]
        found = [p for p in peaks if p is not None]
        return round(sum(found), 1), round(max(found, default=0.0), 1)

    def stop(self) -> None:
        """TERM to the server's process group, then wait until every process of its tree is
        gone (KILL after 15 s), so that the port is free for the next server."""
        tree = process_tree(self.process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)
        while any(_alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in tree:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def start(server: Server, log_dir: Path, *, timeout_s: float = 180.0) -> Running:
    """Launch, then POST the ready body every 20 ms until a 200: the seconds from launch to
    that first good prediction are the cold start (imports, model loading, everything)."""
    free_by = time.monotonic() + 15  # a previous server's last process may still be exiting
    while _listening(server.port):
        if time.monotonic() > free_by:
            raise RuntimeError(f"{server.name}: port {server.port} is already in use")
        time.sleep(0.1)
    log = log_dir / f"{server.name.replace(' ', '_').replace('/', '_')}.log"
    env = {**os.environ, **server.env}
    with log.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            server.command,
            cwd=server.cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    headers = {"Content-Type": "application/json"}
    if server.ready_key:
        headers["Authorization"] = f"Bearer {server.ready_key}"
    deadline = started + timeout_s
    while True:
        if _ready(server.url, server.ready_body, headers):
            running = Running(server, process, time.perf_counter() - started, log)
            break
        if process.poll() is not None:
            raise RuntimeError(f"{server.name} exited: see {log}\n{_tail(log)}")
        if time.perf_counter() > deadline:
            Running(server, process, 0.0, log).stop()
            raise RuntimeError(f"{server.name}: no prediction within {timeout_s:.0f} s: see {log}")
        time.sleep(0.02)
    if server.workers > 1:  # the first answer came from one worker: wait for all of them
        _wait_for_workers(running, server.workers, deadline)
    return running


def _ready(url: str, body: bytes, headers: dict[str, str]) -> bool:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_for_workers(running: Running, workers: int, deadline: float) -> None:
    while len(process_tree(running.process.pid)) < workers + 1 and time.perf_counter() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let every worker finish its own start-up


def _alive(pid: int) -> bool:
    """Running (a zombie, already exited but not yet reaped, does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
