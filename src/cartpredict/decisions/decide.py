"""One cart's decision: its group, the action (or none) and why, when, and what it should earn.

``decide`` is a pure function of the cart's model probabilities, the policy and the cart's
group, so every worker gives the same answer for the same input. The order of the reasons:

1. the policy has no actions: ``no_policy``;
2. among the actions the cart may get (only ``onsite`` without consent to messages), the one
   with the highest expected gain at its best send time; none gains: ``no_gain``, or
   ``not_contactable`` when a message action would have gained;
3. its gain below the budget cut-off (``max_action_share``): ``budget``;
4. otherwise ``gain``: the action is taken;

and a control cart gets ``action: none`` with ``reason: control``, keeping in ``held_out`` the
action the steps above chose (``none`` if none) and its expected gain.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from cartpredict.decisions.gain import timed_gain
from cartpredict.decisions.policy import NO_ACTION, Action, RecoveryPolicy
from cartpredict.storage import Decided

DRAWS_KEPT = 65_536
REASONS = ("control", "gain", "no_gain", "not_contactable", "budget", "no_policy")


Decision = Decided  # one record for a decision, as made, answered and logged


def as_dict(d: Decision) -> dict[str, Any]:
    """A decision as the API answers it."""
    return {
        "action": d.action,
        "group": d.group,
        "held_out": d.held_out,
        "send_after_hours": d.send_after_hours,
        "expected_gain": round(d.expected_gain, 6),
        "reason": d.reason,
        "policy_version": d.policy_version,
        "explored": d.explored,
        "propensity": round(d.propensity, 6),
    }


@functools.lru_cache(maxsize=DRAWS_KEPT)
def unit_draw(salt: bytes, cart_id: str) -> float:
    """A uniform number in [0, 1) fixed by (retailer salt, cart id): the same on every call
    and every worker, and unpredictable without the retailer's salt (keyed BLAKE2b, a MAC:
    a third of HMAC-SHA-256's time on the request path). A cart is scored again at every
    page view, and each decision draws two or three of these: the last ``DRAWS_KEPT`` are
    kept (a look-up costs a tenth of a hash)."""
    digest = hashlib.blake2b(cart_id.encode(), key=salt[:64], digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def group_of(salt: bytes, cart_id: str, control_share: float) -> str:
    """Control for a ``control_share`` of carts. Raising the share moves carts from treatment
    to control only (and lowering it, back), never the other way round."""
    return "control" if unit_draw(salt, cart_id) < control_share else "treatment"


def decide(
    *,
    p0_at: Callable[[float], float],
    value: float,
    inactivity_hours: float,
    policy: RecoveryPolicy,
    policy_version: int,
    group: str,
    contactable: bool,
    cutoff: float | None = None,
    rates: Mapping[str, Callable[[float], float]] | None = None,
) -> Decision:
    """``p0_at(h)``: P(purchase in 24 h without action) at ``h`` hours of inactivity;
    ``cutoff``: the budget's least expected gain (None: no budget); ``rates``: per action
    name, the cart's learnt recovery rate by send time (an action not named: its prior)."""
    now = inactivity_hours
    # (action, send after hours, gain): the best the cart may get, and the best barred from it
    chosen: tuple[Action, float, float] | None = None
    barred: tuple[Action, float, float] | None = None
    reason = "no_policy"
    if policy.actions:
        for action in policy.actions:
            learnt = None if rates is None else rates.get(action.name)
            when, gain = timed_gain(p0_at, value, policy.margin, action, now, learnt)
            if contactable or not action.needs_consent:
                if chosen is None or gain > chosen[2]:
                    chosen = (action, when, gain)
            elif barred is None or gain > barred[2]:
                barred = (action, when, gain)
        if chosen is None or chosen[2] <= 0.0:
            reason = "not_contactable" if barred is not None and barred[2] > 0 else "no_gain"
            chosen = None
        elif cutoff is not None and chosen[2] < cutoff:
            reason = "budget"
        else:
            reason = "gain"
    acting = chosen if reason == "gain" else None
    gain = 0.0 if chosen is None else chosen[2]
    when = now if acting is None else acting[1]
    if group == "control":
        held = NO_ACTION if acting is None else acting[0].name
        return Decision(policy_version=policy_version, group=group, action=NO_ACTION,
                        held_out=held, send_after_hours=when,
                        expected_gain=gain if acting else 0.0, reason="control")  # fmt: skip
    name = NO_ACTION if acting is None else acting[0].name
    return Decision(policy_version=policy_version, group=group, action=name, held_out=NO_ACTION,
                    send_after_hours=when, expected_gain=gain, reason=reason)  # fmt: skip
