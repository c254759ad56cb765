"""What each action did, cart by cart: a retailer's experiments, read from the store.

The recovery models (``uplift.py``) learn from decided carts: what was decided, whether the
cart was treated, and whether it was bought. Each comes from the raw data the service keeps
(14 days):

* the decision, from the prediction log: the cart's first decision that named an action
  (taken, or held out for a control cart), with the served model's P(abandoned) at that
  moment (p₀ = 1 − it), the cart's value, items and device, and the send time decided;
* treated or not, from the retailer's exposure events (intent to treat): a cart is in an
  action's experiment when the retailer reported the decision for it, in the treatment
  group (treated, whether the send was delivered or not) or in the control group;
* bought, from the purchase events: a purchase of the cart within 24 hours of the decision.

Carts decided with no action at all (the treatment group, nothing named) join every action's
data as untreated carts outside the experiment: they say how well p₀ is calibrated on the
decided carts (``uplift.Experiment``). A decision counts for the action only when the policy
in force when it was made gave that action the same channel and discount as the policy in
force now: a re-priced action is a new experiment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

from cartpredict.decisions.policy import NO_ACTION, Action, RecoveryPolicy, in_force
from cartpredict.learning.uplift import Experiment
from cartpredict.storage import Decided, EventStore, PredictionStore, Retailer, RetailerStore

OUTCOME_WINDOW = timedelta(hours=24)


class ResponseStore(EventStore, PredictionStore, RetailerStore, Protocol):
    """What reading a retailer's experiments needs of the store."""


@dataclass(frozen=True)
class _Decided:
    cart_id: str
    at: datetime
    value: float
    items: int
    device: str
    p0: float
    decision: Decided


def experiments(
    store: ResponseStore, retailer: Retailer, policy: RecoveryPolicy, *, start: datetime,
    end: datetime,
) -> dict[str, Experiment]:  # fmt: skip
    """Each action of ``policy`` (the one in force)'s experiment over the carts decided in
    ``[start, end)``, oldest first (module docstring)."""
    rid = retailer.retailer_id
    versions = {
        v: in_force(p, retailer.currency)
        for v, p, _ in store.policy_versions(retailer_id=rid, since=start)
    }
    first: dict[str, _Decided] = {}
    unnamed: dict[str, _Decided] = {}
    for c in store.scored_carts(retailer_id=rid, start=start, end=end):
        d = c.decision
        if d is None or c.cart_id is None or c.cart_id in first:
            continue
        seen = _Decided(
            c.cart_id, c.at, c.cart_value, c.item_count, c.device_type, 1.0 - c.p_abandoned, d
        )
        if d.action != NO_ACTION or d.held_out != NO_ACTION:
            first[c.cart_id] = seen
            unnamed.pop(c.cart_id, None)
        elif d.group == "treatment" and c.cart_id not in unnamed:
            unnamed[c.cart_id] = seen
    exposed: dict[tuple[str, str], str] = {}  # (cart, action) -> group, the first reported
    for e in store.exposures(retailer_id=rid, start=start, end=end + OUTCOME_WINDOW):
        exposed.setdefault((e.cart_id, e.action), e.group)
    bought: dict[str, list[datetime]] = defaultdict(list)
    for cart_id, at in store.purchases(retailer_id=rid, start=start, end=end + OUTCOME_WINDOW):
        bought[cart_id].append(at)
    out = {}
    for action in policy.actions:
        rows: list[tuple[_Decided, bool, bool]] = []  # (decided, treated, randomised)
        for cart_id, seen in first.items():
            d = seen.decision
            named = d.held_out if d.group == "control" else d.action
            group = exposed.get((cart_id, action.name))
            if named != action.name or group is None:
                continue
            if not _same_offer(versions.get(d.policy_version), action):
                continue
            rows.append((seen, group == "treatment", True))
        rows += [(seen, False, False) for seen in unnamed.values()]
        rows.sort(key=lambda r: r[0].at)
        out[action.name] = _experiment(rows, bought)
    return out


def _same_offer(then: RecoveryPolicy | None, action: Action) -> bool:
    was = None if then is None else then.action(action.name)
    return was is not None and (was.channel, was.discount) == (action.channel, action.discount)


def _experiment(
    rows: Sequence[tuple[_Decided, bool, bool]], bought: Mapping[str, Sequence[datetime]]
) -> Experiment:
    def bought_in_window(seen: _Decided) -> bool:
        return any(seen.at < t <= seen.at + OUTCOME_WINDOW for t in bought.get(seen.cart_id, ()))

    return Experiment(
        value=np.array([r[0].value for r in rows], dtype=float),
        items=np.array([r[0].items for r in rows], dtype=int),
        device=np.array([r[0].device for r in rows], dtype=object),
        send_h=np.array([r[0].decision.send_after_hours for r in rows], dtype=float),
        p0=np.array([r[0].p0 for r in rows], dtype=float),
        treated=np.array([r[1] for r in rows], dtype=bool),
        bought=np.array([bought_in_window(r[0]) for r in rows], dtype=bool),
        randomised=np.array([r[2] for r in rows], dtype=bool),
    )
