"""Daily aggregates per retailer.

Predictions (rows of the prediction log for those with a ``cart_id``; counts for
those without, see ``recorder.py``) are reduced to one row per retailer and UTC day: carts
scored, the distribution of P(abandoned), the decisions served, their outcomes once purchases
arrive, and the scored carts' profile for drift (``drift.py``). A cart with an id counts once
per day, by its latest prediction that day; a prediction without one counts as a cart of its
own and has no outcome. Outcome: *purchased* when the retailer sent a purchase of the cart
within 24 h after the prediction (or up to ``CLOCK_SKEW`` before it), *abandoned* when 24 h
passed without one, *pending* until then. A day is recomputed on every rollup until its last
outcome is in and late events have had ``LATE_EVENTS`` to arrive; then it is final, and it
outlives the raw rows it came from (aggregates are kept up to 90 days).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from cartpredict.core.clock import Clock
from cartpredict.monitoring import tally
from cartpredict.monitoring.budget import BudgetStore, update_cutoffs
from cartpredict.monitoring.recorder import PredictionRecorder
from cartpredict.storage import DailyStats, EventStore, ScoredCart

OUTCOME_WINDOW = timedelta(hours=24)
LATE_EVENTS = timedelta(hours=24)  # a purchase sent this late after its window still counts
FINAL_AFTER = OUTCOME_WINDOW + LATE_EVENTS  # after a day ends: final, never computed again
# A purchase stamped this much before the prediction still follows it: event times are often
# whole seconds, and the retailer's clock is not ours.
CLOCK_SKEW = timedelta(minutes=2)


class RollupStore(BudgetStore, EventStore, Protocol):
    """What the rollup reads and writes: predictions, their purchases, the daily rows, the
    budgets' cut-offs."""


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
    for cart in latest.values():
        outcome = _outcome(cart, purchases, as_of)
        tally.count(
            figures, cart.p_abandoned, cart.abandoned, outcome,
            cart.cart_value, cart.item_count, cart.device_type, cart.shipping_speed,
        )  # fmt: skip
    for partial in counted:
        tally.add(figures, partial)
    return figures


def _outcome(cart: ScoredCart, purchases: Mapping[str, Sequence[datetime]], as_of: datetime) -> str:
    if cart.cart_id is None:
        return "without_cart_id"
    end = cart.at + OUTCOME_WINDOW
    purchased = any(cart.at - CLOCK_SKEW < at <= end for at in purchases.get(cart.cart_id, ()))
    if purchased:
        return "fp" if cart.abandoned else "tn"
    if end > as_of:
        return "pending"
    return "tp" if cart.abandoned else "fn"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def rollup(store: RollupStore, *, as_of: datetime) -> int:
    """Recompute every retailer's days not yet final that still have predictions; return how
    many retailer-days were written."""
    written = 0
    for rid, first_day in store.first_scored().items():
        last_day = as_of.astimezone(UTC).date()
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
        rows = [
            DailyStats(
                retailer_id=rid,
                day=day,
                computed_at=as_of,
                final=as_of >= day_bounds(day)[1] + FINAL_AFTER,
                figures=day_figures(
                    by_day[day], purchases, as_of=as_of, counted=counted.get(day, ())
                ),
            )
            for day in open_days
            if by_day.get(day) or counted.get(day)  # a day whose raw rows are gone keeps its row
        ]
        store.put_daily_stats(retailer_id=rid, days=rows)
        written += len(rows)
    return written


def rollup_now(store: RollupStore, recorder: PredictionRecorder, *, clock: Clock) -> int:
    """A running server's rollup: what this process has buffered is written first; then the
    daily stats, and the budgets' cut-offs from the decisions logged."""
    recorder.flush(store)
    now = clock()
    written = rollup(store, as_of=now)
    update_cutoffs(store, as_of=now)
    return written


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)
