"""Deterministic simulator of retailers and their carts, with the true probabilities.

``simulate(seed=...)`` draws a set of retailers (tenants) and, for each, the carts of a
number of days. Every cart has a single last activity at ``at``; it is purchased later with
a known probability after a known random delay, so for any snapshot of it the simulator can
say exactly how likely a purchase in the label window is (:meth:`Simulation.oracle`).
Nothing here is personal data: ids are opaque counters.

Generative model
================

All randomness comes from ``numpy.random.default_rng`` seeded by ``SeedSequence(seed,
spawn_key=(i,))`` for retailer *i*, so a seed gives identical output, and retailer *i* is the
same whatever the number of retailers asked for.

Retailers
    * Size: ``carts_per_day × exp(N(0, 1) − ½)`` (log-normal, mean factor 1), at least 1 a
      day, so a few retailers have little data.
    * ``requires_account`` ~ Bernoulli(0.35); 1–5 payment options (always ``credit_card``,
      others from ``paypal, apple_pay, google_pay, klarna, afterpay, shop_pay``); 1–4
      shipping speeds, always ``standard`` plus a random subset of ``express, overnight,
      same_day, pickup``.
    * ``pooled_learning``: opt-in for a spread-out 70 % of retailers (retailer *i* opts in
      iff ``⌊0.7(i+1)+φ⌋ − ⌊0.7i+φ⌋ = 1``, with φ ~ U(0, 1) from the seed), so every
      prefix of the retailer list has 70 % ± 1 retailer opted in.
    * ``precision_target`` 0.70 (SPEC §2 default).
    * A retailer effect (:class:`RetailerEffect`): an intercept shift ~ N(0, 0.35²) and a
      slope on log cart value ~ N(0, 0.30²) added to the pooled coefficients below, so that
      per-retailer models can beat a pooled one.

Carts (per retailer)
    * Count ~ Poisson(rate × days); day uniform; hour of day from a daily cycle with weight
      ``1 + 0.6 cos(2π(h − 20)/24)`` (evening peak); second uniform within the hour.
      ``at`` is a whole second.
    * Value ``v`` ~ LogNormal(ln 60, 1.0), clipped to [1, 10 000], 2 decimals: median $60,
      mean ≈ $99, close to the ≈ $100 average order value commonly reported by e-commerce
      benchmarks (reported, not verified).
    * Items ``n = 1 + Poisson(1.2 √(v/60))`` (correlated with value).
    * Device: 59 % mobile, 35 % desktop, 5 % tablet, 1 % unknown (mobile is commonly
      reported as roughly 60 % of e-commerce traffic).
    * Shipping speed: chosen among the offered speeds with weights standard 0.60, express
      0.20, overnight 0.08, same_day 0.05, pickup 0.10 (renormalised).

Purchase
    * ``p_convert = σ(η)``, the probability that the cart is *ever* purchased, with
      ``η = b₀ + α_r + (β_v + γ_r)·ln(v/60) + β_n·ln n + β_device + β_speed
      + β_acct·requires_account + β_pay·(payment options − 1) + β_expr·express_offered``
      (values in :data:`COEFFICIENTS`; α_r, γ_r the retailer effect).
    * If purchased, the purchase happens at ``at + D`` with ``D ~ Exponential(mean μ(v))``,
      ``μ(v) = 4 h × (v/60)^0.6`` clipped to [0.25 h, 72 h]: bigger carts deliberate
      longer ($10 → 1.4 h, $60 → 4 h, $300 → 10.5 h, $1 000 → 21.6 h). Delays beyond 24 h
      happen (mostly for big carts) and count as abandoned for the 24 h label.
      ``purchased_at`` is rounded *up* to the whole second (≤ 1 s, so it is always after
      ``at``), and it is the true time even when it falls after ``end`` (then
      :meth:`Simulation.events` leaves it out, like a not-yet-received event).
    * Because of the value-dependent delay, value and inactivity interact: after hours of
      inactivity a cheap cart that has not been bought is almost surely dead, a big cart
      may still be bought.

A second truth (``truth="curved"``)
    The same retailers, carts, delays and oracle, but ``η`` is not logistic in the product's
    features, so an evaluation on it does not flatter a model built for the first truth:

    * value has an inverted-U effect: ``β_v·ln(v/60) − κ·ln(v/v*)²`` with the peak ``v*``
      at $90 (very cheap carts are browsing, very dear ones are comparison shopping);
    * items have diminishing, then no returns: ``β_n·min(n, 3)``;
    * requiring an account hurts mobile shoppers most (typing a password on a phone): the
      account shift is ``−0.85`` on mobile, ``−0.45`` on tablet and ``−0.10`` elsewhere,
      instead of one ``β_acct`` for all;
    * the rest (device, speed, payment options, express offered, retailer effects) as above.

    Values in :data:`CURVED`; its intercept keeps abandonment near 70 %.

Oracle
    For a snapshot ``L`` hours after ``at`` (0 ≤ L < 24), with ``F(x) = 1 − exp(−x/μ)``::

        P(purchase in (at+L, at+24h] | not purchased by at+L) = p (F(24) − F(L)) / (1 − p F(L))

    and 0 for L ≥ 24.

Treatments (``simulate(treatment=...)``)
    The retailers act on their carts: when a cart has been inactive ``decision_hours`` (1 h)
    and is still unbought, the treatment's ``choose`` decides an action and its send time
    (``choose`` may be the product's ``decide`` with a model, the same action for everyone, a
    random draw). The retailer's control share of carts, assigned as the service does
    (``decisions.decide.group_of`` under the retailer's salt), holds the action out. A
    treatment-group cart not bought within 24 h of its last activity is recovered with its
    true probability ``r(h)`` (``treatments.py``: the true response, which differs from the
    product's priors), and then bought uniformly within 2 h of the send ``h``. Every decided
    cart with an action (taken or held out) gets an ``action`` event at the decision time:
    intent to treat, so also a cart bought before the send (``delivered: false``: the message
    was not sent; ``true`` when it was; absent for a control cart, which is sent nothing).

    Each retailer has two more streams of its seed, drawn with or without a treatment: its
    responsiveness (a factor on every true recovery rate) and its assignment salt (a real
    retailer's is random; a simulated one's comes from the seed, so the same seed assigns the
    same groups; ``ops.experiments.load_simulation`` onboards the retailer with it). The
    recovery draws are a third stream, one per cart whatever is decided, so two treatments of
    the same seed differ only where their decisions do. Without a treatment the carts and
    events are exactly those of the untreated model above.

Calibration (figures and sources)
---------------------------------
* Overall 24 h abandonment ≈ 70 %: Baymard Institute, "Cart Abandonment Rate Statistics",
  average of documented online shopping cart abandonment rates, 70.19 %. ``b₀`` is set so
  that 1 − E[p F(24)] ≈ 0.71 over many retailers. At the default size (20 retailers, a few
  large ones dominating) it is 0.707 for seed 0 and 0.67–0.74 over seeds 0–5.
* Mobile abandons more than desktop: Barilliance reports 85.65 % mobile, 80.74 % tablet and
  73.07 % desktop (2015 study), and 79 % mobile / 67 % tablet / 62 % desktop over a
  Black-Friday weekend with 65 % overall; SaleCycle reports a similar gap (reported figures,
  not verified). With an overall rate of 70 % and 59 % mobile traffic the absolute levels of
  the 2015 study cannot all hold, so the model keeps the gap: ≈ 77 % mobile, ≈ 72 % tablet,
  ≈ 62 % desktop.
* Requiring an account raises abandonment: Baymard's checkout-usability survey lists "the
  site wanted me to create an account" among the top reasons, given by about 19–26 % of
  abandoners depending on the edition. The model's shift (β_acct = −0.40) gives ≈ 6–8
  points more abandonment on account-required sites.
* The remaining coefficients (value, items, speed, payment options, express offered) are
  plausible signs and sizes, not calibrated figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np

from cartpredict.core.clock import rfc3339
from cartpredict.decisions.decide import group_of
from cartpredict.decisions.policy import DEFAULT_POLICY, NO_ACTION, RecoveryPolicy
from cartpredict.learning.treatments import (
    DECISION_HOURS,
    RECOVERED_WITHIN_H,
    cart_arrays,
    draw_responsiveness,
    send_time,
    true_response,
)

DEVICES = ("mobile", "desktop", "tablet", "unknown")
DEVICE_SHARES = (0.59, 0.35, 0.05, 0.01)
SHIPPING_SPEEDS = ("standard", "express", "overnight", "same_day", "pickup")
SPEED_WEIGHTS = {
    "standard": 0.60,
    "express": 0.20,
    "overnight": 0.08,
    "same_day": 0.05,
    "pickup": 0.10,
}
PAYMENT_OPTIONS = (
    "credit_card",
    "paypal",
    "apple_pay",
    "google_pay",
    "klarna",
    "afterpay",
    "shop_pay",
)
DEFAULT_START = datetime(2026, 10, 1, tzinfo=UTC)
LABEL_WINDOW_H = 24.0
MEDIAN_VALUE = 60.0
POOLED_SHARE = 0.7

COEFFICIENTS: dict[str, float] = {
    "intercept": -0.97,
    "log_value": -0.25,  # per ln(v / 60)
    "log_items": 0.15,  # per ln(items)
    "device_mobile": -0.45,
    "device_desktop": 0.30,
    "device_tablet": -0.15,
    "device_unknown": -0.30,
    "speed_standard": 0.0,
    "speed_express": 0.25,
    "speed_overnight": 0.35,
    "speed_same_day": 0.40,
    "speed_pickup": 0.30,
    "requires_account": -0.40,
    "payment_option": 0.08,  # per option beyond the first
    "express_offered": 0.10,
}
# The second truth (``truth="curved"``): what replaces the value, items and account terms.
CURVED: dict[str, float] = {
    "intercept": -0.90,
    "value_peak": 90.0,  # v*: the value purchased most readily
    "value_curvature": 0.22,  # κ, per ln(v / v*)²
    "items_per_item": 0.12,  # per item, up to ITEMS_CAP
    "items_cap": 3.0,
    "account_mobile": -0.85,
    "account_tablet": -0.45,
    "account_other": -0.10,
}
TRUTHS = ("logistic", "curved")
DELAY_BASE_H = 4.0  # mean purchase delay of a $60 cart
DELAY_VALUE_EXPONENT = 0.6
DELAY_BOUNDS_H = (0.25, 72.0)
SALT_STREAM = 2  # spawn_key (retailer, 2): the retailer's assignment salt
RECOVERY_STREAM = 3  # spawn_key (retailer, 3): the recovery draws of a treatment


@dataclass(frozen=True, slots=True)
class SimulatedCart:
    """One cart: its single last activity, its state, what happened, and the true parameters.

    ``purchased_at`` is the true purchase time, or None if the cart is never bought; it may
    lie after ``Simulation.end`` (then no event reports it). ``p_convert`` is the probability
    the cart is ever bought; ``delay_mean_h`` the mean of its exponential purchase delay.
    """

    retailer_id: str
    cart_id: str
    at: datetime
    cart_value: float
    item_count: int
    device_type: str
    shipping_speed: str
    purchased_at: datetime | None
    p_convert: float
    delay_mean_h: float


class Choice(NamedTuple):
    """What a retailer decides for a cart: an action of its policy (or ``none``) and when to
    send it (hours after the last activity; an on-site action happens at the decision)."""

    action: str
    send_after_hours: float


@dataclass(frozen=True)
class Treatment:
    """How the simulated retailers act on their carts (module docstring). ``policy`` names the
    actions ``choose`` may pick and the control share; every simulated retailer is onboarded
    with the default policy, so exposures of another one are refused when loaded."""

    choose: Callable[[SimulatedCart], Choice]
    policy: RecoveryPolicy = DEFAULT_POLICY
    decision_hours: float = DECISION_HOURS


@dataclass(frozen=True, slots=True)
class SimulatedExposure:
    """A decided cart with an action, taken (``treatment``) or held out (``control``)."""

    retailer_id: str
    cart_id: str
    at: datetime  # the decision's time
    action: str
    group: str
    send_after_hours: float  # when the action reaches the cart, after its last activity
    delivered: bool | None  # sent (still unbought at the send); None: a control cart
    recovered: bool  # bought because of the action


@dataclass(frozen=True, slots=True)
class RetailerEffect:
    """What makes one retailer differ from the pooled model (added to the logit)."""

    intercept: float
    log_value_slope: float


@dataclass(frozen=True)
class Simulation:
    retailers: list[dict]
    carts: list[SimulatedCart]
    start: datetime
    end: datetime
    effects: dict[str, RetailerEffect] = field(default_factory=dict)
    salts: dict[str, str] = field(default_factory=dict)  # each retailer's assignment salt
    responsiveness: dict[str, float] = field(default_factory=dict)  # factor on recovery rates
    exposures: list[SimulatedExposure] = field(default_factory=list)

    def events(self) -> Iterator[dict]:
        """SPEC §4 events (plus ``retailer_id``) in time order; purchases and exposures after
        ``end`` omitted."""
        keyed: list[tuple[datetime, int, str, str, dict[str, Any]]] = []
        for cart in self.carts:
            keyed.append((cart.at, 0, cart.retailer_id, cart.cart_id, _updated_event(cart)))
            if cart.purchased_at is not None and cart.purchased_at <= self.end:
                keyed.append(
                    (cart.purchased_at, 1, cart.retailer_id, cart.cart_id, _purchased_event(cart))
                )
        for x in self.exposures:
            if x.at <= self.end:
                keyed.append((x.at, 2, x.retailer_id, x.cart_id, _action_event(x)))
        keyed.sort(key=lambda row: row[:4])
        for *_, event in keyed:
            yield event

    def oracle(self, cart: SimulatedCart, inactivity_hours: float) -> float:
        """P(purchase in (at + L, at + 24 h] | not purchased by at + L), L = inactivity_hours."""
        return oracle_probability(cart.p_convert, cart.delay_mean_h, inactivity_hours)

    def oracle_many(
        self, carts: Sequence[SimulatedCart], inactivity_hours: np.ndarray
    ) -> np.ndarray:
        """:meth:`oracle` for many snapshots at once (``inactivity_hours`` one per cart)."""
        p = np.fromiter((c.p_convert for c in carts), dtype=float, count=len(carts))
        mean_h = np.fromiter((c.delay_mean_h for c in carts), dtype=float, count=len(carts))
        return oracle_arrays(p, mean_h, np.asarray(inactivity_hours, dtype=float))


def oracle_probability(p_convert: float, delay_mean_h: float, inactivity_hours: float) -> float:
    """Scalar oracle: ``p (F(24) − F(L)) / (1 − p F(L))`` with exponential delay CDF ``F``."""
    if inactivity_hours < 0:
        raise ValueError("inactivity_hours must be >= 0")
    if inactivity_hours >= LABEL_WINDOW_H:
        return 0.0
    survive_l = math.exp(-inactivity_hours / delay_mean_h)
    survive_w = math.exp(-LABEL_WINDOW_H / delay_mean_h)
    return p_convert * (survive_l - survive_w) / (1.0 - p_convert * (1.0 - survive_l))


def oracle_arrays(
    p_convert: np.ndarray, delay_mean_h: np.ndarray, inactivity_hours: np.ndarray
) -> np.ndarray:
    """Vectorised :func:`oracle_probability` (broadcasting)."""
    if np.any(inactivity_hours < 0):
        raise ValueError("inactivity_hours must be >= 0")
    hours = np.minimum(inactivity_hours, LABEL_WINDOW_H)
    survive_l = np.exp(-hours / delay_mean_h)
    survive_w = np.exp(-LABEL_WINDOW_H / delay_mean_h)
    return np.asarray(p_convert * (survive_l - survive_w) / (1.0 - p_convert * (1.0 - survive_l)))


def draw_purchase_delays(
    rng: np.random.Generator, p_convert: np.ndarray, delay_mean_h: np.ndarray
) -> np.ndarray:
    """Hours from last activity to purchase (``inf`` = never bought), one per cart.

    This is the model's purchase step, public so tests can check the oracle against it.
    """
    p, mean_h = np.broadcast_arrays(np.asarray(p_convert, float), np.asarray(delay_mean_h, float))
    converts = rng.random(p.shape) < p
    delays = rng.exponential(mean_h)
    return np.where(converts, delays, np.inf)


def delay_mean_hours(value: np.ndarray) -> np.ndarray:
    """Mean purchase delay (hours) of a converting cart of this value."""
    mean_h = DELAY_BASE_H * (np.asarray(value, dtype=float) / MEDIAN_VALUE) ** DELAY_VALUE_EXPONENT
    return np.clip(mean_h, *DELAY_BOUNDS_H)


def conversion_probability(
    retailer: dict,
    effect: RetailerEffect,
    value: np.ndarray,
    items: np.ndarray,
    device: Sequence[str],
    speed: Sequence[str],
    *,
    truth: str = "logistic",
) -> np.ndarray:
    """``p_convert`` of carts of one retailer (``device``/``speed``: names, one per cart)."""
    c = COEFFICIENTS
    log_value = np.log(np.asarray(value, dtype=float) / MEDIAN_VALUE)
    if truth == "logistic":  # (terms in this order: a seed's draws stay what they were)
        site = _site_logit(retailer, account=c["requires_account"])
        eta: np.ndarray = np.asarray(c["intercept"] + effect.intercept + site)
        eta = eta + (c["log_value"] + effect.log_value_slope) * log_value
        eta = eta + c["log_items"] * np.log(items)
    elif truth == "curved":
        k = CURVED
        peak = np.log(np.asarray(value, dtype=float) / k["value_peak"])
        eta = np.asarray(k["intercept"] + effect.intercept + _site_logit(retailer, account=0.0))
        eta = eta + (c["log_value"] + effect.log_value_slope) * log_value
        eta = eta - k["value_curvature"] * peak**2
        eta = eta + k["items_per_item"] * np.minimum(np.asarray(items, float), k["items_cap"])
        if retailer["requires_account"]:
            shift = {"mobile": k["account_mobile"], "tablet": k["account_tablet"]}
            eta = eta + np.array([shift.get(d, k["account_other"]) for d in device])
    else:
        raise ValueError(f"truth must be one of {', '.join(TRUTHS)}")
    eta = eta + np.array([c[f"device_{d}"] for d in device], dtype=float)
    eta = eta + np.array([c[f"speed_{s}"] for s in speed], dtype=float)
    return np.asarray(1.0 / (1.0 + np.exp(-eta)))


def _site_logit(retailer: dict, *, account: float) -> float:
    """The site's terms, with ``account`` the shift for requiring an account."""
    c = COEFFICIENTS
    return float(
        account * retailer["requires_account"]
        + c["payment_option"] * (len(retailer["payment_options"]) - 1)
        + c["express_offered"] * ("express" in retailer["shipping_speeds"])
    )


def simulate(
    *,
    retailers: int = 20,
    days: int = 14,
    carts_per_day: float = 150.0,
    seed: int = 0,
    start: datetime | None = None,
    configs: Sequence[dict] = (),
    truth: str = "logistic",
    treatment: Treatment | None = None,
    fixed_size: bool = False,
) -> Simulation:
    """Draw ``retailers`` retailers and ``days`` days of their carts (see module docstring).

    ``configs`` replaces the first retailers' drawn site configs with given ones (same keys);
    their size and hidden effects are still drawn, so the rest of the simulation is unchanged.
    ``truth``: how purchase depends on the cart, ``logistic`` or ``curved`` (module docstring).
    ``treatment``: how the retailers act on their carts (None: they do not).
    ``fixed_size``: every retailer expects ``carts_per_day`` carts a day, instead of a drawn
    size (the draw is still made, so the rest of the simulation is unchanged).
    """
    if truth not in TRUTHS:
        raise ValueError(f"truth must be one of {', '.join(TRUTHS)}")
    if retailers < 1 or days < 1 or carts_per_day <= 0:
        raise ValueError("retailers and days must be >= 1 and carts_per_day > 0")
    if start is not None and start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    begin = (start or DEFAULT_START).astimezone(UTC)
    phase = float(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31,))).random())
    given = list(configs)
    drawn: list[dict] = []
    effects: dict[str, RetailerEffect] = {}
    salts: dict[str, str] = {}
    responsiveness: dict[str, float] = {}
    carts: list[SimulatedCart] = []
    exposures: list[SimulatedExposure] = []
    for index in range(retailers):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        config, effect, rate = _draw_retailer(rng, index, phase, carts_per_day)
        rate = carts_per_day if fixed_size else rate
        if index < len(given):
            config = {**config, **given[index]}
        rid = config["retailer_id"]
        drawn.append(config)
        effects[rid] = effect
        salts[rid] = _draw_salt(seed, index)
        responsiveness[rid] = draw_responsiveness(seed, index)
        mine = _draw_carts(rng, config, effect, rate * days, begin, days, truth)
        if treatment is not None:
            draws = np.random.default_rng(
                np.random.SeedSequence(seed, spawn_key=(index, RECOVERY_STREAM))
            )
            mine, exposed = _treat(mine, treatment, salts[rid].encode(), responsiveness, draws)
            exposures.extend(exposed)
        carts.extend(mine)
    carts.sort(key=lambda cart: (cart.at, cart.retailer_id, cart.cart_id))
    exposures.sort(key=lambda x: (x.at, x.retailer_id, x.cart_id))
    return Simulation(drawn, carts, begin, begin + timedelta(days=days), effects, salts,
                      responsiveness, exposures)  # fmt: skip


def _draw_salt(seed: int, index: int) -> str:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, SALT_STREAM)))
    return rng.bytes(16).hex()


def _treat(
    carts: list[SimulatedCart],
    treatment: Treatment,
    salt: bytes,
    responsiveness: dict[str, float],
    rng: np.random.Generator,
) -> tuple[list[SimulatedCart], list[SimulatedExposure]]:
    """One retailer's carts (in their order) acted on, and its exposures."""
    policy, when = treatment.policy, treatment.decision_hours
    recover_u, bought_u = rng.random(len(carts)), rng.random(len(carts))  # one pair per cart
    exposures = [x for cart in carts if (x := _decide(cart, treatment, salt)) is not None]
    names = [a.name for a in policy.actions]
    position = {c.cart_id: k for k, c in enumerate(carts)}
    action, send_h = np.full(len(carts), -1), np.full(len(carts), when)
    for x in exposures:
        if x.group == "treatment":
            k = position[x.cart_id]
            action[k], send_h[k] = names.index(x.action), x.send_after_hours
    arrays = cart_arrays(carts, responsiveness)
    rate = np.zeros(len(carts))
    for i, a in enumerate(policy.actions):
        rate = np.where(action == i, true_response(arrays, a).at(send_h), rate)
    recovered = (action >= 0) & (recover_u < rate)
    recovered &= np.array([not _bought_by(c, LABEL_WINDOW_H) for c in carts], dtype=bool)
    out = list(carts)
    for k in np.flatnonzero(recovered).tolist():
        seconds = math.ceil((send_h[k] + bought_u[k] * RECOVERED_WITHIN_H) * 3600)
        out[k] = replace(carts[k], purchased_at=carts[k].at + timedelta(seconds=max(1, seconds)))
    return out, [replace(x, recovered=bool(recovered[position[x.cart_id]])) for x in exposures]


def _decide(cart: SimulatedCart, treatment: Treatment, salt: bytes) -> SimulatedExposure | None:
    """The cart's exposure, if it is decided an action (before any recovery is drawn)."""
    policy, when = treatment.policy, treatment.decision_hours
    if _bought_by(cart, when):
        return None  # the site only asks about open carts
    choice = treatment.choose(cart)
    if choice.action == NO_ACTION:
        return None
    action = policy.action(choice.action)
    if action is None:
        raise ValueError(f"'{choice.action}' is not an action of the treatment's policy")
    h = float(send_time(action, choice.send_after_hours, when))
    group = group_of(salt, cart.cart_id, policy.control_share)
    treated = group == "treatment"
    return SimulatedExposure(
        retailer_id=cart.retailer_id,
        cart_id=cart.cart_id,
        at=cart.at + timedelta(hours=when),
        action=action.name,
        group=group,
        send_after_hours=h,
        delivered=not _bought_by(cart, h) if treated else None,
        recovered=False,
    )


def _bought_by(cart: SimulatedCart, hours: float) -> bool:
    return cart.purchased_at is not None and cart.purchased_at - cart.at <= timedelta(hours=hours)


def _draw_retailer(
    rng: np.random.Generator, index: int, phase: float, carts_per_day: float
) -> tuple[dict, RetailerEffect, float]:
    extra_speeds = [s for s in SHIPPING_SPEEDS[1:] if rng.random() < 0.35][:3]
    n_payment = int(rng.integers(1, 6))
    extra_payment = rng.choice(PAYMENT_OPTIONS[1:], size=n_payment - 1, replace=False)
    config = {
        "retailer_id": f"sim_{index + 1:02d}",
        "requires_account": bool(rng.random() < 0.35),
        "payment_options": ["credit_card", *(str(p) for p in extra_payment)],
        "shipping_speeds": ["standard", *extra_speeds],
        "pooled_learning": _pooled(index, phase),
        "precision_target": 0.70,
    }
    effect = RetailerEffect(float(rng.normal(0, 0.35)), float(rng.normal(0, 0.30)))
    rate = max(1.0, carts_per_day * float(np.exp(rng.normal(0.0, 1.0) - 0.5)))
    return config, effect, rate


def _pooled(index: int, phase: float) -> bool:
    return (
        math.floor(POOLED_SHARE * (index + 1) + phase) - math.floor(POOLED_SHARE * index + phase)
        == 1
    )


def _hour_weights() -> np.ndarray:
    hours = np.arange(24)
    weights = 1.0 + 0.6 * np.cos(2 * np.pi * (hours - 20) / 24)
    return np.asarray(weights / weights.sum())


def _draw_arrival_seconds(rng: np.random.Generator, expected: float, days: int) -> np.ndarray:
    count = int(rng.poisson(expected))
    day = rng.integers(0, days, size=count)
    hour = rng.choice(24, size=count, p=_hour_weights())
    second = rng.integers(0, 3600, size=count)
    return np.sort(day * 86_400 + hour * 3600 + second)


def _draw_carts(
    rng: np.random.Generator,
    retailer: dict,
    effect: RetailerEffect,
    expected: float,
    begin: datetime,
    days: int,
    truth: str,
) -> list[SimulatedCart]:
    offsets = _draw_arrival_seconds(rng, expected, days)
    n = len(offsets)
    value = np.round(np.clip(rng.lognormal(math.log(MEDIAN_VALUE), 1.0, n), 1.0, 10_000.0), 2)
    items = 1 + rng.poisson(1.2 * np.sqrt(value / MEDIAN_VALUE))
    device = [DEVICES[k] for k in rng.choice(len(DEVICES), size=n, p=DEVICE_SHARES).tolist()]
    speeds = retailer["shipping_speeds"]
    weights = np.array([SPEED_WEIGHTS[s] for s in speeds])
    speed = [speeds[k] for k in rng.choice(len(speeds), size=n, p=weights / weights.sum())]
    p = conversion_probability(retailer, effect, value, items, device, speed, truth=truth)
    mean_h = delay_mean_hours(value)
    delay_h = draw_purchase_delays(rng, p, mean_h)
    delay_s = np.ceil(np.where(np.isfinite(delay_h), delay_h, 0.0) * 3600).astype(np.int64)
    ats = [begin + timedelta(seconds=s) for s in offsets.tolist()]
    bought = [
        at + timedelta(seconds=max(1, d)) if ok else None
        for at, d, ok in zip(ats, delay_s.tolist(), np.isfinite(delay_h).tolist(), strict=True)
    ]
    values, counts, probs, means = value.tolist(), items.tolist(), p.tolist(), mean_h.tolist()
    rows = zip(ats, values, counts, device, speed, bought, probs, means, strict=True)
    rid = retailer["retailer_id"]
    return [SimulatedCart(rid, f"c-{i:06d}", *row) for i, row in enumerate(rows, start=1)]


def _updated_event(cart: SimulatedCart) -> dict[str, Any]:
    return {
        "retailer_id": cart.retailer_id,
        "event_id": f"e-{cart.cart_id}-u",
        "type": "cart_updated",
        "cart_id": cart.cart_id,
        "at": rfc3339(cart.at),
        "cart_value": cart.cart_value,
        "item_count": cart.item_count,
        "device_type": cart.device_type,
        "shipping_speed": cart.shipping_speed,
    }


def _action_event(exposure: SimulatedExposure) -> dict[str, Any]:
    event: dict[str, Any] = {
        "retailer_id": exposure.retailer_id,
        "event_id": f"e-{exposure.cart_id}-a",
        "type": "action",
        "cart_id": exposure.cart_id,
        "at": rfc3339(exposure.at),
        "action": exposure.action,
        "group": exposure.group,
    }
    if exposure.delivered is not None:
        event["delivered"] = exposure.delivered
    return event


def _purchased_event(cart: SimulatedCart) -> dict[str, Any]:
    assert cart.purchased_at is not None
    return {
        "retailer_id": cart.retailer_id,
        "event_id": f"e-{cart.cart_id}-p",
        "type": "purchased",
        "cart_id": cart.cart_id,
        "at": rfc3339(cart.purchased_at),
    }
