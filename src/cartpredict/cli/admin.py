"""Operator commands on the database: its schema and roles, retailers, served models."""

from __future__ import annotations

import os

import click

from cartpredict.cli.common import _echo_json, _opened, _parse, _redacted, _settings, _upgrade
from cartpredict.storage import ABANDONMENT, RECOVERY

# --- db --------------------------------------------------------------------------------------


@click.group()
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

    from cartpredict.storage.roles import create_service_login

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


@click.group()
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
    help="Repeat for each speed offered: standard, express, overnight, same_day, pickup, or a "
    "lower-case name of your own (give its delivery days with --shipping-days)",
)
@click.option(
    "--shipping-days",
    "shipping_days",
    multiple=True,
    metavar="SPEED:DAYS",
    help="Delivery days of one of the speeds, e.g. --shipping-days economy:7 (repeatable)",
)
@click.option(
    "--currency", default="USD", show_default=True, help="ISO 4217 code of the store's currency"
)
@click.option(
    "--baseline-threshold",
    type=float,
    help="The baseline rule's threshold in the currency [default: $20 converted]",
)
@click.option(
    "--typical-cart-value",
    type=float,
    help="A typical cart in the currency (e.g. the median) [default: $60 converted]",
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
    shipping_days: tuple[str, ...],
    currency: str,
    baseline_threshold: float | None,
    typical_cart_value: float | None,
) -> None:
    """Create RETAILER_ID and print it with its API key (shown only this once)."""
    from cartpredict.serving.schemas import RetailerCreate, retailer_public

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
            "shipping_days": dict(_speed_days(s) for s in shipping_days),
            "currency": currency,
            **({} if baseline_threshold is None else {"baseline_threshold": baseline_threshold}),
            **({} if typical_cart_value is None else {"typical_cart_value": typical_cart_value}),
        },
    )
    settings = _settings()
    _upgrade(settings)
    with _opened(settings) as svc:
        created, key = svc.retailers.create(spec)
    _echo_json(retailer_public(created) | {"api_key": key})


def _speed_days(text: str) -> tuple[str, float]:
    speed, _, days = text.partition(":")
    try:
        return speed, float(days)
    except ValueError:
        raise click.BadParameter(f"{text!r}: give SPEED:DAYS, e.g. economy:7",
                                 param_hint="--shipping-days") from None  # fmt: skip


@retailer.command("rotate-key")
@click.argument("retailer_id")
def retailer_rotate_key(retailer_id: str) -> None:
    """Revoke RETAILER_ID's keys and print a new one."""
    with _opened() as svc:
        issued = svc.keys.replace_all(retailer_id)
    _echo_json({"retailer_id": retailer_id, "api_key": issued.secret})


# --- models ----------------------------------------------------------------------------------


@click.group()
def model() -> None:
    """The models serving retailers."""


@model.command("rollback")
@click.argument("retailer_id")
@click.option("--kind", type=click.Choice([ABANDONMENT, RECOVERY]), default=ABANDONMENT,
              show_default=True,
              help="The abandonment model, or the recovery models of the decisions.")  # fmt: skip
def model_rollback(retailer_id: str, kind: str) -> None:
    """Serve RETAILER_ID's previously promoted model again."""
    with _opened() as svc:
        info = svc.models.rollback(retailer_id, kind)
    if kind == RECOVERY:
        click.echo(f"{retailer_id}'s decisions now served by {info['recovery']['version']}")
        return
    click.echo(f"{retailer_id} now served by {info['model_version']}")
