"""Who responds: an action's recovery rate per cart and send time, as served.

The decision's expected gain (``decisions/gain.py``) needs, per cart and action, the share
``r`` of otherwise-lost carts the action brings back when it reaches the cart ``h`` hours after
the last activity. Until a retailer's control groups have measured it, ``r`` is the channel's
prior (``decisions/policy.py``), one number per action. A recovery model learns it per cart::

    r(cart, h) = σ(intercept + w · z(cart, h))

with ``z`` the features below, plain Python on the request path (a dot product per send
time). ``learning/uplift.py`` fits it from the retailer's treatment and control groups, and
builds the same features column by column for training (a test holds the two equal).

Features (``z``), on the cart's value in the retailer's currency:

* ``log_value`` = log(1 + value) and its square around ``log(1 + 60)`` (a response may rise
  and fall with value), ``single_item``, ``log_items`` = log(1 + items), the device one-hots
  ``mobile``, ``desktop``, ``tablet`` (``unknown`` is the reference) and ``mobile x
  log_value``: who the action sways;
* for a message only (an on-site action is shown at the next page view: no time to choose),
  ``send_h`` (hours after the last activity) and its hinges ``send_h_after_k`` = max(h − k, 0)
  at the send grid's inner hours k = 1, 2, 3, 6, each also times ``log_value``, and ``send_h x
  mobile``: when. The log-rate is then piecewise linear in ``h`` between the grid's hours, with
  a slope per segment that moves with value: it can rise and fall, peak at any grid hour, and
  peak later for a considered purchase than for an impulse one. (A square in ``h`` whose peak
  moves with value, tried first, could not: the true response falls off both sides of a
  peak at a rate of its own, and the square picked a send time more than one grid step from
  the best for a quarter of the carts.)

``calibration`` is the base model's log-odds shift on the carts the model was fitted on: the
decision reads P(purchase without action) as σ(logit p₀ + calibration).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cartpredict.core.vocabulary import MESSAGE_CHANNELS, SEND_GRID
from cartpredict.storage import RECOVERY

CART_FEATURES = (
    "log_value",
    "log_value_sq",
    "single_item",
    "log_items",
    "mobile",
    "desktop",
    "tablet",
    "mobile_x_log_value",
)
KNOTS = (1.0, 2.0, 3.0, 6.0)  # the send grid's inner hours
_HINGES = ("send_h", *(f"send_h_after_{k:g}" for k in KNOTS))
TIMING_FEATURES = (*_HINGES, *(f"{h}_x_log_value" for h in _HINGES), "send_h_x_mobile")
VALUE_CENTRE = math.log1p(60.0)


def feature_names(channel: str) -> tuple[str, ...]:
    return CART_FEATURES + (TIMING_FEATURES if channel in MESSAGE_CHANNELS else ())


def cart_part(value: float, items: int, device: str) -> list[float]:
    """The features that do not depend on the send time."""
    x = math.log1p(max(value, 0.0))
    mobile = 1.0 if device == "mobile" else 0.0
    return [
        x,
        (x - VALUE_CENTRE) ** 2,
        1.0 if items == 1 else 0.0,
        math.log1p(max(items, 0)),
        mobile,
        1.0 if device == "desktop" else 0.0,
        1.0 if device == "tablet" else 0.0,
        mobile * x,
    ]


def hinges(send_h: float) -> list[float]:
    return [send_h, *(max(send_h - k, 0.0) for k in KNOTS)]


def timing_part(cart: Sequence[float], send_h: float) -> list[float]:
    """The send-time features, from the cart's part (``cart_part``)."""
    at = hinges(send_h)
    return [*at, *(a * cart[0] for a in at), send_h * cart[4]]


@dataclass(frozen=True)
class RecoveryModel:
    """One action's learnt recovery rate (module docstring)."""

    action: str
    channel: str
    intercept: float
    weights: tuple[float, ...]
    calibration: float = 0.0
    discount: float = 0.0  # the offer it was learnt with: serves an action giving the same

    def __post_init__(self) -> None:
        if len(self.weights) != len(feature_names(self.channel)):
            raise ValueError(f"{self.action}: one weight per recovery feature")

    @property
    def timed(self) -> bool:
        return self.channel in MESSAGE_CHANNELS

    def rates(self, value: float, items: int, device: str) -> RateAt:
        """The cart's recovery rate as a function of the send time."""
        cart = cart_part(value, items, device)
        w = self.weights
        base = self.intercept + sum(map(operator.mul, w[: len(cart)], cart))
        if not self.timed:
            fixed = _sigmoid(base)
            return RateAt(fixed)
        n, k, x = len(CART_FEATURES), len(_HINGES), cart[0]
        # z(h) = base + Σ s_j · hinge_j(h), s_j = w_j + w_jx·x (+ w_hm·mobile on h itself):
        # from one knot to the next, z is a line whose slope sums the s_j of the knots passed;
        # kept as z at each knot and those slopes, a send time costs a multiplication
        slopes, values = [], [base]
        total = 0.0
        for j in range(k):
            total += w[n + j] + w[n + k + j] * x + (w[n + 2 * k] * cart[4] if j == 0 else 0.0)
            slopes.append(total)
        for j, knot in enumerate(KNOTS):
            values.append(values[j] + slopes[j] * (knot - _STARTS[j]))
        return RateAt(base, tuple(values), tuple(slopes), timed=True)

    def rate(self, value: float, items: int, device: str, send_h: float) -> float:
        return self.rates(value, items, device)(send_h)

    def named_weights(self) -> dict[str, float]:
        return dict(zip(feature_names(self.channel), self.weights, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": RECOVERY,
            "action": self.action,
            "channel": self.channel,
            "intercept": self.intercept,
            "weights": self.named_weights(),
            "calibration": self.calibration,
            "discount": self.discount,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecoveryModel:
        channel = str(data["channel"])
        weights = data["weights"]
        return cls(
            action=str(data["action"]),
            channel=channel,
            intercept=float(data["intercept"]),
            weights=tuple(float(weights[name]) for name in feature_names(channel)),
            calibration=float(data.get("calibration", 0.0)),
            discount=float(data.get("discount", 0.0)),
        )

    def serves(self, name: str, channel: str, discount: float) -> bool:
        """Whether it was learnt for this action: a renamed, moved or re-priced action is
        a new experiment, and keeps its prior until it has been measured."""
        return (self.action, self.channel, self.discount) == (name, channel, discount)


def served_models(stored: Mapping[str, Any] | None) -> dict[str, RecoveryModel]:
    """The learnt models a stored recovery version serves, by action name (the actions that
    keep their prior are not named). A version's ``model``::

        {"kind": "recovery", "actions": {name: {"served": <a model's to_dict> | null,
         "source": "own" | "pooled" | null, "reason": ..., ...}}}
    """
    if not stored:
        return {}
    out = {}
    for name, learnt in (stored.get("actions") or {}).items():
        served = learnt.get("served")
        if served is not None:
            out[str(name)] = RecoveryModel.from_dict(served)
    return out


@dataclass(frozen=True, slots=True)
class RateAt:
    """r(h) of one cart: σ(z(h)), z piecewise linear between the knots (``values``: z at 0
    and at each knot; ``slopes``: from each of them to the next), or a fixed rate (``timed``
    false: ``base``)."""

    base: float
    values: tuple[float, ...] = ()
    slopes: tuple[float, ...] = ()
    timed: bool = False

    def __call__(self, send_h: float) -> float:
        if not self.timed:
            return self.base
        h = send_h
        j = 0 if h <= 1.0 else 1 if h <= 2.0 else 2 if h <= 3.0 else 3 if h <= 6.0 else 4
        return _sigmoid(self.values[j] + self.slopes[j] * (h - _STARTS[j]))


_STARTS = (0.0, *KNOTS)
assert KNOTS == (1.0, 2.0, 3.0, 6.0), "RateAt.__call__ picks the segment of these knots"


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


# --- in plain words ----------------------------------------------------------------------------


def explain(model: RecoveryModel, *, typical: float = 60.0, currency: str = "USD") -> list[str]:
    """What the model says, as a marketer would put it: the share of otherwise-lost carts the
    action recovers for a typical cart (``typical``: the store's typical cart value, in its
    ``currency``; 2 items, desktop), and how that moves with device, value and send time."""
    items, device = 2, "desktop"
    low, high = typical / 3.0, typical * 2.5

    def pct(v: float, i: int, d: str, h: float = 0.0) -> str:
        return f"{100 * model.rate(v, i, d, h):.1f} %"

    def money(v: float) -> str:
        return f"{v:,.0f} {currency}"

    lines = [
        f"recovers {pct(typical, items, device)} of otherwise-lost carts like a typical one "
        f"({money(typical)}, {items} items, desktop)",
        f"by device: mobile {pct(typical, items, 'mobile')}, "
        f"tablet {pct(typical, items, 'tablet')}, desktop {pct(typical, items, 'desktop')}",
        f"by value: {money(low)} carts {pct(low, 1, device)}, {money(typical)} carts "
        f"{pct(typical, items, device)}, {money(high)} carts {pct(high, 3, device)}",
    ]
    if model.timed:
        sizes = ((low, 1), (typical, items), (high, 3))
        best = [(v, _best_time(model, v, i, device)) for v, i in sizes]
        lines.append(
            "recovers most when sent "
            + "; ".join(f"{_hours(h)} for {money(v)} carts" for v, h in best)
            + " (the decision also weighs the carts bought meanwhile)"
        )
    return lines


def _best_time(model: RecoveryModel, value: float, items: int, device: str) -> float:
    rate = model.rates(value, items, device)
    return max(SEND_GRID, key=rate)


def _hours(h: float) -> str:
    return "right after the last activity" if h == 0 else f"{h:g} h after the last activity"
