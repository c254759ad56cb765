"""`cartpredict demo`: demo retailers with a simulated history and trained models, then serve."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from cartpredict.cli.common import (
    _opened,
    _redacted,
    _require_learning,
    _services,
    _settings,
    _upgrade,
)
from cartpredict.cli.learn import _echo_outcomes, _progress
from cartpredict.cli.serve import _run_server
from cartpredict.core.settings import Settings

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


@click.command()
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
        click.echo(f"Serving on {base}  (dashboard: {base}/app/, sign in with a key above; "
                   f"API docs: {base}/docs; Ctrl-C stops)")  # fmt: skip
        sys.stdout.flush()
        _run_server(host, port, 1, access_log=False)


def _demo_retailers(settings: Settings) -> dict[str, str]:
    from cartpredict.core.errors import RetailerExists
    from cartpredict.serving.schemas import RetailerCreate

    svc = _services(settings)
    keys: dict[str, str] = {}
    try:
        for spec in DEMO_RETAILERS:
            try:
                _, keys[spec["retailer_id"]] = svc.retailers.create(RetailerCreate(**spec))
            except RetailerExists:
                keys[spec["retailer_id"]] = svc.keys.replace_all(spec["retailer_id"]).secret
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
    from cartpredict.core.clock import utcnow
    from cartpredict.learning.executors import make_executor
    from cartpredict.learning.simulate import simulate as draw
    from cartpredict.learning.training import Trainer
    from cartpredict.monitoring.rollup import rollup
    from cartpredict.ops.experiments import load_simulation, log_simulated_predictions

    now = utcnow().replace(minute=0, second=0, microsecond=0)
    others = [{"retailer_id": f"demo_store_{i:02d}"} for i in range(len(DEMO_RETAILERS) + 1, 21)]
    sim = draw(retailers=20, days=14, carts_per_day=DEMO_CARTS_PER_DAY, seed=DEMO_SEED,
               start=now - timedelta(days=15), configs=[*DEMO_RETAILERS, *others])  # fmt: skip
    with _opened(settings) as svc:
        stored = load_simulation(sim, svc.store, now=now)
        click.echo(f"Simulated history: {len(sim.retailers)} retailers, {len(sim.carts)} carts "
                   f"over 14 days ({sum(stored.values())} new events stored)")  # fmt: skip
        trainer = Trainer(svc.store, clock=svc.clock, progress=_progress("training"),
                          executor=make_executor("local"),
                          database_url=settings.database_url)  # fmt: skip
        outcomes = trainer.run()
        demo_ids = [r["retailer_id"] for r in DEMO_RETAILERS]
        if not set(demo_ids) & set(svc.store.first_scored()):  # once: a rerun adds none
            logged = log_simulated_predictions(sim, svc.tenants, svc.store, retailer_ids=demo_ids,
                                               now=now, decided=True)  # fmt: skip
            days = rollup(svc.store, as_of=now)
            click.echo(f"Prediction history for the demo retailers: {logged} predictions, "
                       f"{days} daily aggregates (GET /retailer/{{id}}/stats)")  # fmt: skip
    _echo_outcomes(outcomes)
    click.echo()


def _env_name(retailer_id: str) -> str:
    return retailer_id.upper() + "_KEY"


def _env_file_keys(path: Path) -> list[tuple[str, str]]:
    """The retailers' keys in an env file the demo wrote."""
    keys = []
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name.endswith("_KEY") and name not in {"CARTPREDICT_OPERATOR_KEY", "DEMO_KEY"}:
            keys.append((name.removesuffix("_KEY").lower(), value))
    return keys
