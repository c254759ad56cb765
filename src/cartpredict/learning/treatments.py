"""The simulator's true response to retention actions, and the expected profit of a policy.

The product decides with the channel priors of ``decisions/policy.py`` (an email recovers 5 % of
otherwise-lost carts, losing 4 % of that per hour of delay; an on-site pop-up 4 %). The
simulated shoppers do not read that page: here is how they really respond. The figures differ
from the priors *on purpose*, by more than 2× in some segments, in both directions, so that an
evaluation shows what acting on priors costs and what measuring each retailer's own response
(its control groups) is worth. They are plausible, not calibrated: no public source gives
incremental recovery rates by segment.

The true response
=================
An action ``a`` reaching a cart ``h`` hours after its last activity brings back a share
``r(h)`` of the carts that would otherwise not be bought within 24 h::

    r(h) = min(0.6, ρ_retailer × (base_channel × device × value_band + lift × discount))
           × (1 − δ)^|h − h*|

* ``base_channel × device × value_band`` (value bands: under $30, $30–150, $150 and over):

  ============  =====  =======================================  ==================
  channel       base   device (desktop/tablet/mobile/unknown)  value band (<30/mid/≥150)
  ============  =====  =======================================  ==================
  email         0.05   1.5 / 1.0 / 0.6 / 0.8                    0.7 / 1.0 / 1.8
  sms           0.06   0.7 / 1.0 / 1.4 / 0.7                    1.0 / 1.0 / 0.8
  push          0.03   0.4 / 1.0 / 1.3 / 0.8                    1.0 / 1.0 / 0.8
  onsite        0.02   1.2 / 1.0 / 1.0 / 1.0                    1.0 / 1.0 / 1.0
  ============  =====  =======================================  ==================

  An email works on considered desktop purchases: 0.135 on a desktop cart of $150 or more,
  2.7× the prior; on a mobile cart under $30 it recovers 0.021, 0.42× the prior (the shopper
  who left a cheap cart on a phone does not come back through an inbox).
* ``lift × discount``: what a discount adds, per unit of discount (a 10 % discount is 0.10):
  0.6 on mobile carts under $150, 0.3 on other carts under $150, 0.1 on carts of $150 or more,
  and 1.25× that on single-item carts (impulse buys). The default 10 % pop-up thus recovers
  0.095 of the lost single-item mobile carts under $150 (2.4× the prior of 4 %), 0.08 of the
  other mobile ones (2×), 0.054 of a desktop cart under $150 and 0.034 of a desktop cart of
  $150 or more (below the prior): a 10 % discount sways the impulse buyer on a phone, not
  the considered purchase.
* ``ρ_retailer`` ~ LogNormal(0, 0.2²) per retailer (its audience), from the seed.
* Timing, for messages only (an on-site action is shown at the next page view: ``h`` is the
  decision's moment): a reminder works best at the cart's *receptive hour*
  ``h* = clip(μ/2 − ½, 0, 12)`` with ``μ`` the cart's mean purchase delay (the shopper's
  deliberation: $10 → 0.2 h, $60 → 1.5 h, $300 → 4.8 h, $1 000 → 10.3 h), and loses a share
  ``δ`` per hour away from it on either side: ``δ`` = 15 % under $30, 6 % for $30–150, 2 % from
  $150, and 1.25× that on mobile. Cheap impulse carts are forgotten within hours; a reminder
  that lands while a considered shopper is still comparing is ignored. Why two-sided: with a
  one-sided decay a reminder without a discount is always best sent at once (waiting saves only
  its cost on the carts bought meanwhile), so the true best send time would not depend on the
  cart; the product's decay is one-sided, which is one more way its priors are wrong.

Expected profit of acting
=========================
Seen at the decision moment ``L`` (only carts still unbought then are decided), with ``F`` the
cart's purchase-delay CDF, ``p`` its ``p_convert``, ``S(x) = 1 − p·F(x)`` the share unbought at
``x``, an action sent at ``h ≥ L`` (an on-site one at ``L``), margin ``m``, discount ``d``
(share of the value) and cost ``c``::

    profit(a, h) = [ v·m·p·(F(h) − F(L))                    bought before the send: no cost
                   + v·(m − d)·p·(F(24) − F(h))              bought anyway: discount given
                   + v·(m − d)·r(h)·(1 − p·F(24))            recovered
                   − c·S(h) ] / S(L)                          sent to every cart open at h
    profit(none) = v·m·p·(F(24) − F(L)) / S(L)

a purchase counting when it falls in the 24 h label window. Less ``profit(none)``, this is the
product's own gain formula (``decisions/gain.py``) with the oracle's p₀ and the true ``r(h)`` in
place of the model's and the prior's (a test holds them equal): told the true p₀ and rates, the
product would choose as the oracle does, but for the send times its one-sided decay cannot
express.

In the simulation a recovered cart is bought within ``RECOVERED_WITHIN_H`` (2 h) of the send,
uniformly, so always inside the label window (the send grid ends at 12 h).

Intent to treat
===============
What a treatment-against-control comparison estimates (``monitoring/experiment.py`` counts a
purchase in the 24 h after the decision): the action adds ``r(h)·S(L + 24) / S(L)`` to
P(purchase in (L, L + 24 h] | unbought at L); a recovered cart that would have been bought
between 24 h and ``L`` + 24 h anyway adds nothing in that window.

Contactable carts
=================
A message needs the shopper's consent: a fixed ``CONTACTABLE_SHARE`` (60 %) of carts, drawn by
a hash of the retailer and cart ids (the same carts for every policy). Every policy evaluated,
the oracle included, sends messages to contactable carts only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cartpredict.decisions.decide import unit_draw
from cartpredict.decisions.exploration import send_times
from cartpredict.decisions.policy import MESSAGE_CHANNELS, Action, RecoveryPolicy
from cartpredict.learning.evaluation import DecisionReport, PolicyValue
from cartpredict.learning.snapshots import LABEL_WINDOW

if TYPE_CHECKING:
    from cartpredict.learning.simulate import SimulatedCart

WINDOW_H = LABEL_WINDOW.total_seconds() / 3600
DECISION_HOURS = 1.0  # when the simulated sites ask: after an hour of inactivity
CONTACTABLE_SHARE = 0.6
RECOVERED_WITHIN_H = 2.0
NONE = -1  # the action index of "no action"

VALUE_BANDS = (30.0, 150.0)  # under $30, $30–150, $150 and over
BASE_RATE = {"email": 0.05, "sms": 0.06, "push": 0.03, "onsite": 0.02}
DEVICE_FACTOR = {
    "email": {"desktop": 1.5, "tablet": 1.0, "mobile": 0.6, "unknown": 0.8},
    "sms": {"desktop": 0.7, "tablet": 1.0, "mobile": 1.4, "unknown": 0.7},
    "push": {"desktop": 0.4, "tablet": 1.0, "mobile": 1.3, "unknown": 0.8},
    "onsite": {"desktop": 1.2, "tablet": 1.0, "mobile": 1.0, "unknown": 1.0},
}
VALUE_FACTOR = {
    "email": (0.7, 1.0, 1.8),
    "sms": (1.0, 1.0, 0.8),
    "push": (1.0, 1.0, 0.8),
    "onsite": (1.0, 1.0, 1.0),
}
DISCOUNT_LIFT = {"mobile": 0.6, "other": 0.3, "high_value": 0.1}  # per unit of discount
SINGLE_ITEM_LIFT = 1.25
DECAY = (0.15, 0.06, 0.02)  # per hour away from the receptive hour, by value band
MOBILE_DECAY = 1.25
RECEPTIVE_MAX_H = 12.0
RESPONSIVENESS_SD = 0.2
MAX_RATE = 0.6
RESPONSE_STREAM = 1  # spawn_key (retailer, 1): the retailer's responsiveness


@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity
class Carts:
    """Carts as the truth sees them, one array entry per cart."""

    value: np.ndarray
    items: np.ndarray
    device: np.ndarray  # names
    p_convert: np.ndarray
    delay_mean_h: np.ndarray
    responsiveness: np.ndarray  # the retailer's factor on every recovery rate
    contactable: np.ndarray  # the shopper consented to messages

    def __len__(self) -> int:
        return int(self.value.size)


@dataclass(frozen=True, eq=False)
class Response:
    """One action's true effect on each cart."""

    rate: np.ndarray  # share of otherwise-lost carts recovered, at the receptive hour
    decay: np.ndarray  # share of it lost per hour away from the receptive hour
    receptive_h: np.ndarray  # hours after the last activity

    def at(self, send_h: np.ndarray | float) -> np.ndarray:
        """The recovery rate of the action reaching the cart at ``send_h``."""
        away = np.abs(np.asarray(send_h, dtype=float) - self.receptive_h)
        return np.asarray(self.rate * (1.0 - self.decay) ** away)


@dataclass(frozen=True, eq=False)
class Choices:
    """A policy's decision for each cart: an action (index into the policy's actions, or
    ``NONE``) and when it reaches the cart (hours after the last activity)."""

    action: np.ndarray
    send_h: np.ndarray


def draw_responsiveness(seed: int, index: int) -> float:
    """Retailer ``index``'s factor on every recovery rate (its own stream of the seed)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, RESPONSE_STREAM)))
    return float(np.exp(rng.normal(0.0, RESPONSIVENESS_SD)))


def is_contactable(retailer_id: str, cart_id: str) -> bool:
    """Whether the cart's shopper consented to messages (``CONTACTABLE_SHARE`` of carts)."""
    return unit_draw(f"contactable/{retailer_id}".encode(), cart_id) < CONTACTABLE_SHARE


def cart_arrays(carts: Sequence[SimulatedCart], responsiveness: Mapping[str, float]) -> Carts:
    """The carts' truth as arrays; ``responsiveness``: each retailer's factor."""
    n = len(carts)

    def column(get: Callable[[SimulatedCart], float]) -> np.ndarray:
        return np.fromiter((get(c) for c in carts), dtype=float, count=n)

    return Carts(
        value=column(lambda c: c.cart_value),
        items=column(lambda c: c.item_count),
        device=np.array([c.device_type for c in carts], dtype=str),
        p_convert=column(lambda c: c.p_convert),
        delay_mean_h=column(lambda c: c.delay_mean_h),
        responsiveness=column(lambda c: responsiveness[c.retailer_id]),
        contactable=np.fromiter(
            (is_contactable(c.retailer_id, c.cart_id) for c in carts), dtype=bool, count=n
        ),
    )


# --- the truth ---------------------------------------------------------------------------------


def value_band(value: np.ndarray) -> np.ndarray:
    """0: under $30, 1: $30–150, 2: $150 and over."""
    return np.searchsorted(np.asarray(VALUE_BANDS), np.asarray(value, dtype=float), side="right")


def true_response(carts: Carts, action: Action) -> Response:
    """How the carts really respond to ``action`` (module docstring)."""
    channel = action.channel
    band = value_band(carts.value)
    mobile = carts.device == "mobile"
    device = np.array([DEVICE_FACTOR[channel].get(str(d), 1.0) for d in carts.device], float)
    base = BASE_RATE[channel] * device * np.asarray(VALUE_FACTOR[channel])[band]
    lift = np.where(mobile, DISCOUNT_LIFT["mobile"], DISCOUNT_LIFT["other"])
    lift = np.where(band == 2, DISCOUNT_LIFT["high_value"], lift)
    lift = lift * np.where(carts.items == 1, SINGLE_ITEM_LIFT, 1.0)
    rate = np.minimum(MAX_RATE, carts.responsiveness * (base + lift * action.discount))
    if channel not in MESSAGE_CHANNELS:
        zero = np.zeros(len(carts))
        return Response(rate, zero, zero)
    decay = np.asarray(DECAY)[band] * np.where(mobile, MOBILE_DECAY, 1.0)
    receptive = np.clip(carts.delay_mean_h / 2.0 - 0.5, 0.0, RECEPTIVE_MAX_H)
    return Response(rate, decay, receptive)


def send_time(action: Action, send_h: np.ndarray | float, decision_h: float) -> np.ndarray:
    """When the action reaches the cart: an on-site one at the decision, a message not before
    it and within the label window."""
    if action.channel not in MESSAGE_CHANNELS:
        return np.full(np.shape(send_h), decision_h, dtype=float)
    return np.asarray(np.clip(np.asarray(send_h, dtype=float), decision_h, WINDOW_H))


def unbought(carts: Carts, hours: np.ndarray | float) -> np.ndarray:
    """S(x): the share of the carts not bought ``hours`` after their last activity."""
    return np.asarray(1.0 - carts.p_convert * _cdf(carts, hours))


def _cdf(carts: Carts, hours: np.ndarray | float) -> np.ndarray:
    return np.asarray(1.0 - np.exp(-np.asarray(hours, dtype=float) / carts.delay_mean_h))


def no_action_profit(carts: Carts, *, margin: float, decision_h: float) -> np.ndarray:
    """Expected margin of each cart left alone, given it is unbought at ``decision_h``."""
    bought = carts.p_convert * (_cdf(carts, WINDOW_H) - _cdf(carts, decision_h))
    return np.asarray(carts.value * margin * bought / unbought(carts, decision_h))


def expected_profit(
    carts: Carts,
    action: Action,
    send_h: np.ndarray | float,
    *,
    margin: float,
    decision_h: float,
) -> np.ndarray:
    """Expected margin less discounts and cost of each cart given ``action`` at ``send_h``,
    given it is unbought at ``decision_h`` (module docstring)."""
    h = send_time(action, send_h, decision_h)
    v, d, p = carts.value, action.discount, carts.p_convert
    before = p * (_cdf(carts, h) - _cdf(carts, decision_h))
    anyway = p * (_cdf(carts, WINDOW_H) - _cdf(carts, h))
    recovered = true_response(carts, action).at(h) * unbought(carts, WINDOW_H)
    total = v * margin * before + v * (margin - d) * (anyway + recovered)
    return np.asarray((total - action.cost * unbought(carts, h)) / unbought(carts, decision_h))


def expected_recovered(
    carts: Carts, action: Action, send_h: np.ndarray | float, *, decision_h: float
) -> np.ndarray:
    """P(the action makes the cart bought within the label window | unbought at decision)."""
    h = send_time(action, send_h, decision_h)
    lost = unbought(carts, WINDOW_H) / unbought(carts, decision_h)
    return np.asarray(true_response(carts, action).at(h) * lost)


def itt_effect(
    carts: Carts, action: Action, send_h: np.ndarray | float, *, decision_h: float
) -> np.ndarray:
    """The action's true effect on P(purchase within 24 h after the decision | unbought at
    the decision): what its treatment group's purchase rate exceeds its control group's by."""
    h = send_time(action, send_h, decision_h)
    open_after = unbought(carts, decision_h + WINDOW_H) / unbought(carts, decision_h)
    return np.asarray(true_response(carts, action).at(h) * open_after)


# --- policies ----------------------------------------------------------------------------------


def allowed(carts: Carts, action: Action) -> np.ndarray:
    """The carts the action may reach: a message needs consent."""
    return carts.contactable if action.needs_consent else np.ones(len(carts), dtype=bool)


def no_action(carts: Carts, decision_h: float) -> Choices:
    return Choices(np.full(len(carts), NONE), np.full(len(carts), decision_h))


def first_allowed(carts: Carts, policy: RecoveryPolicy) -> np.ndarray:
    """Per cart, the index of the policy's first action it may get (``NONE``: none)."""
    first = np.full(len(carts), NONE)
    for i in reversed(range(len(policy.actions))):
        first = np.where(allowed(carts, policy.actions[i]), i, first)
    return first


def uniform_choices(
    carts: Carts, policy: RecoveryPolicy, index: int, *, decision_h: float
) -> Choices:
    """The same action, at the decision moment, on every cart it may reach."""
    action = np.where(allowed(carts, policy.actions[index]), index, NONE)
    return Choices(action, np.full(len(carts), decision_h))


def oracle_choices(carts: Carts, policy: RecoveryPolicy, *, decision_h: float) -> Choices:
    """Per cart, the action the cart may get and its send time with the highest true expected
    profit, or none when nothing beats leaving the cart alone (ties: none, then the earlier
    time, then the earlier action)."""
    best = no_action_profit(carts, margin=policy.margin, decision_h=decision_h)
    chosen = no_action(carts, decision_h)
    reachable = {i: allowed(carts, a) for i, a in enumerate(policy.actions)}
    for i, action in enumerate(policy.actions):
        for h in send_times(action, decision_h):
            profit = expected_profit(carts, action, h, margin=policy.margin, decision_h=decision_h)
            better = reachable[i] & (profit > best + 1e-12)
            best = np.where(better, profit, best)
            chosen.action[better] = i
            chosen.send_h[better] = h
    return chosen


def policy_profit(
    carts: Carts, policy: RecoveryPolicy, choices: Choices, *, decision_h: float
) -> np.ndarray:
    """Each cart's true expected profit under the choices."""
    out = no_action_profit(carts, margin=policy.margin, decision_h=decision_h)
    for i, action in enumerate(policy.actions):
        mine = choices.action == i
        if mine.any():
            profit = expected_profit(carts, action, choices.send_h, margin=policy.margin,
                                     decision_h=decision_h)  # fmt: skip
            out = np.where(mine, profit, out)
    return out


def policy_recovered(
    carts: Carts, policy: RecoveryPolicy, choices: Choices, *, decision_h: float
) -> np.ndarray:
    """Each cart's probability of being bought because of the action chosen for it."""
    out = np.zeros(len(carts))
    for i, action in enumerate(policy.actions):
        mine = choices.action == i
        if mine.any():
            recovered = expected_recovered(carts, action, choices.send_h, decision_h=decision_h)
            out = np.where(mine, recovered, out)
    return out


# --- the report's section ----------------------------------------------------------------------

ORACLE_POLICY = "oracle"
NO_ACTION_POLICY = "no_action"
SEGMENTS: dict[str, Callable[[Carts], np.ndarray]] = {
    "all": lambda c: np.ones(len(c), dtype=bool),
    "mobile": lambda c: c.device == "mobile",
    "desktop": lambda c: c.device == "desktop",
    "value under 30": lambda c: value_band(c.value) == 0,
    "value 30 to 150": lambda c: value_band(c.value) == 1,
    "value 150 and over": lambda c: value_band(c.value) == 2,
    "desktop, value 150 and over": lambda c: (c.device == "desktop") & (value_band(c.value) == 2),
    "mobile, value under 150": lambda c: (c.device == "mobile") & (value_band(c.value) < 2),
}


def decision_report(
    carts: Carts,
    policy: RecoveryPolicy,
    choices: Mapping[str, Choices],
    rules: Mapping[str, str],
    *,
    decision_h: float,
) -> DecisionReport:
    """Expected profit per 1,000 carts of each named policy's ``choices`` (one of them named
    ``oracle``, one ``no_action``), with the true recovery rates beside the priors."""
    profit = {
        name: policy_profit(carts, policy, c, decision_h=decision_h) for name, c in choices.items()
    }
    per_1000 = {name: _per_1000(p) for name, p in profit.items()}
    oracle, nothing = per_1000.get(ORACLE_POLICY), per_1000.get(NO_ACTION_POLICY)
    values = tuple(
        PolicyValue(
            name=name,
            rule=rules.get(name, ""),
            profit_per_1000=per_1000[name],
            gain_per_1000=None if nothing is None else per_1000[name] - nothing,
            recovered_per_1000=_per_1000(policy_recovered(carts, policy, c, decision_h=decision_h)),
            ratio_to_oracle=_ratio(per_1000[name], oracle),
            gain_ratio_to_oracle=None
            if nothing is None or oracle is None
            else _ratio(per_1000[name] - nothing, oracle - nothing),
            acted=_acted(policy, c),
            send_hours=_send_hours(policy, c),
        )
        for name, c in choices.items()
    )
    return DecisionReport(
        n_carts=len(carts),
        decision_hours=decision_h,
        contactable_share=float(carts.contactable.mean()) if len(carts) else 0.0,
        margin=policy.margin,
        policies=values,
        true_rates=rate_table(carts, policy, decision_h=decision_h),
    )


def rate_table(
    carts: Carts, policy: RecoveryPolicy, *, decision_h: float
) -> dict[str, dict[str, float | None]]:
    """Per action: its prior recovery rate and the true mean rate per segment, both for the
    action reaching the cart at the decision moment."""
    table: dict[str, dict[str, float | None]] = {}
    for action in policy.actions:
        true = true_response(carts, action).at(send_time(action, decision_h, decision_h))
        row: dict[str, float | None] = {"prior": action.rate * (1 - action.decay) ** decision_h}
        for name, segment in SEGMENTS.items():
            mask = segment(carts)
            row[name] = float(true[mask].mean()) if mask.any() else None
        table[action.name] = row
    return table


def _per_1000(values: np.ndarray) -> float:
    return float(1000.0 * values.mean()) if values.size else 0.0


def _ratio(value: float, reference: float | None) -> float | None:
    return None if reference is None or reference <= 0.0 else value / reference


def _acted(policy: RecoveryPolicy, choices: Choices) -> dict[str, float]:
    n = max(choices.action.size, 1)
    return {a.name: float(np.sum(choices.action == i) / n) for i, a in enumerate(policy.actions)}


def _send_hours(policy: RecoveryPolicy, choices: Choices) -> dict[str, float]:
    """Among the carts sent a message, the share per send time (hours after last activity)."""
    messages = [i for i, a in enumerate(policy.actions) if a.channel in MESSAGE_CHANNELS]
    sent = np.isin(choices.action, messages)
    if not sent.any():
        return {}
    hours, counts = np.unique(choices.send_h[sent], return_counts=True)
    return {f"{h:g}": float(k / sent.sum()) for h, k in zip(hours, counts, strict=True)}
