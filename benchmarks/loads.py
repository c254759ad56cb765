"""The same requests for every server, sent by two load generators.

* ``cartpredict loadtest``'s engine (Python asyncio, raw HTTP/1.1 keep-alive, closed loop);
* wrk (C, epoll) with ``wrk_requests.lua``, since a Python client can be the bottleneck on a
  2-core machine where client and server share the cores.

Bodies are random valid carts, built once before timing: for cartpredict, carts of every
retailer with that retailer's key, each with a cart id (so every answer computes a retention
decision and every prediction is logged, as in production); for the peers, the same kind of
cart in their own format (they have no decision to make).
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

from cartpredict.ops.loadtest import Target, carts, loopback, run_prepared

HERE = Path(__file__).resolve().parent
LUA = HERE / "wrk_requests.lua"
DISTINCT = 2000  # distinct request bodies per server, cycled
PEER_DEVICES = ("mobile", "desktop", "tablet")
PEER_SPEEDS = ("standard", "express", "overnight")
PEER_COLUMNS = ("cart_value", "item_count", "inactivity_hours", "device_type", "shipping_speed")

Request = tuple[str | None, bytes]  # (API key, JSON body)


def ours(targets: list[Target], *, seed: int = 1) -> list[Request]:
    return list(carts(targets, DISTINCT, seed=seed))


def peer_carts(*, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "retailer_id": f"store_{rng.randint(1, 1000)}",
            "cart_value": round(rng.lognormvariate(4.1, 1.0), 2),
            "item_count": rng.randint(1, 8),
            "inactivity_hours": round(rng.uniform(0, 24), 2),
            "device_type": rng.choice(PEER_DEVICES),
            "shipping_speed": rng.choice(PEER_SPEEDS),
        }
        for _ in range(DISTINCT)
    ]


def flat(rows: list[dict[str, Any]]) -> list[Request]:
    return [(None, json.dumps(row).encode()) for row in rows]


def mlflow_split(rows: list[dict[str, Any]]) -> list[Request]:
    """MLflow's scoring format: one row per request, as a split DataFrame."""
    bodies = []
    for row in rows:
        split = {"columns": list(PEER_COLUMNS), "data": [[row[c] for c in PEER_COLUMNS]]}
        bodies.append((None, json.dumps({"dataframe_split": split}).encode()))
    return bodies


def loadgen(url: str, requests: list[Request], *, n: int, concurrency: int) -> dict[str, Any]:
    result = asyncio.run(
        run_prepared(url, requests, requests=n, concurrency=concurrency, max_seconds=300.0)
    )
    summary = result.summary()
    return {
        k: summary[k]
        for k in ("requests", "req_per_s", "p50_ms", "p95_ms", "p99_ms", "errors", "truncated")
    }


def wrk(
    url: str, requests: list[Request], *, concurrency: int, seconds: int, work_dir: Path
) -> dict[str, Any]:
    loopback(url)  # loopback targets only
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    lines = work_dir / "requests.tsv"
    with lines.open("w") as out:
        for key, body in requests:
            out.write(f"{key or ''}\t{body.decode()}\n")
    threads = min(concurrency, 2)
    command = [
        binary,
        "-t",
        str(threads),
        "-c",
        str(concurrency),
        "-d",
        f"{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
        "--",
        str(lines),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    summary = next((line for line in done.stdout.splitlines() if line.startswith("{")), None)
    if done.returncode != 0 or summary is None:
        raise RuntimeError(f"wrk failed: {done.stdout}{done.stderr}")
    figures: dict[str, Any] = json.loads(summary)  # errors include non-2xx/3xx answers
    return figures
