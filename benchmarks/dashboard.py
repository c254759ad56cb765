"""How fast the dashboard's pages answer for a retailer with 90 days of daily stats.

A simulated store acts on its carts for a week with control groups (as in the browser tests):
its events go through the service's ingestion, its predictions are logged, and the daily stats
are rolled up. Its seven days of aggregates are then repeated back over 90 days, each day final,
so that every page reads as many rows, with as many figures, as a store that has used the
service for the whole retention period. A real server (``cartpredict serve``, one worker)
answers; a signed-in client asks each page ``--requests`` times, one request at a time, after a
few unrecorded ones, and the script prints p50, p95 and the slowest, in milliseconds.

    .venv/bin/python benchmarks/dashboard.py [--requests 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx2 as httpx

from cartpredict.core.clock import utcnow
from cartpredict.core.settings import Settings
from cartpredict.learning.simulate import Choice, SimulatedCart, Treatment, simulate
from cartpredict.learning.treatments import DECISION_HOURS, is_contactable
from cartpredict.monitoring.rollup import rollup
from cartpredict.ops.experiments import load_simulation, log_simulated_predictions
from cartpredict.serving.container import build_services
from cartpredict.storage import DailyStats
from cartpredict.storage.migrate import upgrade

RETAILER = "bench_store"
OPERATOR_KEY = "benchmark-operator-key-of-at-least-32-characters"
PAGES = {"overview": "", "overview 90 d": "?days=90", "targeting": "targeting", "model": "model",
         "experiments": "experiments?days=90", "settings": "settings"}  # fmt: skip
HISTORY_DAYS = 90


def seed(url: str) -> str:
    """The store, its week repeated over 90 days; its key."""

    def everyone(cart: SimulatedCart) -> Choice:
        action = "reminder_email" if is_contactable(cart.retailer_id, cart.cart_id) else "popup_10"
        return Choice(action, DECISION_HOURS)

    now = utcnow().replace(minute=0, second=0, microsecond=0)
    config = {"retailer_id": RETAILER, "requires_account": False,
              "payment_options": ["card"], "shipping_speeds": ["standard", "express"]}  # fmt: skip
    sim = simulate(retailers=1, days=8, carts_per_day=1500, seed=0, configs=[config],
                   start=now - timedelta(days=11), treatment=Treatment(everyone),
                   fixed_size=True)  # fmt: skip
    sim = replace(sim, exposures=[x for x in sim.exposures if x.at < sim.start + timedelta(days=7)])
    svc = build_services(Settings(database_url=url, operator_key=OPERATOR_KEY), utcnow)
    try:
        load_simulation(sim, svc.store, now=now)
        log_simulated_predictions(sim, svc.tenants, svc.store, retailer_ids=[RETAILER], now=now)
        rollup(svc.store, as_of=now)
        today = now.date()
        week = [r for r in svc.store.daily_stats(retailer_id=RETAILER, start=today - timedelta(
            days=30), end=today) if r.final and r.figures["carts"] >= 100]  # fmt: skip
        newest = week[-1].day
        history = [
            DailyStats(RETAILER, newest - timedelta(days=i), week[-1].computed_at, True,
                       week[-1 - i % len(week)].figures)
            for i in range(HISTORY_DAYS - 3)
        ]  # fmt: skip
        svc.store.put_daily_stats(retailer_id=RETAILER, days=history)
        return svc.keys.replace_all(RETAILER).secret
    finally:
        svc.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(base: str, key: str, requests: int) -> dict[str, dict[str, float]]:
    with httpx.Client(base_url=base, timeout=30, follow_redirects=True) as client:
        login = client.get("/app/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', login)
        assert token is not None
        signed = client.post("/app/login", data={"csrf_token": token[1], "api_key": key})
        assert signed.status_code == 200 and "Overview" in signed.text, signed.text[:500]
        out = {}
        for name, path in PAGES.items():
            url = f"/app/{RETAILER}/{path}"
            for _ in range(5):
                assert client.get(url).status_code == 200
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                answer = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200
            times.sort()
            out[name] = {
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
                "max_ms": round(times[-1], 2),
                "bytes": len(answer.content),
            }
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'dashboard.db'}"
        upgrade(url)
        key = seed(url)
        port = free_port()
        env = os.environ | {"CARTPREDICT_DATABASE_URL": url,
                            "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY}  # fmt: skip
        server = subprocess.Popen(
            [sys.executable, "-m", "cartpredict", "serve", "--no-migrate", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            results = measure(base, key, args.requests)
        finally:
            server.terminate()
            server.wait(timeout=10)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'page':<14} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'KB':>6}")
    for page, r in results.items():
        print(f"{page:<14} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['max_ms']:>8} "
              f"{r['bytes'] / 1024:>6.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
