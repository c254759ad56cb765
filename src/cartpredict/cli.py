"""The ``cartpredict`` command: thin commands over the service."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
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


def _upgrade(settings: Settings) -> None:
    from .storage.migrate import upgrade

    upgrade(settings.database_url)


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
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
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
    import uvicorn

    uvicorn.run(
        "cartpredict.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
    )


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
def retailer_create(
    retailer_id: str,
    requires_account: bool,
    payment_options: tuple[str, ...],
    shipping_speeds: tuple[str, ...],
    pooled_learning: bool,
    precision_target: float,
) -> None:
    """Create RETAILER_ID and print it with its API key (shown only this once)."""
    from .errors import CartPredictError
    from .schemas import RetailerCreate

    spec = _parse(
        RetailerCreate,
        {
            "retailer_id": retailer_id,
            "requires_account": requires_account,
            "payment_options": list(payment_options),
            "shipping_speeds": list(shipping_speeds),
            "pooled_learning": pooled_learning,
            "precision_target": precision_target,
        },
    )
    settings = _settings()
    _upgrade(settings)
    svc = _services(settings)
    try:
        created, key = svc.retailers.create(spec)
    except CartPredictError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        svc.close()
    _echo_json(created.public() | {"api_key": key})


@retailer.command("rotate-key")
@click.argument("retailer_id")
def retailer_rotate_key(retailer_id: str) -> None:
    """Revoke RETAILER_ID's keys and print a new one."""
    from .errors import CartPredictError

    svc = _services(_settings())
    try:
        key = svc.retailers.rotate_key(retailer_id)
    except CartPredictError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        svc.close()
    _echo_json({"retailer_id": retailer_id, "api_key": key})


def _parse(model: Any, data: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise click.ClickException("invalid input:\n" + "\n".join(lines)) from exc


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
def demo(host: str, port: int, then_serve: bool) -> None:
    """Set up demo retailers, print their API keys and a curl to try, then serve."""
    settings = _settings()
    operator_key = settings.operator_key.get_secret_value() if settings.operator_key else None
    if operator_key is None:
        operator_key = "cpo_" + secrets.token_urlsafe(24)
        os.environ["CARTPREDICT_OPERATOR_KEY"] = operator_key
    _upgrade(settings)
    keys = _demo_retailers(settings)
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


def _env_name(retailer_id: str) -> str:
    return retailer_id.upper() + "_KEY"


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    main()
