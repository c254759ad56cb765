"""Exploration: a share of carts gets an action at random, so that what each action does is
learnt on every kind of cart, not only where the priors say it pays.

A policy that only acts where its priors expect a gain never sees what an action does
elsewhere: a prior too low for mobile carts keeps the pop-up off every mobile cart, and no
amount of data corrects it. So a share of carts (the policy's ``explore_share``, by default
``DEFAULT_EXPLORE_SHARE``, 10 %) is *explored*: an action the cart may get and its send time
are drawn uniformly among every such pair (a message may be sent now or at the later points
of the send grid, an on-site action only now), whatever the expected gain. Drawing pairs
rather than actions explores send times as much as actions (what learns the best time to
remind), and keeps the costly random discounts to a share of the explored carts. Both draws
are fixed by (retailer salt, cart id), as the group is (``decide.group_of``), and
independent of it: the control group holds out explored actions too, so the experiment
report can compare explored carts with their own control carts.

The send time of a message is learnt from carts sent at different times, and the policy's own
choice is nearly always "now": so, of the other carts whose chosen action is a message, a
further ``time_share`` (``DEFAULT_TIME_SHARE``, half) gets that message at a random time of
its grid. It costs little (the right message, at another hour) and is what makes the timing
learnable. Why half: a send time moves a reminder's recovery by a fraction of a point, about
the noise of a few thousand carts' purchases; at 30 % a pool of eight stores of 1,300 carts a
day had some 4,700 carts per send time, and in one closed loop in twenty (``ops/closed_loop``)
a chance excess of purchases at 6 h (1.7 standard errors) had most reminders sent then, at a
loss. At half the same loops learn a send time within one step of the best for more carts,
and the cost of the hours tried is reported beside the gain (README, "The closed loop").

Every decision records the probability with which its action and send time were chosen
(``propensity``), for off-policy evaluation: for the action ``a`` at ``h``, with (a*, h*) the
choice the policy would have made (``greedy``)::

    P(a, h) = share / n_pairs
              + (1 − share) · [a = a*] · ((1 − time_share) · [h = h*] + time_share / n_times)

where ``n_pairs`` counts the (action, send time) pairs the cart may get and ``n_times`` the
send times of a* (the time term only when a* is a message; otherwise [(a, h) = (a*, h*)]).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from cartpredict.decisions.decide import Decision, unit_draw
from cartpredict.decisions.gain import SEND_GRID
from cartpredict.decisions.policy import DEFAULT_EXPLORE_SHARE, NO_ACTION, Action

__all__ = ["DEFAULT_EXPLORE_SHARE", "DEFAULT_TIME_SHARE", "explore", "exploring", "propensity"]
DEFAULT_TIME_SHARE = 0.50


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
    time_share: float = 0.0,
) -> Explored | None:
    """The cart's explored action and send time, or None when the cart is not explored (or
    may get no action). ``actions``: those the cart may get; ``greedy``: the (action, send
    time) the policy would have chosen, None for no action; ``time_share``: of the other
    carts whose chosen action is a message, the share sent at a random time."""
    if not actions:
        return None
    chosen: tuple[Action, float] | None = None
    if is_explored(salt, cart_id, share):
        pairs = [(a, h) for a in actions for h in send_times(a, now)]
        u = unit_draw(salt, f"explore-choice/{cart_id}")
        chosen = pairs[min(int(u * len(pairs)), len(pairs) - 1)]
    elif greedy is not None and time_share > 0.0:
        action = next((a for a in actions if a.name == greedy[0]), None)
        u = unit_draw(salt, f"explore-time/{cart_id}")
        if action is not None and action.needs_consent and u < time_share:
            times = send_times(action, now)
            chosen = (action, times[min(int(u / time_share * len(times)), len(times) - 1)])
    if chosen is None:
        return None
    action, h = chosen
    odds = propensity(actions, now, (action.name, h), share, greedy, time_share)
    return Explored(action, h, odds)


def propensity(
    actions: Sequence[Action],
    now: float,
    chosen: tuple[str, float],
    share: float,
    greedy: tuple[str, float] | None,
    time_share: float = 0.0,
) -> float:
    """P(the decision names ``chosen``) under exploration (module docstring). On the request
    path for every named cart: counts, no list of pairs."""
    name, h = chosen
    later = sum(1 for t in SEND_GRID if t > now)  # a message's send times after now
    n_pairs, action = 0, None
    for a in actions:
        n_pairs += 1 + later if a.needs_consent else 1
        if a.name == name:
            action = a
    if action is None:
        return 0.0
    n_times = 1 + later if action.needs_consent else 1
    possible = h == now or (n_times > 1 and h > now and h in SEND_GRID)
    explored = share / n_pairs if possible else 0.0
    if greedy is None or greedy[0] != name:
        return explored
    if not action.needs_consent or time_share <= 0.0:
        return explored + (1.0 - share) * (1.0 if greedy == chosen else 0.0)
    timed = time_share / n_times if possible else 0.0
    return explored + (1.0 - share) * ((1.0 - time_share) * (greedy == chosen) + timed)


def exploring(
    decision: Decision,
    salt: bytes,
    cart_id: str,
    actions: Sequence[Action],
    now: float,
    *,
    share: float,
    gain_of: Callable[[Action, float], float],
    time_share: float = DEFAULT_TIME_SHARE,
) -> Decision:
    """The policy's ``decision`` (``decide.decide``) once exploration has had its say: an
    explored cart's action (held out, for a control cart) and send time are the drawn ones,
    with their expected gain (``gain_of(action, send time)``) and ``explored`` set; the
    reason stays the policy's. Either way the decision carries its ``propensity``. A
    ``share`` of 0 turns exploration off, send times included."""
    if share <= 0.0:
        time_share = 0.0
    control = decision.group == "control"
    named = decision.held_out if control else decision.action
    greedy = None if named == NO_ACTION else (named, decision.send_after_hours)
    x = explore(salt, cart_id, actions, now, share=share, greedy=greedy, time_share=time_share)
    if x is None:
        if greedy is None:  # no action: chosen unless the cart was explored
            odds = 1.0 - share if actions and share > 0.0 else 1.0
        else:
            odds = propensity(actions, now, greedy, share, greedy, time_share)
        return decision._replace(propensity=odds)
    gain = gain_of(x.action, x.send_after_hours)
    name = x.action.name
    return decision._replace(
        action=NO_ACTION if control else name,
        held_out=name if control else NO_ACTION,
        send_after_hours=x.send_after_hours,
        expected_gain=gain,
        explored=True,
        propensity=x.propensity,
    )
