"""cartpredict against MLflow serving, a minimal FastAPI endpoint and a bare ASGI ceiling.

One run, on this machine, one server at a time (the servers never compete with each other):

1. seeds a SQLite database with ``--retailers`` retailers through the product's own pipeline
   (onboarding, a simulated week of events, training), and copies what serving reads into a
   throwaway PostgreSQL database;
2. starts each server in turn, times its cold start (launch to first good prediction), loads
   it with the Python load generator (``--requests`` at concurrency 1 and 16) and with wrk
   (``--seconds`` at concurrency 1 and 16), reads its peak memory, and stops it;
3. times in-process batch scoring with numpy, and one cart through the request path without
   HTTP;
4. prints the tables, the ratios and the goals, and writes every figure to ``--json``.

The peers come from the peer rig (``--peer``, default ``../shared/peer``): its setup script
and model training run first if their output is missing. The peer FastAPI endpoint and the
ceiling app run on this project's interpreter, so they get the same uvicorn, uvloop and
httptools as cartpredict; MLflow runs in its own environment, as its users would run it.

    make bench                                   # or: .venv/bin/python benchmarks/run.py
    .venv/bin/python benchmarks/run.py --servers ceiling,sqlite --repeat 3   # the ratio alone

``--servers`` runs only some of them (the peers' environment is set up only when a peer that
needs it runs); ``--repeat`` runs the lineup that many times, interleaved, and reports for each
server the run of median wrk c=16 throughput (every run's figure is kept in ``repeats``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import loads
from seed import Seeded, copy_serving_state, seed
from servers import Server, start

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BATCH_CARTS = 1_000_000
COLD_STARTS = 3  # per server; the median is reported
SERVERS = ("ceiling", "naive", "sqlite", "mlflow", "postgres", "sqlite-2w")  # --servers keys
PEER_MODEL = {"naive", "mlflow"}  # the peers that serve the peer rig's trained model


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    peer = args.peer.resolve()
    chosen = set(args.servers.split(",")) if args.servers else set(SERVERS)
    unknown = chosen - set(SERVERS)
    if unknown:
        raise SystemExit(f"unknown servers {sorted(unknown)}: choose from {', '.join(SERVERS)}")
    if args.no_mlflow:
        chosen.discard("mlflow")
    if "postgres" not in chosen:
        args.postgres = "none"
    prepare_peers(peer, args.peer_venv, args.peer_model, model_needed=bool(chosen & PEER_MODEL))
    with tempfile.TemporaryDirectory(prefix="cartpredict-bench-") as tmp:
        work = Path(tmp)
        sqlite_url = f"sqlite:///{work / 'bench.db'}"
        print(f"seeding {args.retailers} retailers in SQLite ...", flush=True)
        seeded = seed(
            sqlite_url, retailers=args.retailers, days=args.days, carts_per_day=args.carts_per_day
        )
        print(
            f"  {seeded.carts} simulated carts; served by: {dict(seeded.served)}; "
            f"{seeded.seconds:.0f} s",
            flush=True,
        )
        with postgres_database(args.postgres) as pg_url:
            if pg_url is not None:
                copy_serving_state(sqlite_url, pg_url, seeded.targets)
            servers = [
                (server, requests)
                for key, server, requests in lineup(args, peer, sqlite_url, pg_url, seeded)
                if key in chosen
            ]
            runs = [
                [measure(server, requests, args, work) for server, requests in servers]
                for _ in range(args.repeat)
            ]
            results = [median_run([rep[i] for rep in runs]) for i in range(len(servers))]
        batch = batch_scoring(sqlite_url, seeded)
        batch.update(lambda_entry(sqlite_url, seeded, work))
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "seeded": {
            "retailers": args.retailers,
            "carts": seeded.carts,
            "served_by": dict(seeded.served),
        },
        "servers": results,
        "in_process": batch,
    }
    print()
    print(tables(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nevery figure: {args.json}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--peer", type=Path, default=REPO.parent / "shared" / "peer")
    p.add_argument("--peer-venv", type=Path, default=Path("/tmp/peer-venv"))
    p.add_argument("--peer-model", type=Path, default=Path("/tmp/peer-model"))
    p.add_argument(
        "--postgres",
        default=os.environ.get("CARTPREDICT_BENCH_PG", PG_ADMIN_URL),
        help="admin URL of a PostgreSQL server; 'none' skips PostgreSQL",
    )
    p.add_argument("--retailers", type=int, default=1000)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--carts-per-day", type=float, default=30.0)
    p.add_argument("--requests", type=int, default=1000, help="per Python load-generator run")
    p.add_argument("--seconds", type=int, default=10, help="per wrk run")
    p.add_argument("--no-mlflow", action="store_true", help="leave MLflow out (it is slow)")
    p.add_argument(
        "--servers",
        default="",
        help=f"comma-separated, of {','.join(SERVERS)} (default: all)",
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="runs of the lineup, interleaved (median reported)"
    )
    p.add_argument("--json", type=Path, default=Path("benchmark.json"))
    return p


# --- the peers -------------------------------------------------------------------------------


def prepare_peers(peer: Path, venv: Path, model: Path, *, model_needed: bool = True) -> None:
    """wrk, and, for the peers that serve it (``model_needed``), their environment and model."""
    if not (peer / "naive_fastapi.py").exists():
        raise SystemExit(f"no peer rig at {peer}: pass --peer")
    if not _has("wrk") or (model_needed and not (venv / "bin" / "mlflow").exists()):
        print(f"setting up the peers ({peer / 'setup.sh'}) ...", flush=True)
        subprocess.run(
            ["bash", str(peer / "setup.sh")], check=True, env={**os.environ, "PEER_VENV": str(venv)}
        )
    if model_needed and not (model / "mlflow_model").exists():
        print("training the peers' model ...", flush=True)
        subprocess.run(
            [str(venv / "bin" / "python"), str(peer / "train_model.py"), "--out", str(model)],
            check=True,
        )


def _has(program: str) -> bool:
    return any((Path(d) / program).exists() for d in os.environ.get("PATH", "").split(":"))


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str | None]:
    """A throwaway database on the server, dropped afterwards; None if there is no server."""
    if admin_url == "none":
        yield None
        return
    from sqlalchemy import create_engine, text

    name = f"cartpredict_bench_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"PostgreSQL not reachable at {admin_url} ({type(exc).__name__}): skipping it")
        admin.dispose()
        yield None
        return
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def lineup(
    args: argparse.Namespace, peer: Path, sqlite_url: str, pg_url: str | None, seeded: Seeded
) -> list[tuple[str, Server, list[loads.Request]]]:
    """(key, server, its requests), interleaved: peers and cartpredict alternate, so a slow
    spell hits more than one."""
    python = sys.executable
    cartpredict = str(Path(python).with_name("cartpredict"))
    ours = loads.ours(seeded.targets)
    rows = loads.peer_carts()
    first_key, first_body = ours[0]
    flat_ready = loads.flat(rows)[0][1]

    def cartpredict_server(name: str, url: str, port: int, workers: int = 1) -> Server:
        return Server(
            name=name,
            command=[cartpredict, "serve", "--port", str(port), "--workers", str(workers)],
            port=port,
            path="/predict_cart",
            ready_body=first_body,
            ready_key=first_key,
            env={"CARTPREDICT_DATABASE_URL": url},
            workers=workers,
        )

    uvicorn = [python, "-m", "uvicorn", "--no-access-log", "--log-level", "warning"]
    servers: list[tuple[str, Server, list[loads.Request]]] = [
        (
            "ceiling",
            Server(
                "ceiling (bare ASGI)",
                [*uvicorn, "--app-dir", str(peer), "ceiling_asgi:app", "--port", "8401"],
                8401,
                "/predict_cart",
                flat_ready,
            ),
            loads.flat(rows),
        ),
        (
            "naive",
            Server(
                "naive FastAPI",
                [
                    python,
                    str(peer / "naive_fastapi.py"),
                    "--weights",
                    str(args.peer_model / "lr_weights.json"),
                    "--port",
                    "8402",
                    "--no-access-log",
                ],
                8402,
                "/predict_cart",
                flat_ready,
            ),
            loads.flat(rows),
        ),
        ("sqlite", cartpredict_server("cartpredict SQLite", sqlite_url, 8403), ours),
    ]
    mlflow = Server(  # (left out by --no-mlflow, or --servers without it)
        "MLflow serving",
        [
            str(args.peer_venv / "bin" / "mlflow"),
            "models",
            "serve",
            "-m",
            str(args.peer_model / "mlflow_model"),
            "-p",
            "8404",
            "-h",
            "127.0.0.1",
            "-w",
            "1",
            "--env-manager",
            "local",
        ],
        8404,
        "/invocations",
        loads.mlflow_split(rows)[0][1],
        # mlflow starts `uvicorn` from PATH: its own environment's
        env={"PATH": f"{args.peer_venv / 'bin'}:{os.environ.get('PATH', '')}"},
    )
    servers.append(("mlflow", mlflow, loads.mlflow_split(rows)))
    if pg_url is not None:
        servers.append(
            ("postgres", cartpredict_server("cartpredict PostgreSQL", pg_url, 8405), ours)
        )
    two = cartpredict_server("cartpredict SQLite 2 workers", sqlite_url, 8406, 2)
    servers.append(("sqlite-2w", two, ours))
    return servers


# --- measuring -------------------------------------------------------------------------------


def measure(
    server: Server, requests: list[loads.Request], args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    print(f"{server.name}: starting ...", flush=True)
    colds = []
    for _ in range(COLD_STARTS - 1):  # started and stopped: their cold start alone
        trial = start(server, work)
        trial.stop()
        colds.append(trial.cold_start_s)
    running = start(server, work)
    colds.append(running.cold_start_s)
    out: dict[str, Any] = {
        "server": server.name,
        "workers": server.workers,
        "cold_start_s": round(statistics.median(colds), 3),
        "cold_starts_s": [round(c, 3) for c in colds],
    }
    try:
        # Every distinct request once, unrecorded: each retailer's key and model get cached
        # (in every server alike), as they are after a retailer's first request in production.
        # With several workers, each keeps its own cache and serves only the connections it
        # wins the race to accept (a burst of connections often all go to one): warm them with
        # one connection at a time, several times over, so that each worker gets some.
        if server.workers == 1:
            out["warmup"] = loads.loadgen(server.url, requests, n=len(requests), concurrency=4)
        else:
            for _ in range(8 * server.workers):
                out["warmup"] = loads.loadgen(server.url, requests, n=len(requests), concurrency=1)
        for c in (1, 16):
            out[f"loadgen_c{c}"] = loads.loadgen(
                server.url, requests, n=args.requests, concurrency=c
            )
            out[f"wrk_c{c}"] = loads.wrk(
                server.url, requests, concurrency=c, seconds=args.seconds, work_dir=work
            )
            print(
                f"  c={c}: loadgen {out[f'loadgen_c{c}']['req_per_s']} req/s, "
                f"wrk {out[f'wrk_c{c}']['req_per_s']} req/s",
                flush=True,
            )
        out["peak_rss_mb_tree"], out["peak_rss_mb_largest"] = running.peak_memory_mb()
    finally:
        running.stop()
    return out


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Of one server's runs, the one of median wrk c=16 throughput (the lower of the two middle
    ones for an even count), with every run's throughput in ``repeats``."""
    ranked = sorted(runs, key=lambda r: r["wrk_c16"]["req_per_s"])
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    if len(runs) > 1:
        chosen["repeats"] = [r["wrk_c16"]["req_per_s"] for r in runs]
    return chosen


def batch_scoring(sqlite_url: str, seeded: Seeded) -> dict[str, Any]:
    """numpy scoring of a million carts, and one cart through the request path, no HTTP."""
    import orjson

    from cartpredict.core.clock import utcnow
    from cartpredict.core.settings import Settings
    from cartpredict.learning.columns import CartColumns, p_abandoned
    from cartpredict.models.logistic import LogisticModel
    from cartpredict.serving.container import build_services
    from cartpredict.serving.schemas import CartIn

    svc = build_services(Settings(database_url=sqlite_url), utcnow)
    try:
        tenants = [svc.tenants.load(t.retailer_id) for t in seeded.targets]
        tenant = next(t for t in tenants if isinstance(t.model, LogisticModel))
        model = tenant.model
        assert isinstance(model, LogisticModel)
        rng = np.random.default_rng(0)
        speeds = np.array(tenant.retailer.shipping_speeds)
        columns = CartColumns(
            cart_value=rng.lognormal(4.1, 1.0, BATCH_CARTS).round(2),
            item_count=rng.integers(1, 9, BATCH_CARTS),
            inactivity_hours=rng.uniform(0, 24, BATCH_CARTS).round(2),
            device_type=rng.choice(
                np.array(["mobile", "desktop", "tablet", "unknown"]), BATCH_CARTS
            ),
            shipping_speed=rng.choice(speeds, BATCH_CARTS),
        )
        times = []
        for _ in range(5):
            started = time.perf_counter()
            p_abandoned(model, columns, tenant.retailer)
            times.append(time.perf_counter() - started)
        by_id = {t.retailer.retailer_id: t for t in tenants}
        bodies = [body for _, body in loads.ours(seeded.targets)]
        started = time.perf_counter()
        rounds = 10
        for _ in range(rounds):
            for body in bodies:
                cart = CartIn.model_validate_json(body)
                orjson.dumps(svc.predictor.predict(by_id[cart.retailer_id], cart))
        per_cart_us = (time.perf_counter() - started) / (rounds * len(bodies)) * 1e6
    finally:
        svc.close()
    return {
        "batch_carts": BATCH_CARTS,
        "batch_median_s": round(statistics.median(times), 4),
        "batch_carts_per_s": round(BATCH_CARTS / statistics.median(times)),
        "model_features": len(model.weights),
        "request_path_us_per_cart": round(per_cart_us, 1),
    }


def lambda_entry(sqlite_url: str, seeded: Seeded, work: Path) -> dict[str, Any]:
    """The Lambda handler in fresh interpreters: start-up (interpreter + import, median of 3)
    and in-process time per API Gateway invocation."""
    pairs = work / "lambda_requests.json"
    pairs.write_text(json.dumps([[k, b.decode()] for k, b in loads.ours(seeded.targets)[:2000]]))
    env = {**os.environ, "CARTPREDICT_DATABASE_URL": sqlite_url}
    starts = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import cartpredict.ops.aws_lambda"], env=env, check=True
        )
        starts.append(time.perf_counter() - started)
    probe = subprocess.run(
        [sys.executable, str(HERE / "lambda_probe.py"), str(pairs), "5000"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    figures = json.loads(probe.stdout)
    return {
        "lambda_init_s": round(statistics.median(starts), 3),
        "lambda_import_s": figures["import_s"],
        "lambda_invoke_ms": figures["invoke_ms_median"],
        "lambda_invoke_ms_mean": figures["invoke_ms_mean"],
        "lambda_peak_rss_mb": figures["peak_rss_mb"],
    }


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


# --- the report ------------------------------------------------------------------------------


def tables(report: dict[str, Any]) -> str:
    rows = report["servers"]
    lines = [
        f"## Benchmark {report['when']} ({report['machine']['cpus']} CPUs, Python "
        f"{report['machine']['python']}); {report['seeded']['retailers']} retailers, served by "
        f"{report['seeded']['served_by']}",
        "",
        "| server | wrk c=16 req/s | p50 ms | p95 ms | p99 ms | wrk c=1 req/s | p50 ms | p95 ms "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, b = r["wrk_c16"], r["wrk_c1"]
        lines.append(
            f"| {r['server']} | {a['req_per_s']:,.0f} | {a['p50_ms']:.2f} | {a['p95_ms']:.2f} | "
            f"{a['p99_ms']:.2f} | {b['req_per_s']:,.0f} | {b['p50_ms']:.2f} | {b['p95_ms']:.2f} | "
            f"{a['errors'] + b['errors']} |"
        )
    lines += [
        "",
        "| server | loadgen c=16 req/s | p50 ms | p95 ms | loadgen c=1 req/s | p50 ms | p95 ms "
        "| errors | cold start s (median of 3) | peak RSS MB (tree / largest process) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, b = r["loadgen_c16"], r["loadgen_c1"]
        lines.append(
            f"| {r['server']} | {a['req_per_s']:,.0f} | {a['p50_ms']:.2f} | {a['p95_ms']:.2f} | "
            f"{b['req_per_s']:,.0f} | {b['p50_ms']:.2f} | {b['p95_ms']:.2f} | "
            f"{a['errors'] + b['errors']} | {r['cold_start_s']:.2f} | "
            f"{r['peak_rss_mb_tree']:.0f} / {r['peak_rss_mb_largest']:.0f} |"
        )
    repeated = [r for r in rows if "repeats" in r]
    if repeated:
        lines += ["", "wrk c=16 req/s of every run (the median run is the one shown):"]
        lines += [
            f"- {r['server']}: " + " / ".join(f"{x:,.0f}" for x in r["repeats"]) for r in repeated
        ]
    batch = report["in_process"]
    lines += [
        "",
        f"In process: numpy batch scoring {batch['batch_carts_per_s']:,} carts/s "
        f"({batch['batch_carts']:,} carts, {batch['model_features']} features, median of 5: "
        f"{batch['batch_median_s']} s); one cart through the request path without HTTP "
        f"(JSON validation, cart checks, model, JSON out): {batch['request_path_us_per_cart']} us.",
        f"Lambda entry point: cold start (interpreter + import, median of 3) "
        f"{batch['lambda_init_s']} s, of which the import {batch['lambda_import_s']} s; "
        f"{batch['lambda_invoke_ms']} ms per API Gateway invocation in process (median; mean "
        f"{batch['lambda_invoke_ms_mean']} ms); peak {batch['lambda_peak_rss_mb']} MB.",
        "",
        *goals(report),
    ]
    return "\n".join(lines)


def goals(report: dict[str, Any]) -> list[str]:
    """The goals that the servers run can tell (``--servers`` may leave some out)."""
    by = {r["server"]: r for r in report["servers"]}
    out = ["Goals (wrk, one worker each):"]

    def check(text: str, ok: bool) -> None:
        out.append(f"- [{'x' if ok else ' '}] {text}")

    ours = by.get("cartpredict SQLite")
    rps = ours["wrk_c16"]["req_per_s"] if ours else 0.0
    if ours and "naive FastAPI" in by:
        naive = by["naive FastAPI"]["wrk_c16"]["req_per_s"]
        check(f"≥ 3× the minimal FastAPI endpoint at c=16: {rps / naive:.1f}×", rps >= 3 * naive)
    if ours and "MLflow serving" in by:
        mlflow = by["MLflow serving"]["wrk_c16"]["req_per_s"]
        check(f"≥ 30× MLflow serving at c=16: {rps / mlflow:.0f}×", rps >= 30 * mlflow)
    if ours and "ceiling (bare ASGI)" in by:
        ceiling = by["ceiling (bare ASGI)"]["wrk_c16"]["req_per_s"]
        check(f"≥ 45 % of the ceiling app at c=16, every cart named: {100 * rps / ceiling:.0f} %",
              rps >= 0.45 * ceiling)  # fmt: skip
    if ours:
        p95 = ours["wrk_c16"]["p95_ms"]
        check(f"p95 ≤ 8 ms at c=16: {p95:.2f} ms", p95 <= 8)
        p95_1 = max(ours["wrk_c1"]["p95_ms"], ours["loadgen_c1"]["p95_ms"])
        check(f"p95 ≤ 1 ms at c=1 (worse of wrk and loadgen): {p95_1:.2f} ms", p95_1 <= 1)
    if ours and "cartpredict PostgreSQL" in by:
        pg = by["cartpredict PostgreSQL"]["wrk_c16"]["req_per_s"]
        out.append(f"- PostgreSQL instead of SQLite at c=16: {pg:,.0f} req/s ({pg / rps:.2f}×)")
    two = by.get("cartpredict SQLite 2 workers")
    if ours and two:
        out.append(
            f"- 1 → 2 workers at c=16: {rps:,.0f} → {two['wrk_c16']['req_per_s']:,.0f} req/s "
            f"({two['wrk_c16']['req_per_s'] / rps:.2f}×; wrk shares the 2 cores); keep-alive at "
            f"c=1: p50 {ours['wrk_c1']['p50_ms']:.2f} → {two['wrk_c1']['p50_ms']:.2f} ms, "
            f"p95 {ours['wrk_c1']['p95_ms']:.2f} → {two['wrk_c1']['p95_ms']:.2f} ms"
        )
    singles = [n for n in by if n.startswith("cartpredict") and by[n]["workers"] == 1]
    if singles:
        cold = max(by[n]["cold_start_s"] for n in singles)
        both = (f" (two workers, starting side by side on the 2 cores: {two['cold_start_s']:.2f} s)"
                if two else "")  # fmt: skip
        check(f"cold start ≤ 1 s (median of 3, slowest one-worker cartpredict): {cold:.2f} s"
              f"{both}", cold <= 1)  # fmt: skip
    ourselves = [n for n in by if n.startswith("cartpredict")]
    if ourselves:
        rss = max(by[n]["peak_rss_mb_largest"] for n in ourselves)
        check(
            f"peak RSS ≤ 150 MB per worker, {report['seeded']['retailers']} retailers' models "
            f"loaded: {rss:.0f} MB",
            rss <= 150,
        )
    batch = report["in_process"]["batch_carts_per_s"]
    check(f"in-process batch scoring ≥ 1,000,000 carts/s: {batch:,}", batch >= 1_000_000)
    return out


if __name__ == "__main__":
    sys.exit(main())
