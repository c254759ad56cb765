"""Decisions on the request path: a named cart's group, action, send time and expected gain.

A few dot products: the served model scores the cart at its inactivity and, for a message
action, at the later send times of ``decisions.gain.SEND_GRID``; an action with a learnt
recovery model (``models/recovery.py``) gets the cart's own recovery rate at each send time
instead of its prior; ``decisions.decide`` does the rest, and ``decisions.exploration`` draws
the explored carts' actions. A cart's first decision that names an action (taken, or held
out for a control cart) is fixed for 24 hours, unless the policy changes: re-scoring the cart
returns it, so a shopper is not offered a discount on one page view and none on the next.
Each worker keeps the fixed decisions it made (at most ``MAX_FIXED``, the oldest forgotten
first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cartpredict.decisions.decide import Decision, as_dict, decide, group_of
from cartpredict.decisions.exploration import exploring
from cartpredict.decisions.gain import gain_at
from cartpredict.decisions.policy import NO_ACTION, Action
from cartpredict.serving.cache import Tenant
from cartpredict.serving.schemas import CartIn

FIXED_FOR_S = 24 * 3600.0
MAX_FIXED = 100_000


class Decider:
    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        # (retailer, cart) -> (decision, fixed until, its answer)
        self._fixed: OrderedDict[tuple[str, str], tuple[Decision, float, dict[str, Any]]] = (
            OrderedDict()
        )
        self._monotonic = monotonic

    def fixed(self, tenant: Tenant, cart: CartIn) -> tuple[Decision, dict[str, Any]] | None:
        """The cart's decision fixed by an earlier one, if it still holds, and its answer
        (``as_dict``'s, made once and shared by every answer of it: never to be changed);
        then the model's inactivity curve is not needed: the caller scores the cart alone."""
        assert cart.cart_id is not None
        key = (cart.retailer_id, cart.cart_id)
        fixed = self._fixed.get(key)
        if fixed is None:
            return None
        decision, until, answer = fixed
        if until <= self._monotonic() or decision.policy_version != tenant.retailer.policy_version:
            del self._fixed[key]
            return None
        if cart.inactivity_hours <= decision.send_after_hours:
            return decision, answer  # (a record, immutable: shared by every answer of it)
        moved = Decision(decision.policy_version, decision.group, decision.action,
                         decision.held_out, cart.inactivity_hours, decision.expected_gain,
                         decision.reason, decision.explored, decision.propensity)  # fmt: skip
        return moved, as_dict(moved)

    def decide(
        self, tenant: Tenant, cart: CartIn, p_abandoned: float, curve: Callable[[float], float]
    ) -> Decision:
        """``p_abandoned``: the served model's answer for the cart as it is now; ``curve``:
        its answer after any hours of inactivity."""
        fixed = self.fixed(tenant, cart)
        if fixed is not None:
            return fixed[0]
        assert cart.cart_id is not None
        key = (cart.retailer_id, cart.cart_id)
        now = self._monotonic()
        retailer = tenant.retailer
        policy = tenant.policy
        inactivity = cart.inactivity_hours

        def p0_at(hours: float) -> float:
            if hours == inactivity:
                return 1.0 - p_abandoned
            return 1.0 - curve(hours)

        learnt = tenant.recovery
        rates = None
        if learnt:
            value, items, device = cart.cart_value, cart.item_count, cart.device_type
            rates = {name: m.rates(value, items, device) for name, m in learnt.items()}
        decision = decide(
            p0_at=p0_at,
            value=cart.cart_value,
            inactivity_hours=inactivity,
            policy=policy,
            policy_version=retailer.policy_version,
            group=group_of(tenant.salt, cart.cart_id, policy.control_share),
            contactable=cart.contactable,
            cutoff=tenant.cutoff,
            rates=rates,
        )
        if policy.actions:
            eligible = [a for a in policy.actions if cart.contactable or not a.needs_consent]

            def gain_of(action: Action, send_h: float) -> float:
                rate_at = None if rates is None else rates.get(action.name)
                return gain_at(p0_at, cart.cart_value, policy.margin, action, inactivity,
                               send_h, rate_at)  # fmt: skip

            decision = exploring(decision, tenant.salt, cart.cart_id, eligible, inactivity,
                                 share=policy.explore_share, gain_of=gain_of)  # fmt: skip
        if decision.action != NO_ACTION or decision.held_out != NO_ACTION:
            self._fixed[key] = (decision, now + FIXED_FOR_S, as_dict(decision))
            if len(self._fixed) > MAX_FIXED:
                self._fixed.popitem(last=False)
        return decision
