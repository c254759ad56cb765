"""Reports to share: one retailer's own evaluation, and the insights of a fresh evaluation run."""

from __future__ import annotations

from pathlib import Path

import click

from cartpredict.cli.common import _as_of, _opened, _require_learning, _settings, _upgrade


@click.command()
@click.option("--retailer", "retailer_id", required=True, help="The retailer to report on.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write index.html and its PNG figures here (default: ./report-RETAILER/).",
)
@click.option("--as-of", help="Evaluate what was known at this RFC 3339 time (default: now).")
def report(retailer_id: str, out: Path | None, as_of: str | None) -> None:
    """One retailer's own evaluation, as HTML and PNG for offline sharing: the served model
    against the baseline rule on the retailer's held-out carts (PR curves, calibration,
    AUC-PR, Brier score, outcomes per score band), every figure over at least 10 carts."""
    _require_learning()
    from cartpredict.ops import retailer_report as rr

    settings = _settings()
    _upgrade(settings)
    with _opened(settings) as svc:
        when = _as_of(as_of, svc.clock()) if as_of else svc.clock()
        try:
            found = rr.retailer_report(svc.store, retailer_id, as_of=when)
        except rr.ReportError as exc:
            raise click.ClickException(str(exc)) from exc
    paths = rr.write(found, out or Path(f"report-{retailer_id}"))
    click.echo(rr.summary(found))
    click.echo(f"report: {paths['index'].resolve()}")


@click.command()
@click.option(
    "--out",
    default=Path("docs/insights.md"),
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the memo (markdown).",
)
@click.option("--retailers", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--days", default=14, show_default=True, type=click.IntRange(2, 365))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--real-data",
    default=Path("../shared/data/real"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A folder with online_shoppers*.csv.gz and rees46*.csv.gz; left out where missing.",
)
@click.option(
    "--requests",
    "n_requests",
    default=2000,
    show_default=True,
    type=click.IntRange(100, 100_000),
    help="Requests of the latency measurement.",
)
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(1, 256))
@click.option("--skip-latency", is_flag=True, help="No load test (nor the cost it prices).")
def insights(
    out: Path,
    retailers: int,
    days: int,
    seed: int,
    real_data: Path,
    n_requests: int,
    concurrency: int,
    skip_latency: bool,
) -> None:
    """Run a fresh evaluation and write three insights and the audit of the seed's
    hypotheses (held or not held, with the numbers): the simulated evaluation, the real data
    sets when present, a short load test of a local server and the cost model on it."""
    _require_learning()
    from cartpredict.core.clock import utcnow
    from cartpredict.ops import insights as memo

    options = memo.Options(retailers=retailers, days=days, seed=seed, requests=n_requests,
                           concurrency=concurrency)  # fmt: skip
    measured = memo.measure(options, real_data=real_data, latency=not skip_latency,
                            now=utcnow().replace(microsecond=0),
                            say=lambda line: click.echo(line, err=True))  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(memo.render(measured), encoding="utf-8")
    for row in memo.audit(measured):
        click.echo(f"({row.hypothesis.key}) {row.verdict:<12} {row.hypothesis.claim}: "
                   f"{row.figures}")  # fmt: skip
    click.echo(f"insights: {out.resolve()}")
