"""Expected gain of an action on a cart, and when to act.

For a cart of value ``v`` with p₀ = P(purchase in 24 h without action), an action with recovery
rate ``r``, discount ``d`` (a share of ``v``) and cost ``c``, under margin ``m``::

    gain = r·(1 − p₀)·v·(m − d) − p₀·v·d − c

the margin on the carts it recovers, less the discount given to carts that would have been
bought anyway, less its cost. When: acting ``h`` hours after the last activity reaches only
carts still unbought then; seen from now (``h_now``) that share is
``(1 − p₀(h_now)) / (1 − p₀(h))``, where p₀(h) is the model's P(purchase in the rest of the
24 h | unbought at h) (inactivity is one of its features), and the rate has decayed to
``r·(1 − decay)^h``. Waiting saves discounts and costs on shoppers who come back by
themselves; it loses carts whose recoverability decays. The best ``h`` on :data:`SEND_GRID`
(and ≥ now) wins; an on-site action happens at the next page view, now.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from cartpredict.core.vocabulary import SEND_GRID
from cartpredict.decisions.policy import Action

__all__ = ["SEND_GRID", "Timed", "best_time", "expected_gain", "gain_at", "timed_gain"]


def expected_gain(p0: float, value: float, margin: float, action: Action, *, rate: float) -> float:
    d = action.discount
    return rate * (1.0 - p0) * value * (margin - d) - p0 * value * d - action.cost


@dataclass(frozen=True)
class Timed:
    send_after_hours: float  # after the last activity; equal to the cart's inactivity: now
    gain: float  # expected, seen from now


def best_time(
    p0_at: Callable[[float], float], value: float, margin: float, action: Action, now: float
) -> Timed:
    """The send time with the highest expected gain (the earliest among equals).

    ``p0_at(h)``: the model's p₀ for this cart at ``h`` hours of inactivity."""
    return Timed(*timed_gain(p0_at, value, margin, action, now))


def timed_gain(
    p0_at: Callable[[float], float],
    value: float,
    margin: float,
    action: Action,
    now: float,
    rate_at: Callable[[float], float] | None = None,
) -> tuple[float, float]:
    """``best_time`` as a plain pair (send after hours, gain), for the request path.
    ``rate_at(h)``: the cart's recovery rate if the action reaches it at ``h`` (a learnt
    recovery model's); None: the action's prior, ``rate × (1 − decay)^h``."""
    p0_now = p0_at(now)
    d, c = action.discount, action.cost
    if action.channel == "onsite":  # shown at the next page view: no delay, no decay
        r = action.rate if rate_at is None else rate_at(now)
        return now, r * (1.0 - p0_now) * value * (margin - d) - p0_now * value * d - c
    rate, keep = action.rate, 1.0 - action.decay  # the prior's, where nothing is learnt
    open_now = 1.0 - p0_now
    recovered, given = value * (margin - d), value * d  # (per cart recovered / bought anyway)
    r = rate * math.pow(keep, now) if rate_at is None else rate_at(now)
    best_h, best = now, r * open_now * recovered - p0_now * given - c
    for h in SEND_GRID:
        if h <= now:
            continue
        p0 = p0_at(h)
        r = rate * math.pow(keep, h) if rate_at is None else rate_at(h)
        # the share still open at h, (1 − p0_now) / (1 − p0), times the gain then
        gain = open_now / max(1.0 - p0, 1e-12) * (r * (1.0 - p0) * recovered - p0 * given - c)
        if gain > best + 1e-12:
            best_h, best = h, gain
    return best_h, best


def gain_at(
    p0_at: Callable[[float], float],
    value: float,
    margin: float,
    action: Action,
    now: float,
    send_h: float,
    rate_at: Callable[[float], float] | None = None,
) -> float:
    """The expected gain, seen from ``now``, of ``action`` sent at ``send_h`` (≥ now; an
    on-site action: now), weighed as ``timed_gain`` weighs each send time."""
    onsite = action.channel == "onsite"
    h = now if onsite or send_h <= now else send_h
    if rate_at is not None:
        r = rate_at(h)
    else:
        r = action.rate if onsite else action.rate * math.pow(1.0 - action.decay, h)
    p0_now = p0_at(now)
    p0 = p0_now if h == now else p0_at(h)
    gain = expected_gain(p0, value, margin, action, rate=r)
    return gain if h == now else (1.0 - p0_now) / max(1.0 - p0, 1e-12) * gain
