"""What a retailer may see of its daily aggregates (``rollup.py``): k-anonymity.

Every count shown covers 0 or at least ``K_ANONYMITY`` carts, and so does
the difference of any two answers over nested sets of groups (two windows at one moment, one
window at two moments as long as nothing left it), so that subtraction cannot single out fewer:

* groups are fixed by the calendar (``calendar_groups``): a day with at least k carts alone,
  the other days of a week together; all windows end today, so two of them differ by whole
  groups;
* a group is shown only once final, so what happens later (a new prediction, a purchase, a
  pending outcome resolved) never moves a figure shown; today never shows;
* within a group, a count of 1 to k-1 is left out, and so is whatever would give it away (the
  rest of a split of the group's carts, see ``anonymity.suppress_small``); totals and the
  distribution (fixed bins, never merged) are sums of what is shown of each group;
* a ratio is taken over groups whose parts are all shown, and only over at least k carts;
* drift is taken over the shown groups of one calendar week, once the whole week is final, with
  the same rule applied to the week's histograms;
* the bands of P(abandoned) with their outcomes, and the decisions by action, follow
  ``breakdown.py``'s rules within each group, and are summed over groups as the rest.

The response lists every merge and every figure left out, and why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cartpredict.core.clock import Clock, rfc3339
from cartpredict.models.registry import ModelRegistry
from cartpredict.monitoring import breakdown, drift, tally
from cartpredict.monitoring.outcome import FINAL_AFTER
from cartpredict.monitoring.tally import P_BINS
from cartpredict.privacy.anonymity import K_ANONYMITY, kept, suppress_small
from cartpredict.storage import (
    POOLED_SCOPE,
    DailyStats,
    PredictionStore,
    Retailer,
)

DRIFT_DAYS = 7
MIN_DRIFT_CARTS = 200  # below this, PSI says more about chance than about drift
MAX_DAYS = 90


# --- what a retailer sees: final groups, each count 0 or at least k ----------------------------


@dataclass(frozen=True)
class _Shown:
    """What a retailer may see of one group of carts, or of several groups summed.

    Of a group, every count is 0 or at least k, and so is what each split of its carts leaves
    out (``suppress_small``); a sum over groups adds only such counts. The difference of two
    sums over nested sets of groups is then a sum of such counts as well: 0 or at least k.
    ``None``: left out of every group summed; ``partial`` names what was left out of some.
    """

    carts: int
    predictions: int
    p_abandoned_sum: float
    flagged: int | None  # carts predicted abandoned
    flagged_among: int  # the carts of the groups ``flagged`` is summed over
    resolved: int | None
    pending: int | None
    without_cart_id: int | None
    cells: tuple[int, ...] | None  # tp, fp, fn, tn, where every cell of the group is kept
    distribution: tuple[int, ...]  # P_BINS bins; a bin left out of a group counts 0 there
    partial: frozenset[str]


def _shown(figures: Mapping[str, Any]) -> _Shown:
    """What may be shown of one group (its ``figures`` summed over its days)."""
    k = K_ANONYMITY
    o = figures["outcomes"]
    carts, flagged = int(figures["carts"]), int(figures["predicted_abandoned"])
    tp, fp, fn, tn = (int(o[key]) for key in ("tp", "fp", "fn", "tn"))
    shown_flagged = suppress_small((flagged, carts - flagged), k)[0]
    resolved, pending, without = suppress_small(
        (tp + fp + fn + tn, int(o["pending"]), int(o["without_cart_id"])), k
    )
    # With ``resolved`` and ``predicted_abandoned``, the three realised rates give away every
    # cell of decision x outcome, the unresolved carts' decisions included: all or none.
    cells = (tp, fp, fn, tn, flagged - tp - fp, carts - flagged - fn - tn)
    whole = all(kept(n, k) for n in cells)
    distribution = [n or 0 for n in suppress_small(figures["distribution"], k)]
    partial = {
        name
        for name, value in (("flagged", shown_flagged), ("resolved", resolved),
                            ("pending", pending), ("without_cart_id", without))
        if value is None
    }  # fmt: skip
    partial |= {"cells"} if not whole else set()
    partial |= {"distribution"} if list(distribution) != list(figures["distribution"]) else set()
    return _Shown(
        carts=carts,
        predictions=int(figures["predictions"]),
        p_abandoned_sum=float(figures["p_abandoned_sum"]),
        flagged=shown_flagged,
        flagged_among=carts if shown_flagged is not None else 0,
        resolved=resolved,
        pending=pending,
        without_cart_id=without,
        cells=(tp, fp, fn, tn) if whole else None,
        distribution=tuple(distribution),
        partial=frozenset(partial),
    )


def _sum(groups: Sequence[_Shown]) -> _Shown:
    """Several groups as one: each count summed over the groups where it is shown."""

    def total(values: Iterable[int | None]) -> int | None:
        present = [v for v in values if v is not None]
        return sum(present) if present else None

    cells = [g.cells for g in groups if g.cells is not None]
    bins = zip(*(g.distribution for g in groups), strict=True)
    return _Shown(
        carts=sum(g.carts for g in groups),
        predictions=sum(g.predictions for g in groups),
        p_abandoned_sum=sum(g.p_abandoned_sum for g in groups),
        flagged=total(g.flagged for g in groups),
        flagged_among=sum(g.flagged_among for g in groups),
        resolved=total(g.resolved for g in groups),
        pending=total(g.pending for g in groups),
        without_cart_id=total(g.without_cart_id for g in groups),
        cells=tuple(sum(c) for c in zip(*cells, strict=True)) if cells else None,
        distribution=tuple(sum(counts) for counts in bins),
        partial=frozenset().union(*(g.partial for g in groups)),
    )


class Notes:
    """The response's ``merged`` and ``suppressed`` lists."""

    def __init__(self) -> None:
        self.merged: list[dict[str, str]] = []
        self.suppressed: list[dict[str, str]] = []

    def left_out(self, field: str, reason: str) -> None:
        self.suppressed.append({"field": field, "reason": reason})

    def count(self, shown: _Shown, name: str, field: str) -> int | None:
        """A count of ``shown``, or None, saying what was left out of it."""
        value: int | None = getattr(shown, name)
        if value is None:
            self.left_out(field, f"it, or the rest of the carts, would cover fewer than "
                          f"{K_ANONYMITY} carts")  # fmt: skip
        elif name in shown.partial:
            self.left_out(field, f"sums the periods where it is shown (in the others it, or "
                          f"the rest of the carts, covers fewer than {K_ANONYMITY})")  # fmt: skip
        return value

    def ratio(self, field: str, hits: int, among: int, what: str) -> float | None:
        if among >= K_ANONYMITY:
            return round(hits / among, 4)
        self.left_out(field, f"fewer than {K_ANONYMITY} carts {what}")
        return None


def _named(shown: _Shown) -> bool:
    """Whether the group's carts with an id are shown apart from those without."""
    return None not in (shown.resolved, shown.pending, shown.without_cart_id)


def _group(shown: _Shown, field: str, notes: Notes) -> dict[str, Any]:
    """What a retailer sees of a group, or of the sum of several (``totals``)."""
    flagged = notes.count(shown, "flagged", f"{field}.predicted_abandoned")
    share = None if flagged is None else round(flagged / shown.flagged_among, 4)
    if flagged is None or "flagged" in shown.partial:
        notes.left_out(f"{field}.predicted_abandoned_share", "as predicted_abandoned")
    return {
        "carts": shown.carts,
        "predictions": shown.predictions,
        "predicted_abandoned": flagged,
        "predicted_abandoned_share": share,
        "mean_abandonment_probability": round(shown.p_abandoned_sum / shown.carts, 4),
        "outcomes": {
            "resolved": notes.count(shown, "resolved", f"{field}.outcomes.resolved"),
            "pending": notes.count(shown, "pending", f"{field}.outcomes.pending"),
            "without_cart_id": notes.count(
                shown, "without_cart_id", f"{field}.outcomes.without_cart_id"
            ),
            **_rates(shown, f"{field}.outcomes", notes),
        },
    }


def _rates(shown: _Shown, field: str, notes: Notes) -> dict[str, float | None]:
    """Realised abandonment rate, precision and recall, over the groups where every cell of
    decision x outcome is shown."""
    names = ("abandonment_rate", "precision", "recall")
    if shown.cells is None:
        reason = (f"some outcome of the carts predicted abandoned, or not, covers fewer than "
                  f"{K_ANONYMITY} carts")  # fmt: skip
        for name in names:
            notes.left_out(f"{field}.{name}", reason)
        return dict.fromkeys(names)
    if "cells" in shown.partial:
        notes.left_out(field, "realised rates are taken over the periods where no outcome of "
                       f"the carts predicted abandoned, or not, covers 1 to {K_ANONYMITY - 1} "
                       "carts")  # fmt: skip
    tp, fp, fn, tn = shown.cells
    return {
        "abandonment_rate": notes.ratio(
            f"{field}.abandonment_rate", tp + fn, tp + fp + fn + tn, "with a known outcome"
        ),
        "precision": notes.ratio(
            f"{field}.precision", tp, tp + fp, "predicted abandoned with a known outcome"
        ),
        "recall": notes.ratio(f"{field}.recall", tp, tp + fn, "abandoned"),
    }


def _distribution(shown: _Shown, notes: Notes) -> list[dict[str, Any]]:
    """Fixed bins of P(abandoned); a bin is never merged with another (merging depends on
    what else is in the window, and so would the figures)."""
    if "distribution" in shown.partial:
        notes.left_out("distribution", f"bins holding 1 to {K_ANONYMITY - 1} carts of a period "
                       "(or giving such a bin away) are left out of the sums")  # fmt: skip
    return [
        {"lower": i / P_BINS, "upper": (i + 1) / P_BINS, "carts": n}
        for i, n in enumerate(shown.distribution)
        if n
    ]


def _newest_final(now: datetime) -> date:
    """The newest day that may be final at ``now``: it ended ``FINAL_AFTER`` ago."""
    return (now.astimezone(UTC) - FINAL_AFTER).date() - timedelta(days=1)


def calendar_groups(
    rows: Sequence[DailyStats], *, now: datetime, first: date, held_from: date, notes: Notes
) -> list[list[DailyStats]]:
    """The groups shown, oldest first. Their boundaries are fixed by the calendar and their
    figures by time, so that no two answers (other windows, other moments) can be subtracted
    to isolate fewer than k carts:

    * a day is shown only once final (its last outcome in, late events arrived): its figures
      never change afterwards, whatever is scored or bought later;
    * a final day with at least k carts is shown alone;
    * a week's other days are shown together once every day of the week is final, if they add
      up to k and the whole week is still held (a week cut short by retention would shrink).
    """
    newest = _newest_final(now)
    wait = f"{_span(FINAL_AFTER)} after it ends (every outcome in, late events arrived)"
    notes.left_out("periods", f"a day is shown once final, {wait}: its figures never change")
    weeks: dict[date, list[DailyStats]] = defaultdict(list)
    for row in rows:
        weeks[row.day - timedelta(days=row.day.weekday())].append(row)
    groups: list[list[DailyStats]] = []
    for monday, days in sorted(weeks.items()):
        final = [r for r in days if r.final and r.figures["carts"]]
        groups += [[r] for r in final if r.figures["carts"] >= K_ANONYMITY]
        small = [r for r in final if r.figures["carts"] < K_ANONYMITY]
        sunday = monday + timedelta(days=6)
        if not small:
            continue
        over = sunday <= newest and all(r.final for r in days)
        held = monday >= held_from
        if over and held and sum(r.figures["carts"] for r in small) >= K_ANONYMITY:
            groups.append(small)
        elif sunday >= first:
            why = (
                "shown together once every day of the week is final" if not over
                else "no longer held whole" if not held
                else f"fewer than {K_ANONYMITY} carts together"
            )  # fmt: skip
            notes.left_out("periods", f"the week of {monday.isoformat()}: days with fewer than "
                           f"{K_ANONYMITY} carts each, {why}")  # fmt: skip
    return sorted(groups, key=lambda g: g[0].day)


def _span(delta: timedelta) -> str:
    return f"{delta.days} days" if delta.days > 1 else f"{delta.total_seconds() / 3600:g} h"


@dataclass(frozen=True)
class Window:
    """The daily rows a report over the last ``days`` reads, and their calendar groups."""

    first: date
    today: date
    rows: Sequence[DailyStats]  # every row still held
    every: list[list[DailyStats]]  # every group that may be shown (drift reads older ones)
    groups: list[list[DailyStats]]  # those that end in the window

    @classmethod
    def read(
        cls,
        store: PredictionStore,
        retailer_id: str,
        *,
        days: int,
        now: datetime,
        held_days: int,
        notes: Notes,
    ) -> Window:
        today = now.astimezone(UTC).date()
        first = today - timedelta(days=days - 1)
        held_from = today - timedelta(days=min(held_days, MAX_DAYS) - 1)
        rows = store.daily_stats(retailer_id=retailer_id, start=held_from, end=today)
        every = calendar_groups(rows, now=now, first=first, held_from=held_from, notes=notes)
        return cls(first, today, rows, every, [g for g in every if g[-1].day >= first])


class StatsService:
    """``GET /retailer/{id}/stats``: the retailer's daily aggregates, k-anonymous, and drift.

    Every figure comes from final, calendar-fixed groups (``calendar_groups``), and every count
    of a group is 0 or at least k (``_shown``); totals and the distribution are sums over
    groups, drift is over the groups of one calendar week. Two windows at one moment differ by whole
    groups, and so do two moments for one window as far as their groups are nested: any such
    difference is 0 or at least k carts.
    """

    def __init__(
        self,
        *,
        store: PredictionStore,
        retailer: Callable[[str], Retailer],
        registry: ModelRegistry,
        clock: Clock,
        held_days: int = MAX_DAYS,
    ) -> None:
        self._store = store
        self._retailer = retailer  # the retailer's configuration; RetailerNotFound if none
        self._registry = registry
        self._clock = clock
        self._held_days = held_days  # aggregates older than this may be gone: never shown

    def report(self, retailer_id: str, *, days: int = 30) -> dict[str, Any]:
        retailer = self._retailer(retailer_id)
        now = self._clock()
        notes = Notes()
        window = Window.read(self._store, retailer_id, days=days, now=now,
                             held_days=self._held_days, notes=notes)  # fmt: skip
        rows, every, groups = window.rows, window.every, window.groups
        first, today = window.first, window.today
        tallied = [tally.total(r.figures for r in group) for group in groups]
        shown = [_shown(figures) for figures in tallied]
        broken = [
            breakdown.group((r.figures for r in group), figures["distribution"], named=_named(s))
            for group, figures, s in zip(groups, tallied, shown, strict=True)
        ]
        periods: list[dict[str, Any]] = []
        for group, figures in zip(groups, shown, strict=True):
            field = f"periods.{len(periods)}"
            if len(group) > 1:
                reason = f"days with fewer than {K_ANONYMITY} carts each, shown as their week"
                notes.merged.append({"field": field, "reason": reason})
            first_day, last_day = group[0].day.isoformat(), group[-1].day.isoformat()
            period = {"start": first_day, "end": last_day, "days": len(group)}
            periods.append({**period, **_group(figures, field, notes)})
        total = _sum(shown)
        computed = [r.computed_at for group in groups for r in group]
        return {
            "retailer_id": retailer_id,
            "k_anonymity": K_ANONYMITY,
            "window": {"start": first.isoformat(), "end": today.isoformat(), "days": days},
            "computed_at": rfc3339(max(computed)) if computed else None,
            "totals": _group(total, "totals", notes) if shown else None,
            "periods": periods,
            "distribution": _distribution(total, notes) if shown else [],
            "bands": breakdown.bands_out(broken, notes) if shown else [],
            "decisions": breakdown.decisions_out(broken, notes),
            "drift": self._drift(retailer, rows, every, now, notes),
            "merged": notes.merged,
            "suppressed": notes.suppressed,
        }

    def _drift(
        self,
        retailer: Retailer,
        rows: Sequence[DailyStats],
        groups: Sequence[list[DailyStats]],
        now: datetime,
        notes: Notes,
    ) -> dict[str, Any]:
        """PSI of the carts of the shown groups of one calendar week (``_drift_week``).

        A sliding window would let two answers differ by a day at each end, and a run of them
        telescope down to single days; weeks are disjoint and fixed by the calendar, and a
        week's groups are final, so two answers show the same figures or those of two weeks
        that share no cart. The week's histograms are summed first, then each bin of 1 to k-1
        carts (or giving such a bin away) is left out, of the training side's shares too.
        """
        start, end = _drift_week(rows, now)
        window = {"start": start.isoformat(), "end": end.isoformat(), "days": DRIFT_DAYS}
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
        week = tally.total(r.figures for g in groups if start <= g[-1].day <= end for r in g)
        if week["carts"] < MIN_DRIFT_CARTS:
            return unavailable(
                "insufficient_data", f"fewer than {MIN_DRIFT_CARTS} carts scored in the window"
            )
        recent = {
            name: suppress_small(counts, K_ANONYMITY) for name, counts in week["profile"].items()
        }
        if any(None in counts for counts in recent.values()):
            reason = f"histogram bins holding 1 to {K_ANONYMITY - 1} carts (or giving such a bin "
            notes.left_out(
                "drift.features", reason + "away) are left out, of the training side too"
            )
        compared = drift.compare(profile, recent)
        return {**compared, "reason": None, "window": window,
                "model_version": version.version_id, "carts": week["carts"]}  # fmt: skip


def _drift_week(rows: Sequence[DailyStats], now: datetime) -> tuple[date, date]:
    """Monday and Sunday of the newest calendar week whose every day is final."""
    newest = _newest_final(now)
    sunday = newest - timedelta(days=(newest.weekday() + 1) % 7)
    waiting = [r.day for r in rows if not r.final and r.day <= sunday]
    while any(sunday - timedelta(days=6) <= day <= sunday for day in waiting):
        sunday -= timedelta(days=7)
    return sunday - timedelta(days=6), sunday
