"""A bounded load generator for ``/predict_cart``: loopback only, keep-alive, closed loop.

Each of ``concurrency`` workers holds one HTTP/1.1 keep-alive connection (TCP_NODELAY) and
sends random valid carts across the given retailers, one request at a time, until
``requests`` have been answered or ``max_seconds`` have passed. Latency is measured from
writing a request to reading its whole response. Bodies are built before timing starts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import os
import random
import socket
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEVICES = ("mobile", "desktop", "tablet", "unknown")
WARMUP = 20


class LoadTestError(Exception):
    pass


@dataclass(frozen=True)
class Target:
    retailer_id: str
    key: str
    shipping_speeds: Sequence[str]


@dataclass
class Result:
    requests: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    truncated: bool = False

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    def percentile(self, q: float) -> float:
        """Nearest rank over the answered requests."""
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
        return ordered[rank - 1]

    def summary(self) -> dict[str, Any]:
        done = len(self.latencies_ms)
        return {
            "requests": done,
            "seconds": round(self.seconds, 3),
            "req_per_s": round(done / self.seconds, 1) if self.seconds else None,
            "p50_ms": round(self.percentile(0.50), 3),
            "p95_ms": round(self.percentile(0.95), 3),
            "p99_ms": round(self.percentile(0.99), 3),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 3) if done else None,
            "max_ms": round(max(self.latencies_ms), 3) if done else None,
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "truncated": self.truncated,
        }


def loopback(url: str) -> tuple[str, int, str]:
    """(host, port, path) of a loopback http URL; anything else is refused."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise LoadTestError(f"{url}: only http:// URLs on this machine")
    host = parts.hostname
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = host == "localhost"
    if not is_loopback:
        raise LoadTestError(f"{url}: load tests only target loopback (127.0.0.0/8, ::1)")
    return host, parts.port or 80, parts.path or "/"


def carts(
    targets: Sequence[Target], n: int, *, seed: int = 0, cart_ids: bool = True
) -> list[tuple[str, bytes]]:
    """``n`` (key, JSON body) pairs of random valid carts, spread over the targets; with
    ``cart_ids``, each names its cart (half of them contactable), so that every answer
    carries a decision and every prediction is logged, as in production."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        target = targets[i % len(targets)]
        body = {
            "retailer_id": target.retailer_id,
            "cart_value": round(rng.lognormvariate(4.1, 1.0), 2),
            "item_count": rng.randint(1, 8),
            "inactivity_hours": round(rng.uniform(0, 24), 2),
            "device_type": rng.choice(DEVICES),
            "shipping_speed": rng.choice(list(target.shipping_speeds)),
        }
        if cart_ids:
            body |= {"cart_id": f"load-{seed}-{i}", "contactable": rng.random() < 0.5}
        out.append((target.key, json.dumps(body, separators=(",", ":")).encode()))
    return out


def _request(host: str, port: int, path: str, key: str | None, body: bytes) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
    if chunked:
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")  # the blank line after the last chunk
    elif length:
        await reader.readexactly(length)
    return status


async def run(
    url: str,
    targets: Sequence[Target],
    *,
    requests: int = 1000,
    concurrency: int = 16,
    max_seconds: float = 120.0,
    seed: int = 0,
) -> Result:
    if not targets:
        raise LoadTestError("no retailers to send carts for")
    bodies = carts(targets, requests + WARMUP, seed=seed)
    return await run_prepared(url, bodies, requests=requests, concurrency=concurrency,
                              max_seconds=max_seconds)  # fmt: skip


async def run_prepared(
    url: str,
    bodies: Sequence[tuple[str | None, bytes]],
    *,
    requests: int = 1000,
    concurrency: int = 16,
    max_seconds: float = 120.0,
) -> Result:
    """Send ``(API key or None, JSON body)`` pairs, cycled: ``WARMUP`` unrecorded, then
    ``requests`` timed."""
    if not bodies:
        raise LoadTestError("no request bodies")
    host, port, path = loopback(url)
    payloads = [
        _request(host, port, path, key, body)
        for key, body in (bodies[i % len(bodies)] for i in range(requests + WARMUP))
    ]
    result = Result(requests=requests, seconds=0.0)
    queue = iter(range(WARMUP, len(payloads)))
    deadline = time.perf_counter() + max_seconds

    async def worker(first: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if first < WARMUP:
                writer.write(payloads[first])
                await _read_response(reader)
            for index in queue:
                if time.perf_counter() > deadline:
                    result.truncated = True
                    return
                start = time.perf_counter()
                writer.write(payloads[index])
                status = await _read_response(reader)
                result.latencies_ms.append((time.perf_counter() - start) * 1000)
                result.statuses[status] += 1
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


class ServerWatch:
    """CPU time and peak memory of a server process and its children, over a run (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        if not Path(f"/proc/{pid}/stat").exists():
            raise LoadTestError(f"no process {pid} (the server's PID) on this machine")
        self._cpu_start = self._cpu_s()

    def summary(self, result: Result) -> dict[str, Any]:
        cpu_s = self._cpu_s() - self._cpu_start
        done = max(1, len(result.latencies_ms))
        peaks = [p for p in (peak_rss_mb(pid) for pid in process_tree(self.pid)) if p is not None]
        return {
            "pid": self.pid,
            "cpu_s": round(cpu_s, 3),
            "cpu_ms_per_request": round(cpu_s * 1000 / done, 4),
            "cpu_percent": round(100 * cpu_s / result.seconds, 1) if result.seconds else None,
            "peak_rss_mb": round(max(peaks, default=0.0), 1),
            "peak_rss_mb_tree": round(sum(peaks), 1),
        }

    def _cpu_s(self) -> float:
        ticks = 0
        for pid in process_tree(self.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (Linux /proc)."""
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        pids += [int(c) for c in children]
        frontier += [int(c) for c in children]
    return pids


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM), or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def table(summary: dict[str, Any], *, url: str, concurrency: int) -> str:
    rows = [
        ("url", url),
        ("concurrency", concurrency),
        ("requests", summary["requests"]),
        ("req/s", summary["req_per_s"]),
        ("p50 ms", summary["p50_ms"]),
        ("p95 ms", summary["p95_ms"]),
        ("p99 ms", summary["p99_ms"]),
        ("max ms", summary["max_ms"]),
        ("errors", summary["errors"]),
        ("statuses", ", ".join(f"{k}: {v}" for k, v in summary["statuses"].items())),
    ]
    server = summary.get("server")
    if server:
        rows += [
            ("server CPU", f"{server['cpu_ms_per_request']} ms per request "
                           f"({server['cpu_percent']} % of a core)"),
            ("server peak", f"{server['peak_rss_mb']} MB (largest process)"),
        ]  # fmt: skip
    if summary["truncated"]:
        rows.append(("note", "stopped at --max-seconds"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
