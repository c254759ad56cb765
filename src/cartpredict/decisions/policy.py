"""A retailer's recovery policy: its margin, its actions and what each costs, the control share.

Plain values, validated at the API (``serving/schemas.py``) and stored as JSON with a version
that every change increments (``storage``). A retailer that never set one has
:data:`DEFAULT_POLICY`.

Prior recovery rates
====================
``recovery_rate`` is the share of *otherwise lost* carts an action brings back, and
``decay_per_hour`` how much of that share is lost for each hour the action waits after the
last activity (``rate × (1 − decay)^hours``). A retailer may set both per action; until its
control groups measure them, the channel's prior below applies. Published figures are not
incremental (they count every purchase after a message, including carts that would have been
bought anyway), so the priors are deliberately below them:

* ``email``: Klaviyo's abandoned-cart benchmark (≈ 9.3 million abandoned-cart emails from about
  3,000 US stores, April–June 2017) reports 41.18 % opened and 9.50 % clicked
  (https://www.klaviyo.com/marketing-resources/abandoned-cart-benchmarks/). A prior of 5 % of
  lost carts recovered is about half the click rate; 4 % of it lost per hour of delay (the same
  report and most vendors find the first hours convert best).
* ``sms``: read more often and sooner than email; no incremental figure found: 6 %, decaying
  6 % an hour.
* ``push``: 3 %, decaying 6 % an hour (opt-in audiences are small and notifications are
  dismissed quickly).
* ``onsite``: shown at the shopper's next page view, so no delay to choose: 4 %.

Reported figures, not verified here; the experiment report measures each retailer's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from cartpredict.core import currency
from cartpredict.core.vocabulary import MESSAGE_CHANNELS, Channel

CHANNELS = tuple(c.value for c in Channel)
NO_ACTION = "none"


@dataclass(frozen=True)
class ChannelPrior:
    recovery_rate: float
    decay_per_hour: float


CHANNEL_PRIORS: Mapping[str, ChannelPrior] = {
    "email": ChannelPrior(0.05, 0.04),
    "sms": ChannelPrior(0.06, 0.06),
    "push": ChannelPrior(0.03, 0.06),
    "onsite": ChannelPrior(0.04, 0.0),
}


@dataclass(frozen=True)
class Action:
    name: str
    channel: str
    cost: float  # in the retailer's currency, per action taken
    discount: float  # share of the cart's value given away when the cart is bought
    recovery_rate: float | None = None  # None: the channel's prior
    decay_per_hour: float | None = None

    @property
    def rate(self) -> float:
        given = self.recovery_rate
        return CHANNEL_PRIORS[self.channel].recovery_rate if given is None else given

    @property
    def decay(self) -> float:
        given = self.decay_per_hour
        return CHANNEL_PRIORS[self.channel].decay_per_hour if given is None else given

    @property
    def needs_consent(self) -> bool:
        return self.channel in MESSAGE_CHANNELS

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "channel": self.channel, "cost": self.cost,
                               "discount": self.discount}  # fmt: skip
        if self.recovery_rate is not None:
            out["recovery_rate"] = self.recovery_rate
        if self.decay_per_hour is not None:
            out["decay_per_hour"] = self.decay_per_hour
        return out


DEFAULT_EXPLORE_SHARE = 0.10  # why, and why this much: decisions/exploration.py


@dataclass(frozen=True)
class RecoveryPolicy:
    margin: float  # share of a cart's value the retailer keeps when it is bought
    control_share: float  # share of carts held out, in every decision
    max_action_share: float | None  # act on at most this share of carts (by expected gain)
    actions: tuple[Action, ...]
    explore_share: float = DEFAULT_EXPLORE_SHARE  # of carts given an action at random

    def action(self, name: str) -> Action | None:
        return next((a for a in self.actions if a.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "margin": self.margin,
            "control_share": self.control_share,
            "max_action_share": self.max_action_share,
            "explore_share": self.explore_share,
            "actions": [a.to_dict() for a in self.actions],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecoveryPolicy:
        return cls(
            margin=float(data["margin"]),
            control_share=float(data["control_share"]),
            max_action_share=None
            if data.get("max_action_share") is None
            else float(data["max_action_share"]),
            actions=tuple(_action(a) for a in data["actions"]),
            explore_share=float(data.get("explore_share", DEFAULT_EXPLORE_SHARE)),
        )


def _action(data: Mapping[str, Any]) -> Action:
    return Action(
        name=data["name"],
        channel=data["channel"],
        cost=float(data["cost"]),
        discount=float(data["discount"]),
        recovery_rate=data.get("recovery_rate"),
        decay_per_hour=data.get("decay_per_hour"),
    )


DEFAULT_POLICY = RecoveryPolicy(
    margin=0.35,
    control_share=0.10,
    max_action_share=None,
    actions=(
        Action("reminder_email", "email", cost=0.01, discount=0.0),
        Action("popup_10", "onsite", cost=0.0, discount=0.10),
    ),
)


def default_policy(code: str) -> RecoveryPolicy:
    """:data:`DEFAULT_POLICY`, its costs (set in US dollars) converted to ``code`` with the
    dated rate table; free, in a currency the table does not hold (set the costs then)."""
    if code == "USD":
        return DEFAULT_POLICY
    known = currency.known(code)
    return replace(
        DEFAULT_POLICY,
        actions=tuple(
            replace(a, cost=currency.from_usd(a.cost, code) if known else 0.0)
            for a in DEFAULT_POLICY.actions
        ),
    )


def in_force(stored: Mapping[str, Any] | None, code: str) -> RecoveryPolicy:
    """The policy a retailer set (as stored), or the default in its currency ``code``."""
    return default_policy(code) if stored is None else RecoveryPolicy.from_dict(stored)
