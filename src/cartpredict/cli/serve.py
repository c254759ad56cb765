"""`cartpredict serve`: the HTTP API."""

from __future__ import annotations

import click

from cartpredict.cli.common import _settings, _upgrade


@click.command()
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
    from cartpredict.ops.server import SEVERAL_WORKERS, run

    if workers > 1 and not SEVERAL_WORKERS:
        raise click.ClickException(
            "--workers above 1 needs gunicorn, which runs on Unix only: "
            "run one single-worker server per process instead"
        )
    run(host=host, port=port, workers=workers, access_log=access_log)
