"""What the commands share: settings, the services, the schema, input and output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from cartpredict.core.settings import Settings

# What `pip install 'cartpredict[learn]'` adds (import names); serving and admin need none.
LEARNING_PACKAGES = ("numpy", "scipy", "sklearn", "matplotlib", "tqdm", "dask", "threadpoolctl")


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's message names the variable and the reason
        raise click.ClickException(f"invalid CARTPREDICT_* setting: {exc}") from exc


def _services(settings: Settings) -> Any:
    from cartpredict.core.clock import utcnow
    from cartpredict.serving.container import build_services

    return build_services(settings, utcnow)


@contextmanager
def _opened(settings: Settings | None = None) -> Iterator[Any]:
    """The services for one command: product errors become clean CLI errors; closed after."""
    from cartpredict.core.errors import CartPredictError

    svc = _services(settings or _settings())
    try:
        yield svc
    except CartPredictError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        svc.close()


def _upgrade(settings: Settings) -> None:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from cartpredict.storage.migrate import upgrade

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


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


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


def _parse(model: Any, data: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise click.ClickException("invalid input:\n" + "\n".join(lines)) from exc


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


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))
