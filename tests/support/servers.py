"""Real ``cartpredict serve`` processes for tests that need more than one worker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(
    env: dict[str, str],
    *,
    command: tuple[str, ...] = ("serve", "--no-migrate"),
    cwd: Path | None = None,
    timeout_s: float = 30.0,
    log: Path | None = None,
    program: tuple[str, ...] = (sys.executable, "-m", "cartpredict"),
    environ: Mapping[str, str] | None = None,
) -> Iterator[httpx.Client]:
    """Start ``cartpredict COMMAND`` on a free loopback port; yield a client bound to it.
    With ``log``, the server's stderr (its log) goes to that file. ``program`` is how the
    command is run (another installation's ``cartpredict``, say) and ``environ`` what ``env``
    adds to (this process's environment by default)."""
    port = free_port()
    sink = log.open("wb") if log is not None else None
    process = subprocess.Popen(
        [*program, *command, "--port", str(port)],
        env=dict(os.environ if environ is None else environ) | env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=sink if sink is not None else subprocess.PIPE,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0)
    try:
        _wait_ready(client, process, timeout_s)
        yield client
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
        if sink is not None:
            sink.close()


def _wait_ready(client: httpx.Client, process: subprocess.Popen[Any], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"server exited with {process.returncode}:\n{err}")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"server not ready after {timeout_s}s")


def server_pid(client: httpx.Client) -> int:
    """The PID of the ``cartpredict`` process serving the client's port (the parent, when
    forked workers share its command line)."""
    port = str(client.base_url.port).encode()
    found: dict[int, int] = {}  # pid -> parent pid
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if b"cartpredict" in args and b"--port" in args and port in args:
            ppid = next(line for line in status.splitlines() if line.startswith("PPid:"))
            found[int(proc.name)] = int(ppid.split()[1])
    roots = [pid for pid, ppid in found.items() if ppid not in found]
    if len(roots) != 1:
        raise LookupError(f"no single cartpredict process on port {port.decode()}: {found}")
    return roots[0]
