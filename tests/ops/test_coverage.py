"""The experiment report against the simulator's truth, end to end (one seed; the 20-seed
figure is ``cartpredict experiment-coverage``): the report counts exactly the simulated
exposures and purchases of the days it shows, and its interval covers the true effect."""

from __future__ import annotations

from datetime import UTC, timedelta

from cartpredict.learning.simulate import SimulatedCart, SimulatedExposure
from cartpredict.ops import coverage


def bought_within_a_day(x: SimulatedExposure, cart: SimulatedCart) -> bool:
    at = cart.purchased_at
    return at is not None and x.at < at <= x.at + timedelta(hours=24)


def test_the_report_counts_the_simulated_carts_and_its_interval_covers_the_truth() -> None:
    runs = coverage.coverage_run(0)
    assert {r.action for r in runs} == {"reminder_email", "popup_10"}
    sim = coverage.simulated(0, days=7, carts_per_day=1500.0, truth="logistic")
    for run in runs:
        assert len(run.days) >= 5  # most of the week is shown
        carts = {c.cart_id: c for c in sim.carts if c.retailer_id == run.retailer_id}
        exposed = [x for x in sim.exposures
                   if x.retailer_id == run.retailer_id and x.action == run.action
                   and x.at.astimezone(UTC).date() in run.days]  # fmt: skip
        treated = [x for x in exposed if x.group == "treatment"]
        held = [x for x in exposed if x.group == "control"]
        assert (run.treatment_carts, run.control_carts) == (len(treated), len(held))
        rate_t = sum(bought_within_a_day(x, carts[x.cart_id]) for x in treated) / len(treated)
        rate_c = sum(bought_within_a_day(x, carts[x.cart_id]) for x in held) / len(held)
        assert run.estimate == round(rate_t - rate_c, 4)
        assert run.covered, run
