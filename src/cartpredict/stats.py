"""Daily aggregates per retailer, and what a retailer may see of them (k-anonymity).

**Rollup.** Predictions (rows of the prediction log for those with a ``cart_id``; counts for
those without, see ``recorder.py``) are reduced to one row per retailer and UTC day: carts
scored, the distribution of P(abandoned), the decisions served, their outcomes once purchases
arrive, and the scored carts' profile for drift (``drift.py``). A cart with an id counts once
per day, by its latest prediction that day; a prediction without one counts as a cart of its
own and has no outcome. Outcome: *purchased* when the retailer sent a purchase of the cart
within 24 h after the prediction (or up to ``CLOCK_SKEW`` before it), *abandoned* when 24 h
passed without one, *pending* until then. A day is recomputed on every rollup until its last
outcome is in and late events have had ``LATE_EVENTS`` to arrive; then it is final, and it
outlives the raw rows it came from (aggregates are kept up to 90 days).

**k-anonymity.** Every figure shown covers at least ``K_ANONYMITY`` carts, and the groups are
fixed by the calendar (see ``_periods``), so that subtracting one answer from another (another
window, another day) cannot isolate fewer: a day with at least k carts is shown alone, the other
days of a week together once the week is over, today once it is over. Bins of the distribution
are merged until each holds k, a ratio is shown only when the carts it is taken over number at
least k, and the response lists every merge and every suppression.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from . import drift, tally
from .anonymity import merge_small
from .clock import Clock, rfc3339
from .models.registry import ModelRegistry
from .recorder import PredictionRecorder
from .service import Tenants
from .settings import K_ANONYMITY
from .storage import POOLED_SCOPE, DailyStats, ScoredCart, Store
from .tally import P_BINS

OUTCOME_WINDOW = timedelta(hours=24)
LATE_EVENTS = timedelta(hours=24)  # a purchase sent this late after its window still counts
# A purchase stamped this much before the prediction still follows it: event times are often
# whole seconds, and the retailer's clock is not ours.
CLOCK_SKEW = timedelta(minutes=2)
DRIFT_DAYS = 7
MIN_DRIFT_CARTS = 200  # below this, PSI says more about chance than about drift
MAX_DAYS = 90

# --- rollup ------------------------------------------------------------------------------------


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


def rollup(store: Store, *, as_of: datetime) -> int:
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
                final=as_of >= day_bounds(day)[1] + OUTCOME_WINDOW + LATE_EVENTS,
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


def rollup_now(store: Store, recorder: PredictionRecorder, *, clock: Clock) -> int:
    """A running server's rollup: what this process has buffered is written first."""
    recorder.flush(store)
    return rollup(store, as_of=clock())


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


# --- k-anonymity -------------------------------------------------------------------------------


class _Notes:
    def __init__(self) -> None:
        self.merged: list[dict[str, str]] = []
        self.suppressed: list[dict[str, str]] = []

    def ratio(self, field: str, hits: int, among: int, what: str) -> float | None:
        if among >= K_ANONYMITY:
            return round(hits / among, 4)
        self.suppressed.append({"field": field, "reason": f"fewer than {K_ANONYMITY} carts {what}"})
        return None


def _group(figures: Mapping[str, Any], field: str, notes: _Notes) -> dict[str, Any]:
    """What a retailer sees of a group of carts already known to hold at least k."""
    o = figures["outcomes"]
    carts = figures["carts"]
    resolved = o["tp"] + o["fp"] + o["fn"] + o["tn"]
    return {
        "carts": carts,
        "predictions": figures["predictions"],
        "predicted_abandoned": figures["predicted_abandoned"],
        "predicted_abandoned_share": round(figures["predicted_abandoned"] / carts, 4),
        "mean_abandonment_probability": round(figures["p_abandoned_sum"] / carts, 4),
        "outcomes": {
            "resolved": resolved,
            "pending": o["pending"],
            "without_cart_id": o["without_cart_id"],
            "abandonment_rate": notes.ratio(
                f"{field}.outcomes.abandonment_rate", o["tp"] + o["fn"], resolved,
                "with a known outcome",
            ),
            "precision": notes.ratio(
                f"{field}.outcomes.precision", o["tp"], o["tp"] + o["fp"],
                "predicted abandoned with a known outcome",
            ),
            "recall": notes.ratio(
                f"{field}.outcomes.recall", o["tp"], o["tp"] + o["fn"], "abandoned",
            ),
        },
    }  # fmt: skip


def _distribution(counts: Sequence[int], notes: _Notes) -> list[dict[str, Any]]:
    bins = [(i / P_BINS, (i + 1) / P_BINS, n) for i, n in enumerate(counts) if n]
    groups = merge_small(bins, lambda b: b[2], K_ANONYMITY)
    if len(groups) < len(bins):
        notes.merged.append(
            {"field": "distribution", "reason": f"bins with fewer than {K_ANONYMITY} carts were "
             "merged with their neighbours"}
        )  # fmt: skip
    return [{"lower": g[0][0], "upper": g[-1][1], "carts": sum(b[2] for b in g)} for g in groups]


def _periods(
    rows: Sequence[DailyStats], today: date, held_from: date, notes: _Notes
) -> list[list[DailyStats]]:
    """The groups shown, oldest first, with boundaries fixed by the calendar so that no two
    answers (other windows, other days) can be subtracted to isolate fewer than k carts:

    * only days that are over are shown (a growing day would give away its latest carts);
    * a day with at least k carts is shown alone;
    * a week's other days are shown together, once the week is over, if they add up to k
      and the whole week is still held (a week cut short by retention would shrink).
    """
    weeks: dict[date, list[DailyStats]] = defaultdict(list)
    for row in rows:
        if row.day < today and row.figures["carts"]:
            weeks[row.day - timedelta(days=row.day.weekday())].append(row)
    if any(row.day == today for row in rows):
        notes.suppressed.append({"field": "periods", "reason": "today is shown once it is over"})
    groups: list[list[DailyStats]] = []
    for monday, days in sorted(weeks.items()):
        small = [r for r in days if r.figures["carts"] < K_ANONYMITY]
        groups += [[r] for r in days if r.figures["carts"] >= K_ANONYMITY]
        if not small:
            continue
        whole = monday >= held_from and monday + timedelta(days=7) <= today
        if whole and sum(r.figures["carts"] for r in small) >= K_ANONYMITY:
            groups.append(small)
        else:
            reason = (
                f"the week of {monday.isoformat()}: {len(small)} day(s) with fewer than "
                f"{K_ANONYMITY} carts each, "
                + ("shown together once the week is over and they reach " + str(K_ANONYMITY)
                   if not whole else f"fewer than {K_ANONYMITY} carts together")
            )  # fmt: skip
            notes.suppressed.append({"field": "periods", "reason": reason})
    return sorted(groups, key=lambda g: g[0].day)


class StatsService:
    """``GET /retailer/{id}/stats``: the retailer's daily aggregates, k-anonymous, and drift."""

    def __init__(
        self, *, store: Store, tenants: Tenants, registry: ModelRegistry, clock: Clock
    ) -> None:
        self._store = store
        self._tenants = tenants
        self._registry = registry
        self._clock = clock

    def report(self, retailer_id: str, *, days: int = 30) -> dict[str, Any]:
        retailer = self._tenants.load(retailer_id).retailer
        today = self._clock().astimezone(UTC).date()
        first = today - timedelta(days=days - 1)
        held_from = today - timedelta(days=MAX_DAYS - 1)  # no aggregate is older than this
        rows = self._store.daily_stats(retailer_id=retailer_id, start=held_from, end=today)
        notes = _Notes()
        groups = [g for g in _periods(rows, today, held_from, notes) if g[-1].day >= first]
        periods: list[dict[str, Any]] = []
        for group in groups:
            field = f"periods.{len(periods)}"
            if len(group) > 1:
                reason = f"days with fewer than {K_ANONYMITY} carts each, shown as their week"
                notes.merged.append({"field": field, "reason": reason})
            first_day, last_day = group[0].day.isoformat(), group[-1].day.isoformat()
            period = {"start": first_day, "end": last_day, "days": len(group)}
            periods.append(
                {**period, **_group(tally.total(r.figures for r in group), field, notes)}
            )
        shown = [r for group in groups for r in group]
        total = tally.total(r.figures for r in shown)
        return {
            "retailer_id": retailer_id,
            "k_anonymity": K_ANONYMITY,
            "window": {"start": first.isoformat(), "end": today.isoformat(), "days": days},
            "computed_at": rfc3339(max(r.computed_at for r in rows)) if rows else None,
            "totals": _group(total, "totals", notes) if shown else None,
            "periods": periods,
            "distribution": _distribution(total["distribution"], notes) if shown else [],
            "drift": self._drift(retailer, today, rows),
            "merged": notes.merged,
            "suppressed": notes.suppressed,
        }

    def _drift(self, retailer: Any, today: date, held: Sequence[DailyStats]) -> dict[str, Any]:
        start = today - timedelta(days=DRIFT_DAYS - 1)
        rows = [r for r in held if r.day >= start]
        carts = sum(int(r.figures["carts"]) for r in rows)
        window = {"start": start.isoformat(), "end": today.isoformat(), "days": DRIFT_DAYS}
        version = self._registry.served_version(retailer)

        def unavailable(status: str, reason: str) -> dict[str, Any]:
            model = version.version_id if version is not None else None
            return {"status": status, "reason": reason, "window": window,
                    "model_version": model, "features": None}  # fmt: skip

        if version is None:
            return unavailable("unavailable", "served by the baseline rule: nothing to compare")
        profile = version.profile
        old = "the served model predates training profiles"
        if version.scope == POOLED_SCOPE:  # compared with this retailer's share of its carts
            members = (profile or {}).get("by_retailer")
            if members is None:
                return unavailable("unavailable", old)
            profile = members.get(retailer.retailer_id)
            if profile is None:
                return unavailable(
                    "unavailable", "served by the pooled model, trained without carts of yours"
                )
        elif profile is None:
            return unavailable("unavailable", old)
        if carts < MIN_DRIFT_CARTS:
            return unavailable(
                "insufficient_data", f"fewer than {MIN_DRIFT_CARTS} carts scored in the window"
            )
        recent = drift.merged(r.figures["profile"] for r in rows)
        compared = drift.compare(profile, recent)
        return {**compared, "reason": None, "window": window,
                "model_version": version.version_id, "carts": carts}  # fmt: skip
