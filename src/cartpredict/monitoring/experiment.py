"""The experiment report: what each action added over its control group, in purchases and margin.

Its unit is the exposure event: the retailer's record of what it did with a decision, for every
decided cart it took into account, whether the send failed or the cart was bought first
(intent to treat). Per action, the treatment group holds the carts exposed to it, the control
group the carts that held it out. Each is compared over the 24 h after the decision:

* *purchased*: a purchase of the cart in (``at``, ``at`` + 24 h];
* *revenue*: the cart's last value before that purchase (the value the prediction logged, when
  no cart update of it is held);
* *margin*: revenue × the policy's margin, less the action's discount on a treated cart's
  purchase; a treated cart the action did not reach (``delivered: false``) is charged neither
  the discount nor the action's cost;
* the policy is the version in force at the decision (``at``).

A cart counts once per action and day (its first exposure that day). The figures are part of
the day's stats row (``rollup.py``), so they follow the stats' rules: recomputed until final,
kept 90 days, and shown only in the stats' calendar groups once final (``stats.py``). Within a
group an action is shown only when each arm has at least k carts and its purchased and
unpurchased carts are each 0 or at least k; otherwise the group is left out of that action
whole, so the difference of two answers is a sum of whole groups: 0 or at least k carts per
count. The uplift is rate_T − rate_C with Newcombe's hybrid score interval
(``decisions/experiment.py``) over the groups shown.

Explored carts (their action drawn at random, ``decisions/exploration.py``; a control cart
holds out its explored action) are counted in the arms like every other, and apart as well
(``explored_treatment``, ``explored_control``): the report shows them against their own
control carts beside the others (*targeted*), in the groups where both parts pass the rule
above (so that neither can be had as the difference of two figures shown), and what exploring
cost: the margin the explored treated carts would have added beyond what they did, had they
added as much per cart as the targeted ones.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from cartpredict.core.clock import Clock, rfc3339
from cartpredict.decisions.experiment import Arm, compare
from cartpredict.decisions.policy import RecoveryPolicy, in_force
from cartpredict.monitoring.outcome import OUTCOME_WINDOW
from cartpredict.monitoring.stats import MAX_DAYS, Notes, Window
from cartpredict.privacy.anonymity import K_ANONYMITY, suppress_small
from cartpredict.storage import DailyStats, Exposure, PredictionStore, Retailer, RetailerStore

KEY = "experiment"  # where a day's stats row keeps these figures
ARMS = ("treatment", "control")
EXPLORED = "explored_"  # the arms' figures of the explored carts alone: explored_treatment, ...
FIELDS = ("carts", "purchased", "revenue", "margin", "cost", "margin_sq")

PolicyVersions = Sequence[tuple[int, RecoveryPolicy, datetime]]  # (version, policy, from)


def day_figures(
    exposures: Sequence[Exposure],
    purchases: Mapping[str, Sequence[datetime]],
    values: Mapping[str, Sequence[tuple[datetime, float]]],
    logged_values: Mapping[str, float],
    policies: PolicyVersions,
    explored: Collection[str] = (),
) -> dict[str, dict[str, dict[str, float]]]:
    """One day's figures, ``{action: {arm: {carts, purchased, revenue, margin, cost}}}``, from
    the day's ``exposures`` (oldest first); ``purchases`` and ``values`` (cart updates' times
    and values, oldest first) by cart; ``logged_values``: each cart's value as predicted;
    ``policies``: the versions in force over the day and before (oldest first); ``explored``:
    the ids of the carts whose decision was explored, also counted apart (``EXPLORED`` +
    arm)."""
    figures: dict[str, dict[str, dict[str, float]]] = {}
    seen: set[tuple[str, str]] = set()
    for exposure in exposures:
        key = (exposure.cart_id, exposure.action)
        if key in seen:
            continue
        seen.add(key)
        policy = _in_force(policies, exposure.at)
        action = policy.action(exposure.action) if policy is not None else None
        reached = exposure.group == "treatment" and exposure.delivered is not False
        discount = action.discount if action is not None and reached else 0.0
        margin = policy.margin if policy is not None else 0.0
        arms = figures.setdefault(exposure.action, {a: dict.fromkeys(FIELDS, 0.0) for a in ARMS})
        into = [arms[exposure.group]]
        if exposure.cart_id in explored:
            into.append(arms.setdefault(EXPLORED + exposure.group, dict.fromkeys(FIELDS, 0.0)))
        bought = _purchase(exposure, purchases.get(exposure.cart_id, ()))
        value = None if bought is None else _value_before(values.get(exposure.cart_id, ()), bought)
        if bought is not None and value is None:
            value = logged_values.get(exposure.cart_id, 0.0)
        for arm in into:
            arm["carts"] += 1
            if reached and action is not None:
                arm["cost"] += action.cost
            if value is not None:
                arm["purchased"] += 1
                arm["revenue"] += value
                arm["margin"] += value * (margin - discount)
                arm["margin_sq"] += (value * (margin - discount)) ** 2
    return figures


def _purchase(exposure: Exposure, purchases: Iterable[datetime]) -> datetime | None:
    end = exposure.at + OUTCOME_WINDOW
    return min((at for at in purchases if exposure.at < at <= end), default=None)


def _value_before(updates: Sequence[tuple[datetime, float]], at: datetime) -> float | None:
    before = [value for when, value in updates if when <= at]
    return before[-1] if before else None


def _in_force(policies: PolicyVersions, at: datetime) -> RecoveryPolicy | None:
    current = None
    for _, policy, since in policies:
        if since <= at or current is None:
            current = policy
    return current


def policy_versions(
    store: RetailerStore, retailer: Retailer, *, since: datetime
) -> list[tuple[int, RecoveryPolicy, datetime]]:
    """The retailer's policies in force at or after ``since``, oldest first."""
    versions = store.policy_versions(retailer_id=retailer.retailer_id, since=since)
    return [(v, in_force(p, retailer.currency), at) for v, p, at in versions]


# --- what a retailer sees ---------------------------------------------------------------------


def _summed(
    days: Iterable[Mapping[str, Any]],
) -> dict[str, dict[str, dict[str, float | None]]]:
    """A group's figures, its days' summed (a field some day lacks: None)."""
    total: dict[str, dict[str, dict[str, float | None]]] = {}
    for figures in days:
        for name, arms in figures.get(KEY, {}).items():
            into = total.setdefault(name, {a: _zeros() for a in ARMS})
            for arm, counts in arms.items():
                summed = into.setdefault(arm, _zeros())
                for field in FIELDS:
                    found = counts.get(field)  # (a day rolled up before margin_sq was kept)
                    before = summed[field]
                    summed[field] = None if found is None or before is None else before + found
    return total


def _zeros() -> dict[str, float | None]:
    return dict.fromkeys(FIELDS, 0.0)


def _apart(arms: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A group's arms split into its explored carts and the others (targeted)."""
    explored = {a: arms.get(EXPLORED + a) or dict.fromkeys(FIELDS, 0.0) for a in ARMS}
    targeted = {a: {f: _minus(arms[a][f], explored[a][f]) for f in FIELDS} for a in ARMS}
    return explored, targeted


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _shown(arms: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why an action's figures of one group may not be shown (None: they may)."""
    k = K_ANONYMITY
    for arm in ARMS:
        if arm not in arms:
            return f"the {arm} group has fewer than {k} carts"
        carts, bought = int(arms[arm]["carts"]), int(arms[arm]["purchased"])
        if carts < k:
            return f"the {arm} group has fewer than {k} carts"
        if None in suppress_small((bought, carts - bought), k):
            return f"the {arm} group's purchased or unpurchased carts number 1 to {k - 1}"
    return None


def _arm(counts: Mapping[str, Any]) -> Arm:
    return Arm(
        carts=int(counts["carts"]),
        purchased=int(counts["purchased"]),
        revenue=counts["revenue"],
        margin=counts["margin"],
        cost=counts["cost"],
        margin_sq=counts.get("margin_sq"),
    )


def _arm_out(arm: Arm) -> dict[str, Any]:
    return {
        "carts": arm.carts,
        "purchased": arm.purchased,
        "rate": None if arm.rate is None else round(arm.rate, 4),
        "revenue": round(arm.revenue, 2),
        "margin": round(arm.margin, 2),
        "cost": round(arm.cost, 2),
    }


def _action_out(totals: Mapping[str, Arm] | None, periods: list[dict[str, str]]) -> dict[str, Any]:
    if totals is None or not all(arm in totals for arm in ARMS):
        return {"treatment": None, "control": None, "uplift": None, "periods": [],
                "incremental_purchases": None, "incremental_margin": None,
                "incremental_margin_ci95": None}  # fmt: skip
    found = compare(totals["treatment"], totals["control"])
    return {
        "treatment": _arm_out(totals["treatment"]),
        "control": _arm_out(totals["control"]),
        "uplift": {
            "estimate": round(found.uplift, 4),
            "ci95": [round(found.ci95[0], 4), round(found.ci95[1], 4)],
        },
        "incremental_purchases": round(found.incremental_purchases, 2),
        "incremental_margin": round(found.incremental_margin, 2),
        "incremental_margin_ci95": None
        if found.margin_ci95 is None
        else [round(found.margin_ci95[0], 2), round(found.margin_ci95[1], 2)],
        "periods": periods,
    }


class ExperimentService:
    """``GET /retailer/{id}/experiment``: per action, treatment against control over the
    stats' final calendar groups of the window (module docstring)."""

    def __init__(
        self,
        *,
        store: PredictionStore,
        retailer: Callable[[str], Retailer],
        policy: Callable[[Retailer], RecoveryPolicy],
        clock: Clock,
        held_days: int = MAX_DAYS,
    ) -> None:
        self._store = store
        self._retailer = retailer  # the retailer's configuration; RetailerNotFound if none
        self._policy = policy
        self._clock = clock
        self._held_days = held_days

    def report(self, retailer_id: str, *, days: int = 30) -> dict[str, Any]:
        retailer = self._retailer(retailer_id)
        notes = Notes()
        window = Window.read(self._store, retailer_id, days=days, now=self._clock(),
                             held_days=self._held_days, notes=notes)  # fmt: skip
        groups, first, today = window.groups, window.first, window.today
        sums: dict[str, dict[str, Arm]] = {}
        shown_in: dict[str, list[dict[str, str]]] = defaultdict(list)
        parts: dict[str, dict[str, dict[str, Arm]]] = defaultdict(dict)  # explored | targeted
        parts_in: dict[str, list[dict[str, str]]] = defaultdict(list)
        names = [a.name for a in self._policy(retailer).actions]
        for group in groups:
            if len(group) > 1:
                reason = f"days with fewer than {K_ANONYMITY} carts each, shown as their week"
                notes.merged.append({"field": _span(group), "reason": reason})
            for name, arms in _summed(r.figures for r in group).items():
                if name not in names:
                    names.append(name)
                why = _shown(arms)
                if why is not None:
                    notes.left_out(f"actions.{name}", f"{_span(group)}: {why}")
                    continue
                span = {"start": group[0].day.isoformat(), "end": group[-1].day.isoformat()}
                shown_in[name].append(span)
                into = sums.setdefault(name, {})
                for arm in ARMS:
                    into[arm] = _plus(into.get(arm), _arm(arms[arm]))
                explored, targeted = _apart(arms)
                why = _shown(explored) or _shown(targeted)
                if why is not None:  # both shown or neither: their difference is the total
                    if any(explored[a]["carts"] for a in ARMS):
                        notes.left_out(f"actions.{name}.explored", f"{_span(group)}: {why}")
                    continue
                parts_in[name].append(span)
                for part, figures in (("explored", explored), ("targeted", targeted)):
                    into = parts[name].setdefault(part, {})
                    for arm in ARMS:
                        into[arm] = _plus(into.get(arm), _arm(figures[arm]))
        for name in names:
            if name not in sums:
                notes.left_out(f"actions.{name}", "no period shows both groups with at least "
                               f"{K_ANONYMITY} carts each")  # fmt: skip
        computed = [r.computed_at for group in groups for r in group]
        return {
            "retailer_id": retailer_id,
            "k_anonymity": K_ANONYMITY,
            "window": {"start": first.isoformat(), "end": today.isoformat(), "days": days},
            "computed_at": rfc3339(max(computed)) if computed else None,
            "actions": {
                name: _action_out(sums.get(name), shown_in[name])
                | {"exploration": _exploration(parts.get(name, {}), parts_in[name])}
                for name in names
            },
            "merged": notes.merged,
            "suppressed": notes.suppressed,
        }


def _exploration(parts: Mapping[str, Mapping[str, Arm]], periods: list[dict[str, str]]) -> Any:
    """The explored carts apart from the others (the targeted ones), each against its own
    control carts, and what exploring cost: had the explored treated carts added as much
    margin per cart as the targeted ones did, the margin they would have added beyond what
    they did (negative: exploring paid). None where no period shows both parts."""
    if not periods or not all(p in parts for p in ("explored", "targeted")):
        return None
    out = {p: _action_out(parts[p], periods) for p in ("explored", "targeted")}
    explored, targeted = parts["explored"]["treatment"].carts, parts["targeted"]["treatment"].carts
    per_cart = {
        p: out[p]["incremental_margin"] / n
        for p, n in (("explored", explored), ("targeted", targeted))
    }
    cost = (per_cart["targeted"] - per_cart["explored"]) * explored
    return {**out, "cost": round(cost, 2), "periods": periods}


def _plus(a: Arm | None, b: Arm) -> Arm:
    if a is None:
        return b
    squares = None if a.margin_sq is None or b.margin_sq is None else a.margin_sq + b.margin_sq
    return Arm(a.carts + b.carts, a.purchased + b.purchased, a.revenue + b.revenue,
               a.margin + b.margin, a.cost + b.cost, squares)  # fmt: skip


def _span(group: Sequence[DailyStats]) -> str:
    first, last = group[0].day.isoformat(), group[-1].day.isoformat()
    return first if first == last else f"{first} to {last}"
