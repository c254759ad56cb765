"""Learning: train the models, evaluate the pipeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from cartpredict.cli.common import _as_of, _require_learning, _services, _settings, _upgrade
from cartpredict.decisions.exploration import DEFAULT_EXPLORE_SHARE, DEFAULT_TIME_SHARE


@click.command()
@click.option("--retailer", "retailer_id", help="Train this retailer only (and the pooled model).")
@click.option("--as-of", help="Train on what was known at this RFC 3339 time (default: now).")
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where per-retailer fits run: this machine's cores, or a Dask cluster.",
)
@click.option(
    "--address",
    help="--executor dask: the scheduler (tcp://host:8786); default: a local cluster for this run.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 1024),
    help="Processes to fit in (default: every core; 1 fits in this process).",
)
def train(
    retailer_id: str | None,
    as_of: str | None,
    executor: str,
    address: str | None,
    workers: int | None,
) -> None:
    """Train the pooled and per-retailer models; promote those that beat what serves. A run
    over every retailer then learns each action's recovery model from the control groups."""
    _require_learning()
    from cartpredict.learning.executors import make_executor
    from cartpredict.learning.training import Trainer

    if address is not None and executor != "dask":
        raise click.UsageError("--address goes with --executor dask")

    settings = _settings()
    _upgrade(settings)
    svc = _services(settings)
    when = _as_of(as_of, svc.clock()) if as_of else None
    try:
        pool = make_executor(executor, address=address, workers=workers)
        trainer = Trainer(svc.store, clock=svc.clock, progress=_progress("training"),
                          executor=pool, database_url=settings.database_url)  # fmt: skip
        outcomes = trainer.run(retailer_id=retailer_id, as_of=when)
        recovery = []
        if retailer_id is None:  # (pools need every retailer's experiments)
            from cartpredict.learning.recovery_training import train_recovery

            recovery = train_recovery(svc.store, as_of=when or svc.clock(), clock=svc.clock)
    except LookupError as exc:
        raise click.ClickException(f"no retailer '{exc.args[0]}'") from exc
    finally:
        svc.close()
    _echo_outcomes(outcomes)
    if recovery:
        _echo_recovery(recovery)


def _echo_recovery(outcomes: Any) -> None:
    """Per retailer and action: what the recovery rate comes from now, and why."""
    click.echo(f"\n{'recovery model':<20} {'action':<18} {'serves':<8} {'reason':<16} "
               f"{'treated':>8} {'control':>8}")  # fmt: skip
    for o in outcomes:
        for name, a in sorted(o.actions.items()):
            serves = a.get("source") or "prior"
            treated, control = a.get("treated", "-"), a.get("control", "-")
            click.echo(f"{o.scope:<20} {name:<18} {serves:<8} {a['reason']:<16} "
                       f"{treated:>8} {control:>8}")  # fmt: skip


def _progress(label: str) -> Any:
    from tqdm import tqdm

    return lambda it, total=None: tqdm(it, total=total, desc=label, unit="retailer",
                                       file=sys.stderr)  # fmt: skip


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


@click.command()
@click.option(
    "--dataset",
    type=click.Choice(["simulated", "online-shoppers", "closed-loop"]),
    default="simulated",
    show_default=True,
    help="closed-loop: decide with the priors, learn who responds, decide again (uplift-loop)",
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
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="closed-loop: how many seeds, from --seed (about a minute each)")  # fmt: skip
@click.option(
    "--truth",
    type=click.Choice(["logistic", "curved"]),
    default="logistic",
    show_default=True,
    help="simulated: how purchase depends on the cart (curved: not logistic in our features)",
)
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
    seeds: int,
    truth: str,
    out: Path | None,
    as_json: bool,
) -> None:
    """Evaluate the learning pipeline: on simulated retailers (against the oracle), on the
    UCI Online Shoppers data as one retailer with custom attributes, or the decisions' closed
    loop (Qini curves, profit per policy, send time)."""
    _require_learning()
    if dataset == "closed-loop":
        _closed_loop(range(seed, seed + seeds), out=out, as_json=as_json)
        return
    if dataset == "online-shoppers":
        from cartpredict.learning.datasets import online_shoppers

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
        from cartpredict.ops.experiments import simulated_evaluation

        report, outcomes = simulated_evaluation(
            retailers=retailers, days=days, seed=seed, truth=truth,
            progress=_progress("training"),
        )  # fmt: skip
        if not as_json:
            _echo_outcomes(outcomes)
    if out is not None:
        from cartpredict.learning.plots import write_report

        paths = write_report(report, out)
        click.echo(f"report: {paths['index']}", err=as_json)
    headline = _headline(report)
    if as_json:
        click.echo(json.dumps(headline, indent=2))
    else:
        for name, figures in headline["models"].items():
            cells = "  ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
            click.echo(f"{name:<20} {cells}")
        _echo_decisions(report.decisions)


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
        "decisions": _decision_figures(data.get("decisions")),
        "context": data["context"],
    }


DECISION_KEYS = ("profit_per_1000", "gain_per_1000", "ratio_to_oracle", "gain_ratio_to_oracle",
                 "acted")  # fmt: skip


def _decision_figures(section: dict[str, Any] | None) -> dict[str, Any] | None:
    """Each policy's expected profit per 1,000 carts and its ratios to the oracle's."""
    if section is None:
        return None
    return {
        "n_carts": section["n_carts"],
        "policies": {p["name"]: {k: p[k] for k in DECISION_KEYS} for p in section["policies"]},
    }


def _echo_decisions(section: Any) -> None:
    if section is None:
        return
    click.echo(f"\nexpected profit per 1,000 carts ({section.n_carts:,} test carts at "
               f"{section.decision_hours:g} h of inactivity, "
               f"{section.contactable_share:.0%} contactable)")  # fmt: skip
    click.echo(f"{'policy':<24} {'profit':>9} {'gain':>8} {'÷oracle':>8} {'gain ÷oracle':>13}")
    for p in section.policies:
        click.echo(f"{p.name:<24} {p.profit_per_1000:>9.1f} {_signed(p.gain_per_1000):>8} "
                   f"{_fmt(p.ratio_to_oracle):>8} {_fmt(p.gain_ratio_to_oracle):>13}")  # fmt: skip


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


@click.command("experiment-coverage")
@click.option("--seeds", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--days", default=7, show_default=True, type=click.IntRange(2, 60))
@click.option("--carts-per-day", default=1500.0, show_default=True, type=click.FloatRange(1))
@click.option("--truth", type=click.Choice(["logistic", "curved"]), default="logistic",
              show_default=True)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print every run as JSON")
def experiment_coverage(
    seeds: int, days: int, carts_per_day: float, truth: str, as_json: bool
) -> None:
    """How often the experiment report's 95 % interval covers the simulator's true effect.

    One run per seed (0, 1, ...): a simulated store acts on its carts with control groups,
    its events go through the service into a throwaway database, and the report's interval
    for each action is compared with the simulator's expected intent-to-treat effect over the
    carts it counts. A seed whose report shows nothing for an action counts as not covered.
    """
    _require_learning()
    from cartpredict.ops.coverage import coverage_run

    runs = []
    for seed in range(seeds):
        found = coverage_run(seed, days=days, carts_per_day=carts_per_day, truth=truth)
        runs += found
        if not as_json:
            for run in found:
                lo, hi = run.ci95
                verdict = "covered" if run.covered else "MISSED"
                click.echo(f"seed {seed:>3}  {run.retailer_id}  {run.action:<16} "
                           f"T {run.treatment_carts:>6}  C {run.control_carts:>5}  "
                           f"uplift {run.estimate:+.4f} [{lo:+.4f}, {hi:+.4f}]  "
                           f"true {run.expected:+.4f}  {verdict}")  # fmt: skip
    actions = sorted({r.action for r in runs})
    summary = {
        a: {"seeds": seeds, "shown": sum(r.action == a for r in runs),
            "covered": sum(r.action == a and r.covered for r in runs)}
        for a in actions
    }  # fmt: skip
    if as_json:
        click.echo(json.dumps({"runs": [r.to_dict() for r in runs], "summary": summary}))
        return
    for a, s in summary.items():
        click.echo(f"{a}: covered in {s['covered']} of {seeds} seeds "
                   f"(shown in {s['shown']}; not shown: suppressed, too few carts)")  # fmt: skip


@click.command("uplift-loop")
@click.option("--seeds", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--first-seed", default=0, show_default=True, type=click.IntRange(0))
@click.option("--stores", default=8, show_default=True, type=click.IntRange(1, 100),
              help="Opted-in stores whose experiments make the pooled model.")  # fmt: skip
@click.option("--carts-per-day", default=1300.0, show_default=True, type=click.FloatRange(1),
              help="Per store (14 days of history each).")  # fmt: skip
@click.option("--explore-share", default=DEFAULT_EXPLORE_SHARE, show_default=True,
              type=click.FloatRange(0.0, 1.0))  # fmt: skip
@click.option("--time-share", default=DEFAULT_TIME_SHARE, show_default=True,
              type=click.FloatRange(0.0, 1.0),
              help="Of the other carts given a message, the share sent at random.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print every run as JSON")
def uplift_loop(
    seeds: int,
    first_seed: int,
    stores: int,
    carts_per_day: float,
    explore_share: float,
    time_share: float,
    as_json: bool,
) -> None:
    """Does learning who responds pay? The closed loop on the simulator, one run per seed.

    Days 1–14: the stores decide with the priors (and exploration), against control groups;
    then each action's recovery model is learnt (pooled, shrunk per store, promoted or not);
    days 15–21: every policy decides the same carts and is valued by its true expected profit
    per 1,000 carts. Gain share: (policy − no action) / (oracle − no action).
    """
    _require_learning()
    _closed_loop(range(first_seed, first_seed + seeds), stores=stores,
                 carts_per_day=carts_per_day, explore_share=explore_share,
                 time_share=time_share, as_json=as_json)  # fmt: skip


def _closed_loop(
    seeds: range, *, out: Path | None = None, as_json: bool = False, **options: Any
) -> None:
    """Run the closed loop per seed, print a line each (or every run as JSON at the end), and
    write the report into ``out``."""
    from cartpredict.ops.closed_loop import run

    runs = []
    for seed in seeds:
        loop = run(seed, **options)
        runs.append(loop)
        if not as_json:
            click.echo(_loop_line(loop))
    if out is not None:
        from cartpredict.learning.loop_report import write_loop_report

        paths = write_loop_report([r.to_dict() for r in runs], out)
        click.echo(f"report: {paths['index']}", err=as_json)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in runs]))
        return
    better = sum(r.profit_per_1000["learnt"] > r.profit_per_1000["prior"] for r in runs)
    click.echo(f"learnt decisions beat the prior-based ones in {better} of {len(runs)} seeds")


def _loop_line(loop: Any) -> str:
    p = loop.profit_per_1000

    def share(name: str) -> str:
        return _fmt(loop.gain_share(name))

    uniform = max(v for k, v in p.items() if k.startswith("uniform:") or k == "no_action")
    email = loop.qini.get("reminder_email") or next(iter(loop.qini.values()))
    return (
        f"seed {loop.seed:>3}  gain share: prior {share('prior')} learnt {share('learnt')} "
        f"pooled {share('pooled')} true rates {share('true_rates')}  "
        f"learnt/oracle {loop.learnt_to_oracle:.3f}  beats uniform {p['learnt'] > uniform}  "
        f"Qini model {email['model']['coefficient']:+.4f} prior "
        f"{email['prior']['coefficient']:+.4f} oracle {email['oracle']['coefficient']:+.4f}  "
        f"send time within a step {_fmt(loop.send_time['within_one_step'])}  "
        f"exploring costs {p['prior'] - loop.explored_profit_per_1000:.0f}/1000"
    )
