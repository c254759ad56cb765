"""The data in the database: simulate or ingest cart history, purge what has expired."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import click

from cartpredict.cli.common import (
    _as_of,
    _echo_json,
    _opened,
    _require_learning,
    _services,
    _settings,
    _upgrade,
)


@click.command()
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
    from cartpredict.core.clock import utcnow
    from cartpredict.learning.simulate import simulate as draw
    from cartpredict.ops.experiments import load_simulation

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


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def ingest(file: Path) -> None:
    """Store the events in FILE (.csv, or JSON lines), each row naming its retailer_id.

    All or nothing: if any line is invalid, every problem is listed and nothing is stored.
    Events already stored (same retailer and event_id) are counted and skipped.
    """
    from cartpredict.serving.ingest import InvalidFile, load

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


@click.command()
@click.option("--as-of", help="Purge what had expired at this RFC 3339 time (default: now).")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def purge(as_of: str | None, dry_run: bool, as_json: bool) -> None:
    """Delete raw data and aggregates past their retention (see CARTPREDICT_*_RETENTION_DAYS).

    The daily stats are brought up to date first, so no prediction expires uncounted. A running
    `cartpredict serve` does this every CARTPREDICT_PURGE_INTERVAL_S as well."""
    from cartpredict.monitoring.rollup import rollup
    from cartpredict.privacy.retention import purge as run_purge

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
