"""Operating the service: load-test a running server, estimate what serving costs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from cartpredict.cli.demo import DEMO_ENV_FILE, _env_file_keys

# --- load test ---------------------------------------------------------------------------


@click.command()
@click.option(
    "--url",
    default="http://127.0.0.1:8000/predict_cart",
    show_default=True,
    help="The /predict_cart URL of a server on this machine (loopback only).",
)
@click.option(
    "--requests", "n_requests", default=1000, show_default=True, type=click.IntRange(1, 1_000_000)
)
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(1, 1024))
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="RETAILER=KEY",
    help="A retailer and its API key (repeatable); default: the demo's keys",
)
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"Read the retailers' keys from this file (default: ./{DEMO_ENV_FILE})",
)
@click.option("--max-seconds", default=120.0, show_default=True, type=click.FloatRange(1, 3600))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON")
@click.option("--server-pid", type=int, help="The server's PID: report its CPU and memory too")
def loadtest(
    url: str,
    n_requests: int,
    concurrency: int,
    keys: tuple[str, ...],
    env_file: Path | None,
    max_seconds: float,
    seed: int,
    as_json: bool,
    server_pid: int | None,
) -> None:
    """Send random valid carts to /predict_cart and print p50/p95/p99, req/s and errors.

    With --server-pid, also the server's CPU time per request and its peak memory (what
    `cartpredict cost` reads)."""
    import asyncio

    from cartpredict.ops import loadtest as lt

    try:
        lt.loopback(url)
        targets = [_target(url, rid, key) for rid, key in _keys(keys, env_file)]
        watch = lt.ServerWatch(server_pid) if server_pid else None
        result = asyncio.run(lt.run(url, targets, requests=n_requests, concurrency=concurrency,
                                    max_seconds=max_seconds, seed=seed))  # fmt: skip
    except (lt.LoadTestError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    summary = result.summary()
    if watch is not None:
        summary["server"] = watch.summary(result)
    click.echo(
        json.dumps(summary, indent=2)
        if as_json
        else lt.table(summary, url=url, concurrency=concurrency)
    )
    if summary["errors"]:
        sys.exit(1)


def _keys(pairs: tuple[str, ...], env_file: Path | None) -> list[tuple[str, str]]:
    if pairs:
        found = [p.partition("=") for p in pairs]
        if any(not rid or not key for rid, _, key in found):
            raise click.BadParameter("use RETAILER=KEY", param_hint="--key")
        return [(rid, key) for rid, _, key in found]
    path = env_file or Path(DEMO_ENV_FILE)
    if not path.exists():
        raise click.UsageError(f"give --key RETAILER=KEY (no {path} here: run `cartpredict demo`)")
    return _env_file_keys(path)


def _target(url: str, retailer_id: str, key: str) -> Any:
    """The retailer's offered shipping speeds, read with its own key (which checks the key)."""
    import urllib.error
    import urllib.request

    from cartpredict.ops.loadtest import LoadTestError, Target

    base = url.rsplit("/predict_cart", 1)[0]
    request = urllib.request.Request(
        f"{base}/retailer/{retailer_id}", headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            config = json.load(response)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise LoadTestError(f"{retailer_id}: the server answered {exc.code} for its key") from exc
    return Target(retailer_id, key, tuple(config["shipping_speeds"]))


# --- cost ------------------------------------------------------------------------------------


@click.command()
@click.argument("measured", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--prices",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Price file (default: the dated one shipped with cartpredict)",
)
@click.option(
    "--lambda-memory",
    type=click.IntRange(128, 10240),
    help="Lambda memory in MB (default: enough CPU for a 2 s cold start, and never less than "
    "the measured peak with headroom)",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the breakdown")
def cost(measured: Path, prices: Path | None, lambda_memory: int | None, as_json: bool) -> None:
    """$ per 10k predictions and per month, on Lambda and on a small container.

    MEASURED is the JSON of `cartpredict loadtest --json --server-pid PID`, or the benchmark's
    JSON (benchmark.json). Prices come from a dated file that names its sources.
    """
    from cartpredict.ops import cost as costs

    try:
        data = json.loads(measured.read_text())
        report = costs.estimate(
            costs.measured_from(data, source=str(measured)),
            costs.load_prices(prices),
            lambda_memory=lambda_memory,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = f"missing {exc}" if isinstance(exc, KeyError) else exc
        raise click.ClickException(f"cannot read {measured}: {reason}") from exc
    click.echo(json.dumps(report, indent=2) if as_json else costs.render(report))
