"""Daily aggregates per retailer.

Predictions (rows of the prediction log for those with a ``cart_id``; counts for
those without, see ``recorder.py``) are reduced to one row per retailer and UTC day: carts
scored, the distribution of P(abandoned), the decisions served, their outcomes once purchases
arrive, the scored carts' profile for drift (``drift.py``), the named carts by band of
P(abandoned) and by retention decision (``breakdown.py``), and the experiment's treatment and
control groups per action (``experiment.py``). A cart with an id counts once
per day, by its latest prediction that day; a prediction without one counts as a cart of its
own and has no outcome. Outcome: *purchased* when the retailer sent a purchase of the cart
within 24 h after the prediction (or up to ``CLOCK_SKEW`` before it), *abandoned* when 24 h
passed without one, *pending* until then. A day is recomputed on every rollup until its last
outcome is in and late events have had ``LATE_EVENTS`` to arrive; then it is final, and it
outlives the raw rows it came from (aggregates are kept up to 90 days). The outcome and the
timing rules are ``outcome.py``'s.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from cartpredict.core.clock import Clock
from cartpredict.monitoring import breakdown, experiment, tally
from cartpredict.monitoring.budget import BudgetStore, update_cutoffs
from cartpredict.monitoring.outcome import (
    CLOCK_SKEW,
    FINAL_AFTER,
    OUTCOME_WINDOW,
    day_bounds,
    outcome,
)
from cartpredict.monitoring.recorder import PredictionRecorder
from cartpredict.storage import DailyStats, EventStore, Exposure, ScoredCart

VALUE_LOOKBACK = timedelta(days=14)  # a purchased cart's value: its last update this far back


class RollupStore(BudgetStore, EventStore, Protocol):
    """What the rollup reads and writes: predictions, their purchases, exposures and cart
    values, the daily rows, the budgets' cut-offs."""


def day_figures(
    carts: Sequence[ScoredCart],
    purchases: Mapping[str, Sequence[datetime]],
    *,
    as_of: datetime,
    counted: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One day's aggregate of one retailer's predictions: the logged ones (``carts``, oldest
    first, each with its cart id) and those counted in memory without an id (``counted``)."""
    latest: dict[str, ScoredCart] = {}
    for cart in carts:
        if cart.cart_id is not None:
            latest[cart.cart_id] = cart
    figures = tally.empty()
    figures["predictions"] = len(carts)
    figures[breakdown.KEY] = broken = breakdown.empty()
    for cart in latest.values():
        found = outcome(cart, purchases, as_of)
        tally.count(
            figures, cart.p_abandoned, cart.abandoned, found,
            cart.cart_value, cart.item_count, cart.device_type, cart.shipping_speed,
        )  # fmt: skip
        breakdown.count(broken, cart.p_abandoned, found, cart.decision)
    for partial in counted:
        tally.add(figures, partial)
        breakdown.count_unnamed(broken, partial["distribution"])
    return figures


def rollup(store: RollupStore, *, as_of: datetime, final_only: bool = False) -> int:
    """Recompute every retailer's days not yet final that still have predictions; return how
    many retailer-days were written. ``final_only``: only the days that are final as of
    ``as_of`` (those a purge must count before it deletes their rows: a day still open is
    recomputed by every later rollup anyway, from whatever rows remain)."""
    written = 0
    last_day = last_final_day(as_of) if final_only else as_of.astimezone(UTC).date()
    for rid, first_day in store.first_scored().items():
        if first_day > last_day:
            continue  # (a purge's rollup: nothing of this retailer is final yet)
        final = {
            d.day for d in store.daily_stats(retailer_id=rid, start=first_day, end=last_day)
            if d.final
        }  # fmt: skip
        open_days = [d for d in _days(first_day, last_day) if d not in final]
        if not open_days:
            continue
        start, end = day_bounds(open_days[0])[0], day_bounds(open_days[-1])[1]
        by_day: dict[date, list[ScoredCart]] = defaultdict(list)
        for cart in store.scored_carts(retailer_id=rid, start=start, end=end):
            by_day[cart.at.astimezone(UTC).date()].append(cart)
        counted = store.prediction_counts(retailer_id=rid, start=open_days[0], end=open_days[-1])
        purchases: dict[str, list[datetime]] = defaultdict(list)
        for cart_id, at in store.purchases(
            retailer_id=rid,
            start=start - CLOCK_SKEW,
            end=end + OUTCOME_WINDOW + timedelta(seconds=1),
        ):
            purchases[cart_id].append(at)
        exposed = _experiment_by_day(store, rid, start, end, purchases=purchases, by_day=by_day)
        rows = []
        for day in open_days:
            if not (by_day.get(day) or counted.get(day) or exposed.get(day)):
                continue  # a day whose raw rows are gone keeps its row
            figures = day_figures(by_day[day], purchases, as_of=as_of, counted=counted.get(day, ()))
            figures[experiment.KEY] = exposed.get(day, {})
            done = as_of >= day_bounds(day)[1] + FINAL_AFTER
            rows.append(DailyStats(rid, day, computed_at=as_of, final=done, figures=figures))
        store.put_daily_stats(retailer_id=rid, days=rows)
        written += len(rows)
    return written


def last_final_day(as_of: datetime) -> date:
    """The last UTC day whose figures are final as of ``as_of``."""
    return (as_of - FINAL_AFTER).astimezone(UTC).date() - timedelta(days=1)


def rollup_now(store: RollupStore, recorder: PredictionRecorder, *, clock: Clock) -> int:
    """A running server's rollup: what this process has buffered is written first; then the
    daily stats, and the budgets' cut-offs from the decisions logged."""
    recorder.flush(store)
    now = clock()
    written = rollup(store, as_of=now)
    update_cutoffs(store, as_of=now)
    return written


def _experiment_by_day(
    store: RollupStore,
    retailer_id: str,
    start: datetime,
    end: datetime,
    *,
    purchases: Mapping[str, Sequence[datetime]],
    by_day: Mapping[date, Sequence[ScoredCart]],
) -> dict[date, dict[str, Any]]:
    """The experiment's figures (``experiment.py``) of the days in ``[start, end)``;
    ``purchases``: those of their 24 h windows, by cart."""
    exposures = store.exposures(retailer_id=retailer_id, start=start, end=end)
    retailer = store.get_retailer(retailer_id=retailer_id)
    if not exposures or retailer is None:
        return {}
    window_end = end + OUTCOME_WINDOW + timedelta(seconds=1)
    values: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for cart_id, at, value in store.cart_values(
        retailer_id=retailer_id, start=start - VALUE_LOOKBACK, end=window_end
    ):
        values[cart_id].append((at, value))
    logged = {c.cart_id: c.cart_value for day in by_day.values() for c in day if c.cart_id}
    explored = {
        c.cart_id
        for day in by_day.values()
        for c in day
        if c.cart_id and c.decision is not None and c.decision.explored
    }
    policies = experiment.policy_versions(store, retailer, since=start)
    daily: dict[date, list[Exposure]] = defaultdict(list)
    for exposure in exposures:
        daily[exposure.at.astimezone(UTC).date()].append(exposure)
    return {
        day: experiment.day_figures(found, purchases, values, logged, policies, explored)
        for day, found in daily.items()
    }


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)
