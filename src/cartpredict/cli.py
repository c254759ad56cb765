"""The ``cartpredict`` command: thin commands over the service."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from .settings import Settings

DEMO_ENV_FILE = "cartpredict-demo.env"
DEMO_RETAILERS: tuple[dict[str, Any], ...] = (
    {
        "retailer_id": "demo_fashion",
        "requires_account": False,
        "payment_options": ["credit_card", "paypal", "apple_pay"],
        "shipping_speeds": ["standard", "express"],
        "pooled_learning": True,
    },
    {
        "retailer_id": "demo_electronics",
        "requires_account": True,
        "payment_options": ["credit_card"],
        "shipping_speeds": ["standard", "express", "overnight"],
        "pooled_learning": True,
    },
    {
        "retailer_id": "demo_grocery",
        "requires_account": True,
        "payment_options": ["credit_card", "paypal"],
        "shipping_speeds": ["same_day", "pickup"],
        "pooled_learning": False,
    },
)
DEMO_SEED = 7
DEMO_CARTS_PER_DAY = 100.0
DEMO_CART = {
    "retailer_id": "demo_fashion",
    "cart_value": 45.99,
    "item_count": 3,
    "inactivity_hours": 12,
    "device_type": "mobile",
    "shipping_speed": "standard",
}


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's message names the variable and the reason
        raise click.ClickException(f"invalid CARTPREDICT_* setting: {exc}") from exc


def _services(settings: Settings) -> Any:
    from .clock import utcnow
    from .container import build_services

    return build_services(settings, utcnow)


@contextmanager
def _opened(settings: Settings | None = None) -> Iterator[Any]:
    """The services for one command: product errors become clean CLI errors; closed after."""
    from .errors import CartPredictError

    svc = _services(settings or _settings())
    try:
        yield svc
    except CartPredictError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        svc.close()


def _upgrade(settings: Settings) -> None:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from .storage.migrate import upgrade

    try:
        upgrade(settings.database_url)
    except ProgrammingError as exc:  # e.g. the service's own role, which may not change the schema
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise click.ClickException(
            f"cannot bring the schema up to date as this database role ({reason}): run "
            "`cartpredict db upgrade` as the schema's owner"
        ) from exc
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise click.ClickException(
            f"cannot reach the database {_redacted(settings.database_url)}: {reason}"
        ) from exc


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


@click.group()
@click.version_option(package_name="cartpredict")
def main() -> None:
    """Predict whether e-commerce carts will be purchased or abandoned in the next 24 hours.

    Configuration comes from CARTPREDICT_* environment variables (see the README).
    """


# --- serve -----------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes; above 1, forked by gunicorn's master (Unix only).",
)
@click.option(
    "--migrate/--no-migrate",
    default=True,
    show_default=True,
    help="Bring the database schema up to date first.",
)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def serve(host: str, port: int, workers: int, migrate: bool, access_log: bool) -> None:
    """Serve the HTTP API."""
    settings = _settings()
    if migrate:
        _upgrade(settings)
    _run_server(host, port, workers, access_log)


def _run_server(host: str, port: int, workers: int, access_log: bool) -> None:
    from .server import SEVERAL_WORKERS, run

    if workers > 1 and not SEVERAL_WORKERS:
        raise click.ClickException(
            "--workers above 1 needs gunicorn, which runs on Unix only: "
            "run one single-worker server per process instead"
        )
    run(host=host, port=port, workers=workers, access_log=access_log)


# --- db --------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date (safe to run again)."""
    settings = _settings()
    _upgrade(settings)
    click.echo(f"schema up to date at {_redacted(settings.database_url)}")


@db.command("create-service-role")
@click.argument("name")
@click.option(
    "--password-env",
    metavar="VAR",
    help="Environment variable holding the role's password (none: peer or trust auth).",
)
def db_create_service_role(name: str, password_env: str | None) -> None:
    """Create the service's PostgreSQL login role NAME, with least privilege.

    Run it as an administrator (CARTPREDICT_DATABASE_URL naming an admin) after `db upgrade`;
    then run the service with a URL naming NAME. Safe to run again.
    """
    from sqlalchemy.engine import make_url

    from .storage.roles import create_service_login

    settings = _settings()
    if make_url(settings.database_url).get_backend_name() != "postgresql":
        raise click.ClickException("roles exist on PostgreSQL only: SQLite has no users")
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise click.ClickException(f"{password_env} is not set or empty")
    try:
        create_service_login(settings.database_url, name, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    service_url = make_url(settings.database_url).set(username=name, password=None)
    click.echo(
        f"role {name} ready: serve with CARTPREDICT_DATABASE_URL={service_url.render_as_string()}"
        " (with the password, if the server asks for one)"
    )


# --- retailers -------------------------------------------------------------------------------


@main.group()
def retailer() -> None:
    """Onboard and manage retailers (operator commands, run against the database)."""


@retailer.command("create")
@click.argument("retailer_id")
@click.option("--requires-account/--no-requires-account", default=False, show_default=True)
@click.option(
    "--payment-option",
    "payment_options",
    multiple=True,
    required=True,
    help="Repeat for each option, e.g. --payment-option credit_card",
)
@click.option(
    "--shipping-speed",
    "shipping_speeds",
    multiple=True,
    required=True,
    help="Repeat for each speed offered: standard, express, overnight, same_day, pickup",
)
@click.option("--pooled-learning/--no-pooled-learning", default=False, show_default=True)
@click.option("--precision-target", type=float, default=0.70, show_default=True)
@click.option(
    "--attribute",
    "attributes",
    multiple=True,
    metavar="NAME:KIND",
    help="A custom cart attribute, KIND numeric or categorical (repeatable)",
)
def retailer_create(
    retailer_id: str,
    requires_account: bool,
    payment_options: tuple[str, ...],
    shipping_speeds: tuple[str, ...],
    pooled_learning: bool,
    precision_target: float,
    attributes: tuple[str, ...],
) -> None:
    """Create RETAILER_ID and print it with its API key (shown only this once)."""
    from .schemas import RetailerCreate, retailer_public

    spec = _parse(
        RetailerCreate,
        {
            "retailer_id": retailer_id,
            "requires_account": requires_account,
            "payment_options": list(payment_options),
            "shipping_speeds": list(shipping_speeds),
            "pooled_learning": pooled_learning,
            "precision_target": precision_target,
            "attributes": [
                {"name": name, "kind": kind}
                for name, _, kind in (a.partition(":") for a in attributes)
            ],
        },
    )
    settings = _settings()
    _upgrade(settings)
    with _opened(settings) as svc:
        created, key = svc.retailers.create(spec)
    _echo_json(retailer_public(created) | {"api_key": key})


@retailer.command("rotate-key")
@click.argument("retailer_id")
def retailer_rotate_key(retailer_id: str) -> None:
    """Revoke RETAILER_ID's keys and print a new one."""
    with _opened() as svc:
        key = svc.retailers.rotate_key(retailer_id)
    _echo_json({"retailer_id": retailer_id, "api_key": key})


def _parse(model: Any, data: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise click.ClickException("invalid input:\n" + "\n".join(lines)) from exc


# --- learning: simulate, ingest, train, evaluate ----------------------------------------

# What `pip install 'cartpredict[learn]'` adds (import names); serving and admin need none.
LEARNING_PACKAGES = ("numpy", "scipy", "sklearn", "matplotlib", "tqdm")


def _require_learning(otherwise: str = "") -> None:
    """Stop a command that trains, evaluates, plots or simulates, before it changes anything,
    with one line saying what to install, where only the serving install is present."""
    from importlib.util import find_spec

    if any(find_spec(name) is None for name in LEARNING_PACKAGES):
        command = click.get_current_context().info_name
        raise click.ClickException(
            f"cartpredict {command} needs the learning extras: pip install 'cartpredict[learn]'"
            + otherwise
        )


@main.command()
@click.option("--retailers", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 365))
@click.option("--carts-per-day", default=150.0, show_default=True, type=click.FloatRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write retailers and events as JSON lines here instead of loading them.",
)
def simulate(retailers: int, days: int, carts_per_day: float, seed: int, out: Path | None) -> None:
    """Simulate retailers and their cart history (ending now), and load it into the database."""
    _require_learning()
    from .clock import utcnow
    from .experiments import load_simulation
    from .simulate import simulate as draw

    now = utcnow().replace(microsecond=0)
    sim = draw(retailers=retailers, days=days, carts_per_day=carts_per_day, seed=seed,
               start=now - timedelta(days=days))  # fmt: skip
    if out is not None:
        with out.open("w") as handle:
            for event in sim.events():
                handle.write(json.dumps(event) + "\n")
        (out.with_suffix(".retailers.json")).write_text(json.dumps(sim.retailers, indent=2))
        click.echo(f"wrote {len(sim.carts)} carts' events to {out} "
                   f"and the retailers to {out.with_suffix('.retailers.json')}")  # fmt: skip
        return
    settings = _settings()
    _upgrade(settings)
    with _opened(settings) as svc:
        stored = load_simulation(sim, svc.store, now=now)
    click.echo(f"{len(sim.retailers)} retailers, {len(sim.carts)} carts over {days} days: "
               f"{sum(stored.values())} new events stored")  # fmt: skip


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def ingest(file: Path) -> None:
    """Store the events in FILE (.csv, or JSON lines), each row naming its retailer_id.

    All or nothing: if any line is invalid, every problem is listed and nothing is stored.
    Events already stored (same retailer and event_id) are counted and skipped.
    """
    from .ingest import InvalidFile, load

    settings = _settings()
    _upgrade(settings)
    svc = _services(settings)
    try:
        result = load(file, tenants=svc.tenants, events=svc.events)
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"{file} is not UTF-8 text (compressed? decompress it first)"
        ) from exc
    except InvalidFile as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems[:200])
        more = len(exc.problems) - 200
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise click.ClickException(f"{exc}:\n{lines}{tail}") from exc
    finally:
        svc.close()
    if not result:
        raise click.ClickException(f"no events in {file}")
    for retailer_id, (received, stored) in sorted(result.items()):
        click.echo(
            f"{retailer_id}: {received} events, {stored} new, {received - stored} already stored"
        )


@main.command()
@click.option("--retailer", "retailer_id", help="Train this retailer only (and the pooled model).")
@click.option("--as-of", help="Train on what was known at this RFC 3339 time (default: now).")
def train(retailer_id: str | None, as_of: str | None) -> None:
    """Train the pooled and per-retailer models; promote those that beat what serves."""
    _require_learning()
    from .models.training import Trainer

    settings = _settings()
    _upgrade(settings)
    svc = _services(settings)
    when = _as_of(as_of, svc.clock()) if as_of else None
    try:
        trainer = Trainer(svc.store, clock=svc.clock, progress=_progress("training"))
        outcomes = trainer.run(retailer_id=retailer_id, as_of=when)
    except LookupError as exc:
        raise click.ClickException(f"no retailer '{exc.args[0]}'") from exc
    finally:
        svc.close()
    _echo_outcomes(outcomes)


def _as_of(
    text: str, now: datetime, future: str = "outcomes after now are not known yet"
) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"not an RFC 3339 time: {text!r}", param_hint="--as-of") from exc
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when > now:
        raise click.BadParameter(f"is in the future: {future}", param_hint="--as-of")
    return when


def _progress(label: str) -> Any:
    from tqdm import tqdm

    return lambda it: tqdm(list(it), desc=label, unit="retailer", file=sys.stderr)


def _echo_outcomes(outcomes: Any) -> None:
    click.echo(f"{'model':<20} {'status':<18} {'AUC-PR(purchased): new':>24} {'served':>8} "
               f"{'baseline':>9}")  # fmt: skip
    for o in outcomes:
        m = o.metrics
        cells = [
            _fmt(m.get(k, {}).get("auc_pr_purchased")) for k in ("candidate", "served", "baseline")
        ]
        click.echo(f"{o.scope:<20} {o.status:<18} {cells[0]:>24} {cells[1]:>8} {cells[2]:>9}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@main.command()
@click.option(
    "--dataset",
    type=click.Choice(["simulated", "online-shoppers"]),
    default="simulated",
    show_default=True,
)
@click.option(
    "--train",
    "train_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="online-shoppers: the file to train on",
)
@click.option(
    "--test",
    "test_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="online-shoppers: the file to score",
)
@click.option("--train-months", help="online-shoppers: only these months of --train (e.g. Feb,Mar)")
@click.option("--test-months", help="online-shoppers: only these months of --test (e.g. Nov)")
@click.option("--retailers", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--days", default=14, show_default=True, type=click.IntRange(2, 365))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write report.json, PNG plots and index.html here",
)
@click.option("--json", "as_json", is_flag=True, help="Print the headline figures as JSON")
def evaluate(
    dataset: str,
    train_file: Path | None,
    test_file: Path | None,
    train_months: str | None,
    test_months: str | None,
    retailers: int,
    days: int,
    seed: int,
    out: Path | None,
    as_json: bool,
) -> None:
    """Evaluate the learning pipeline: on simulated retailers (against the oracle), or on the
    UCI Online Shoppers data as one retailer with custom attributes."""
    _require_learning()
    if dataset == "online-shoppers":
        from .datasets import online_shoppers

        if train_file is None or test_file is None:
            raise click.UsageError("--dataset online-shoppers needs --train FILE and --test FILE")
        try:
            report = online_shoppers.evaluate_files(
                train_file, test_file, train_months=_months(train_months),
                test_months=_months(test_months),
            )  # fmt: skip
        except online_shoppers.DatasetError as exc:
            raise click.ClickException(str(exc)) from exc
    else:
        if train_file or test_file or train_months or test_months:
            raise click.UsageError("--train/--test/--*-months go with --dataset online-shoppers")
        from .experiments import simulated_evaluation

        report, outcomes = simulated_evaluation(
            retailers=retailers, days=days, seed=seed,
            progress=_progress("training"),
        )  # fmt: skip
        if not as_json:
            _echo_outcomes(outcomes)
    if out is not None:
        from .plots import write_report

        paths = write_report(report, out)
        click.echo(f"report: {paths['index']}", err=as_json)
    headline = _headline(report)
    if as_json:
        click.echo(json.dumps(headline, indent=2))
    else:
        for name, figures in headline["models"].items():
            cells = "  ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
            click.echo(f"{name:<20} {cells}")


def _months(text: str | None) -> tuple[str, ...] | None:
    return tuple(m.strip() for m in text.split(",") if m.strip()) if text else None


def _headline(report: Any) -> dict[str, Any]:
    data = report.to_dict()
    keys = ("auc_pr_purchased", "auc_pr_abandoned", "roc_auc", "brier")
    first = data["models"][0]
    return {
        **{k: first[k] for k in keys},
        "model": first["name"],
        "prevalence_purchased": data["prevalence_purchased"],
        "n_train": data["n_train"],
        "n_test": data["n_test"],
        "models": {m["name"]: {k: m[k] for k in keys} for m in data["models"]},
        "context": data["context"],
    }


@main.group()
def model() -> None:
    """The models serving retailers."""


@model.command("rollback")
@click.argument("retailer_id")
def model_rollback(retailer_id: str) -> None:
    """Serve RETAILER_ID's previously promoted model again."""
    with _opened() as svc:
        info = svc.models.rollback(retailer_id)
    click.echo(f"{retailer_id} now served by {info['model_version']}")


# --- retention -------------------------------------------------------------------------------


@main.command()
@click.option("--as-of", help="Purge what had expired at this RFC 3339 time (default: now).")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def purge(as_of: str | None, dry_run: bool, as_json: bool) -> None:
    """Delete raw data and aggregates past their retention (see CARTPREDICT_*_RETENTION_DAYS).

    The daily stats are brought up to date first, so no prediction expires uncounted. A running
    `cartpredict serve` does this every CARTPREDICT_PURGE_INTERVAL_S as well."""
    from .retention import purge as run_purge
    from .stats import rollup

    settings = _settings()
    _upgrade(settings)
    with _opened(settings) as svc:
        now = svc.clock()
        when = _as_of(as_of, now, "purging ahead of time would delete data early") if as_of else now
        updated = 0 if dry_run else rollup(svc.store, as_of=when)
        report = run_purge(svc.store, settings, as_of=when, dry_run=dry_run)
    summary = {**report.summary(), "stats_days_updated": updated}
    if as_json:
        _echo_json(summary)
        return
    if updated:
        click.echo(f"daily stats: {updated} retailer-day(s) brought up to date first")
    verb = "would remove" if dry_run else "removed"
    click.echo(f"raw data received before {summary['raw_received_before']}, aggregates made "
               f"before {summary['aggregates_made_before']}: {verb}")  # fmt: skip
    for table, rows in report.removed.items():
        click.echo(f"  {table:<15} {rows} row(s)")


# --- load test ---------------------------------------------------------------------------


@main.command()
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

    from . import loadtest as lt

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
    keys = []
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name.endswith("_KEY") and name not in {"CARTPREDICT_OPERATOR_KEY", "DEMO_KEY"}:
            keys.append((name.removesuffix("_KEY").lower(), value))
    return keys


def _target(url: str, retailer_id: str, key: str) -> Any:
    """The retailer's offered shipping speeds, read with its own key (which checks the key)."""
    import urllib.error
    import urllib.request

    from .loadtest import LoadTestError, Target

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


@main.command()
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
    from . import cost as costs

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


# --- demo (the main job) ---------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--serve/--no-serve",
    "then_serve",
    default=True,
    show_default=True,
    help="Serve after setting up (--no-serve only prints the keys).",
)
@click.option(
    "--history/--no-history",
    default=True,
    show_default=True,
    help="Simulate 14 days of cart history for 20 retailers and train their models.",
)
def demo(host: str, port: int, then_serve: bool, history: bool) -> None:
    """Set up demo retailers with a simulated history and trained models, print their API
    keys and a curl to try, then serve."""
    if history:
        _require_learning(" (or run it with --no-history: no history, baseline models)")
    settings = _settings()
    if then_serve:
        _require_free_port(host, port)
    operator_key = settings.operator_key.get_secret_value() if settings.operator_key else None
    if operator_key is None:
        operator_key = "cpo_" + secrets.token_urlsafe(24)
        os.environ["CARTPREDICT_OPERATOR_KEY"] = operator_key
    _upgrade(settings)
    keys = _demo_retailers(settings)
    if history:
        _demo_history(settings)
    base = f"http://{host}:{port}"
    env_lines = [f"export CARTPREDICT_OPERATOR_KEY={operator_key}"]
    env_lines += [f"export {_env_name(rid)}={key}" for rid, key in keys.items()]
    env_lines.append(f"export DEMO_KEY={keys['demo_fashion']}")
    env_lines.append(f"export CARTPREDICT_URL={base}")
    env_path = Path(DEMO_ENV_FILE)
    env_path.write_text("\n".join(env_lines) + "\n")
    env_path.chmod(0o600)

    click.echo(f"cartpredict demo  (database: {_redacted(settings.database_url)})\n")
    click.echo("API keys, shown once (a new run issues new ones):")
    click.echo(f"  {'operator':<18} {operator_key}")
    for rid, key in keys.items():
        click.echo(f"  {rid:<18} {key}")
    click.echo(f"\nThe same, for your shell:  source {env_path.resolve()}\n")
    click.echo("Try (in another terminal):")
    body = json.dumps(DEMO_CART)
    click.echo(
        f"  curl -s {base}/predict_cart -H 'Authorization: Bearer {keys['demo_fashion']}' "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}\n"
    )
    if then_serve:
        click.echo(f"Serving on {base}  (API docs: {base}/docs; Ctrl-C stops)")
        sys.stdout.flush()
        _run_server(host, port, 1, access_log=False)


def _demo_retailers(settings: Settings) -> dict[str, str]:
    from .errors import RetailerExists
    from .schemas import RetailerCreate

    svc = _services(settings)
    keys: dict[str, str] = {}
    try:
        for spec in DEMO_RETAILERS:
            try:
                _, keys[spec["retailer_id"]] = svc.retailers.create(RetailerCreate(**spec))
            except RetailerExists:
                keys[spec["retailer_id"]] = svc.retailers.rotate_key(spec["retailer_id"])
    finally:
        svc.close()
    return keys


def _require_free_port(host: str, port: int) -> None:
    """Fail before any setup (and key rotation) when the port is taken."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"cannot serve on {host}:{port} ({exc.strerror}); stop what uses it or pass --port"
            ) from exc


def _demo_history(settings: Settings) -> None:
    from .clock import utcnow
    from .experiments import load_simulation, log_simulated_predictions
    from .models.training import Trainer
    from .simulate import simulate as draw
    from .stats import rollup

    now = utcnow().replace(minute=0, second=0, microsecond=0)
    others = [{"retailer_id": f"demo_store_{i:02d}"} for i in range(len(DEMO_RETAILERS) + 1, 21)]
    sim = draw(retailers=20, days=14, carts_per_day=DEMO_CARTS_PER_DAY, seed=DEMO_SEED,
               start=now - timedelta(days=15), configs=[*DEMO_RETAILERS, *others])  # fmt: skip
    with _opened(settings) as svc:
        stored = load_simulation(sim, svc.store, now=now)
        click.echo(f"Simulated history: {len(sim.retailers)} retailers, {len(sim.carts)} carts "
                   f"over 14 days ({sum(stored.values())} new events stored)")  # fmt: skip
        outcomes = Trainer(svc.store, clock=svc.clock, progress=_progress("training")).run()
        demo_ids = [r["retailer_id"] for r in DEMO_RETAILERS]
        if not set(demo_ids) & set(svc.store.first_scored()):  # once: a rerun adds none
            logged = log_simulated_predictions(sim, svc.tenants, svc.store, retailer_ids=demo_ids,
                                               now=now)  # fmt: skip
            days = rollup(svc.store, as_of=now)
            click.echo(f"Prediction history for the demo retailers: {logged} predictions, "
                       f"{days} daily aggregates (GET /retailer/{{id}}/stats)")  # fmt: skip
    _echo_outcomes(outcomes)
    click.echo()


def _env_name(retailer_id: str) -> str:
    return retailer_id.upper() + "_KEY"


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    main()
