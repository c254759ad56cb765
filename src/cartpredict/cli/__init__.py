"""The ``cartpredict`` command: thin commands over the service, one module per concern."""

from __future__ import annotations

import click

from cartpredict.cli.admin import db, model, retailer
from cartpredict.cli.common import LEARNING_PACKAGES
from cartpredict.cli.data import ingest, purge, simulate
from cartpredict.cli.demo import DEMO_ENV_FILE, DEMO_RETAILERS, demo
from cartpredict.cli.learn import evaluate, experiment_coverage, train, uplift_loop
from cartpredict.cli.ops import cost, loadtest
from cartpredict.cli.report import insights, report
from cartpredict.cli.serve import serve

# The names tests and callers import from here, wherever they are defined.
__all__ = ["DEMO_ENV_FILE", "DEMO_RETAILERS", "LEARNING_PACKAGES", "main"]


@click.group()
@click.version_option(package_name="cartpredict")
def main() -> None:
    """Predict whether e-commerce carts will be purchased or abandoned in the next 24 hours.

    Configuration comes from CARTPREDICT_* environment variables (see the README).
    """


main.add_command(serve)
main.add_command(db)
main.add_command(retailer)
main.add_command(model)
main.add_command(simulate)
main.add_command(ingest)
main.add_command(purge)
main.add_command(train)
main.add_command(evaluate)
main.add_command(experiment_coverage)
main.add_command(uplift_loop)
main.add_command(loadtest)
main.add_command(cost)
main.add_command(demo)
main.add_command(report)
main.add_command(insights)
