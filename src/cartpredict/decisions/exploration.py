"""Exploration: a share of carts gets an action at random, so that what each action does is
learnt on every kind of cart, not only where the priors say it pays.

A policy that only acts where its priors expect a gain never sees what an action does
elsewhere: a prior too low for mobile carts keeps the pop-up off every mobile cart, and no
amount of data corrects it. So a share of carts (``DEFAULT_EXPLORE_SHARE``, 10 %) is
*explored*: an action the cart may get and its send time are drawn uniformly among every
such pair (a message may be sent now or at the later points of the send grid, an on-site
action only now), whatever the expected gain. Drawing pairs rather than actions explores
send times as much as actions (what learns the best time to remind), and keeps the costly
random discounts to a share of the explored carts. Both draws are fixed by (retailer salt, cart id),
as the group is (``decide.group_of``), and independent of it: the control group holds out
explored actions too, so the experiment report can compare explored carts with their own
control carts.

Every decision records the probability with which its action and send time were chosen
(``propensity``), for off-policy evaluation: for the action ``a`` at ``h`` the policy would
have taken (``greedy``)::

    P(a, h) = share / n_pairs + (1 − share) · [(a, h) = greedy]

where ``n_pairs`` counts the (action, send time) pairs the cart may get.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from cartpredict.decisions.decide import unit_draw
from cartpredict.decisions.gain import SEND_GRID
from cartpredict.decisions.policy import Action

DEFAULT_EXPLORE_SHARE = 0.10


class Explored(NamedTuple):
    action: Action
    send_after_hours: float
    propensity: float  # of this action at this time, under exploration and the greedy choice


def send_times(action: Action, now: float) -> tuple[float, ...]:
    """The send times an action may have, seen at ``now`` hours of inactivity."""
    if not action.needs_consent:
        return (now,)
    return (now, *(h for h in SEND_GRID if h > now))


def is_explored(salt: bytes, cart_id: str, share: float) -> bool:
    return share > 0.0 and unit_draw(salt, f"explore/{cart_id}") < share


def explore(
    salt: bytes,
    cart_id: str,
    actions: Sequence[Action],
    now: float,
    *,
    share: float,
    greedy: tuple[str, float] | None,
) -> Explored | None:
    """The cart's explored action and send time, or None when the cart is not explored (or
    may get no action). ``actions``: those the cart may get; ``greedy``: the (action, send
    time) the policy would have chosen, None for no action."""
    if not actions or not is_explored(salt, cart_id, share):
        return None
    pairs = [(a, h) for a in actions for h in send_times(a, now)]
    u = unit_draw(salt, f"explore-choice/{cart_id}")
    action, h = pairs[min(int(u * len(pairs)), len(pairs) - 1)]
    return Explored(action, h, propensity(actions, now, (action.name, h), share, greedy))


def propensity(
    actions: Sequence[Action],
    now: float,
    chosen: tuple[str, float],
    share: float,
    greedy: tuple[str, float] | None,
) -> float:
    """P(the decision names ``chosen``) under exploration at ``share`` (module docstring)."""
    pairs = [(a.name, h) for a in actions for h in send_times(a, now)]
    explored = share / len(pairs) if chosen in pairs else 0.0
    return explored + (1.0 - share) * (1.0 if greedy == chosen else 0.0)
