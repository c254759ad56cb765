"""Does learning who responds pay? A closed loop on the simulator, one store per seed.

One simulated store (``STORE_CARTS_PER_DAY`` carts a day: about 18,200 carts in its 14 days of
history) and 21 days:

1. *Before decisions*: the store's abandonment model is trained, as the service trains it
   (``Trainer`` on a throwaway SQLite store), on the first 14 days of its carts as they go
   without any action.
2. *Days 1–14, deciding with the priors*: at 1 h of inactivity every unbought cart is decided
   by the product (``decisions.decide``: the model's P(purchase) over inactivity, the default
   policy's prior recovery rates), with exploration (``decisions.exploration``: 10 % of carts
   get a random action and send time, half of the others a random time for their message)
   and the policy's 10 % control group. The simulator answers with its *true* response
   (``learning/treatments.py``), which differs from the priors by segment and send time.
3. *Learning*: each action's recovery model is learnt from the carts decided in days 1–14
   whose 24 h window has closed (``learning/uplift.py``: treated and control carts, the send
   time as a feature), and promoted or not against the prior.
4. *Days 15–21*: every policy decides the same carts (unbought at 1 h), and is valued by its
   true expected profit per 1,000 carts (``treatments.policy_profit``): no action, each action
   on every cart it may reach, the prior-based decisions, the learnt decisions (promoted
   models, the prior for any other action) and the oracle.

Qini curves (``learning/qini.py``) rank the same days-15–21 carts, per action, by the expected
uplift each policy's model gives for the action sent at once (model, prior, oracle = the true
uplift; random is the diagonal) and sum the simulator's *true* uplift down each ranking; the
interval of the coefficient is a bootstrap over carts.

Send time: for each cart the learnt decisions send a message, the true best send time of that
action on the cart (the oracle's, on the same grid) against the learnt one.

What the loop leaves out: the carts' events pass through the service's ingestion only for the
base model; the exposures are read from the simulation (the send time with them), not from the
store, and the base model is not retrained on the treated days.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from cartpredict.decisions.decide import Decision, decide
from cartpredict.decisions.exploration import (
    DEFAULT_EXPLORE_SHARE,
    DEFAULT_TIME_SHARE,
    explore,
    send_times,
)
from cartpredict.decisions.gain import SEND_GRID
from cartpredict.decisions.policy import DEFAULT_POLICY, NO_ACTION, RecoveryPolicy
from cartpredict.learning import qini
from cartpredict.learning.simulate import Choice, SimulatedCart, Simulation, Treatment, simulate
from cartpredict.learning.training import Trainer
from cartpredict.learning.treatments import (
    DECISION_HOURS,
    NONE,
    Carts,
    Choices,
    cart_arrays,
    expected_profit,
    expected_recovered,
    is_contactable,
    no_action,
    oracle_choices,
    policy_profit,
    true_response,
    uniform_choices,
)
from cartpredict.learning.uplift import Experiment, Learnt, learn_pooled, prior_rate
from cartpredict.models.base import ServedModel
from cartpredict.models.recovery import RecoveryModel
from cartpredict.models.registry import ModelRegistry
from cartpredict.ops.experiments import load_simulation
from cartpredict.serving.schemas import CartIn
from cartpredict.storage import Retailer, open_store
from cartpredict.storage.migrate import upgrade

STORES = 8
STORE_CARTS_PER_DAY = 1300.0
HISTORY_DAYS = 14
TEST_DAYS = 7
POLICIES = ("no_action", "prior", "learnt", "true_rates", "oracle")  # and uniform:<action>


@dataclass(frozen=True)
class LoopRun:
    """One seed's closed loop."""

    seed: int
    stores: int
    history_carts: int  # the largest store's
    test_carts: int  # unbought at the decision moment, days 15–21
    learnt: dict[str, dict[str, Any]]  # per action: promoted, reason, carts, held-out figures
    profit_per_1000: dict[str, float]  # per policy
    explored_profit_per_1000: float  # the prior-based decisions with exploration, days 15–21
    qini: dict[str, dict[str, dict[str, Any]]]  # action -> model|prior|oracle -> Qini
    send_time: dict[str, Any]

    @property
    def learnt_to_oracle(self) -> float:
        return self.profit_per_1000["learnt"] / self.profit_per_1000["oracle"]

    def gain_share(self, policy: str) -> float | None:
        """(policy − no action) / (oracle − no action), of the expected profit."""
        p = self.profit_per_1000
        gain = p["oracle"] - p["no_action"]
        return None if gain <= 0 else (p[policy] - p["no_action"]) / gain

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "learnt_to_oracle": self.learnt_to_oracle,
            "gain_share": {name: self.gain_share(name) for name in self.profit_per_1000},
        }


def run(
    seed: int,
    *,
    stores: int = STORES,
    carts_per_day: float = STORE_CARTS_PER_DAY,
    explore_share: float = DEFAULT_EXPLORE_SHARE,
    time_share: float = DEFAULT_TIME_SHARE,
    policy: RecoveryPolicy = DEFAULT_POLICY,
) -> LoopRun:
    days = HISTORY_DAYS + TEST_DAYS
    opted_in = [{"pooled_learning": True}] * stores
    plain = simulate(retailers=stores, days=days, carts_per_day=carts_per_day, seed=seed,
                     fixed_size=True, configs=opted_in)  # fmt: skip
    cut = plain.start + timedelta(days=HISTORY_DAYS)
    bases = _trained_bases(plain, cut)
    salts = {rid: salt.encode() for rid, salt in plain.salts.items()}

    def by_priors(cart: SimulatedCart) -> Choice:
        base = bases[cart.retailer_id]
        decision = base.decide(cart, policy)
        greedy = (
            None if decision.action == NO_ACTION else (decision.action, decision.send_after_hours)
        )
        x = explore(salts[cart.retailer_id], cart.cart_id, base.eligible(cart, policy),
                    DECISION_HOURS, share=explore_share, greedy=greedy,
                    time_share=time_share)  # fmt: skip
        if x is not None:
            return Choice(x.action.name, x.send_after_hours)
        return Choice(decision.action, decision.send_after_hours)

    treated = simulate(retailers=stores, days=days, carts_per_day=carts_per_day, seed=seed,
                       fixed_size=True, configs=opted_in,
                       treatment=Treatment(by_priors, policy))  # fmt: skip
    pooled: dict[str, RecoveryModel | None] = {}
    learnt: dict[str, dict[str, Learnt]] = {}
    for action in policy.actions:
        experiments = {rid: _experiment(treated, rid, action.name, bases[rid], cut)
                       for rid in bases}  # fmt: skip
        pooled[action.name], learnt[action.name] = learn_pooled(
            action, experiments, margins=dict.fromkeys(experiments, policy.margin)
        )
    models: dict[str, dict[str, RecoveryModel]] = {rid: {} for rid in bases}
    for name, by in learnt.items():
        for rid, x in by.items():
            if x.served is not None:
                models[rid][name] = x.served
    pool = {name: m for name, m in pooled.items() if m is not None}
    test = [c for c in plain.carts if c.at >= cut and not _bought_by(c, DECISION_HOURS)]
    carts = cart_arrays(test, plain.responsiveness)
    names = [a.name for a in policy.actions]

    def choices_of(decide_one: Callable[[SimulatedCart], tuple[str, float]]) -> Choices:
        picked = [decide_one(c) for c in test]
        return Choices(
            np.array([NONE if a == NO_ACTION else names.index(a) for a, _ in picked]),
            np.array([h for _, h in picked], dtype=float),
        )

    def explored(cart: SimulatedCart) -> tuple[str, float]:
        choice = by_priors(cart)
        return choice.action, choice.send_after_hours

    def decided(cart: SimulatedCart, **kwargs: Any) -> tuple[str, float]:
        return _pair(bases[cart.retailer_id].decide(cart, policy, **kwargs))

    truth = _true_rates(test, carts, policy)
    when = DECISION_HOURS
    choices = {
        "no_action": no_action(carts, when),
        **{f"uniform:{n}": uniform_choices(carts, policy, i, decision_h=when)
           for i, n in enumerate(names)},
        "prior": choices_of(decided),
        "learnt": choices_of(lambda c: decided(c, models=models[c.retailer_id])),
        "pooled": choices_of(lambda c: decided(c, models=pool)),
        "true_rates": choices_of(lambda c: decided(c, rates=truth[c.retailer_id, c.cart_id])),
        "oracle": oracle_choices(carts, policy, decision_h=when),
    }  # fmt: skip
    profit = {
        name: _per_1000(policy_profit(carts, policy, c, decision_h=when))
        for name, c in choices.items()
    }
    exploring = _per_1000(policy_profit(carts, policy, choices_of(explored), decision_h=when))
    history = Counter(c.retailer_id for c in plain.carts if c.at < cut)
    return LoopRun(
        seed=seed,
        stores=stores,
        history_carts=max(history.values()),
        test_carts=len(test),
        learnt={a: _learnt_summary(pooled[a], by) for a, by in learnt.items()},
        profit_per_1000=profit,
        explored_profit_per_1000=exploring,
        qini=_qini(test, carts, bases, policy, models),
        send_time=_send_time(carts, policy, choices["learnt"]),
    )


def _trained_bases(plain: Simulation, cut: datetime) -> dict[str, _Base]:
    """Each store's abandonment model, trained by the service on its carts before ``cut``."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'loop.db'}"
        upgrade(url)
        store = open_store(url)
        try:
            history = replace(plain, carts=[c for c in plain.carts if c.at < cut], end=cut)
            load_simulation(history, store, now=cut)
            Trainer(store, clock=lambda: cut).run(as_of=cut)
            registry = ModelRegistry(store)
            return {
                r.retailer_id: _Base(registry.served_model(r), r) for r in store.list_retailers()
            }
        finally:
            store.close()


class _Base:
    """The store's served abandonment model, at the decision moment and over inactivity."""

    def __init__(self, served: ServedModel, retailer: Retailer) -> None:
        self.served = served
        self.retailer = retailer
        self._p0: dict[str, tuple[float, Callable[[float], float]]] = {}

    def p0(self, cart: SimulatedCart) -> tuple[float, Callable[[float], float]]:
        """P(purchase in the label window | unbought at the decision), now and by hour."""
        known = self._p0.get(cart.cart_id)
        if known is None:
            body = CartIn(retailer_id=cart.retailer_id, cart_id=cart.cart_id,
                          cart_value=cart.cart_value, item_count=cart.item_count,
                          inactivity_hours=DECISION_HOURS, device_type=cart.device_type,
                          shipping_speed=cart.shipping_speed)  # fmt: skip
            score, curve = self.served.score_over_inactivity(body, self.retailer)
            known = (1.0 - score.p_abandoned, curve)
            self._p0[cart.cart_id] = known
        return known

    def eligible(self, cart: SimulatedCart, policy: RecoveryPolicy) -> list[Any]:
        contactable = is_contactable(cart.retailer_id, cart.cart_id)
        return [a for a in policy.actions if contactable or not a.needs_consent]

    def decide(
        self,
        cart: SimulatedCart,
        policy: RecoveryPolicy,
        models: dict[str, RecoveryModel] | None = None,
        rates: dict[str, Callable[[float], float]] | None = None,
    ) -> Decision:
        """The product's decision at the decision moment: with the priors, the learnt
        ``models`` where given, or the given ``rates`` by send time."""
        now, curve = self.p0(cart)

        def p0_at(hours: float) -> float:
            return now if hours == DECISION_HOURS else 1.0 - curve(hours)

        if models:
            rates = {n: m.rates(cart.cart_value, cart.item_count, cart.device_type)
                     for n, m in models.items()}  # fmt: skip
        return decide(p0_at=p0_at, value=cart.cart_value, inactivity_hours=DECISION_HOURS,
                      policy=policy, policy_version=1, group="treatment",
                      contactable=is_contactable(cart.retailer_id, cart.cart_id),
                      rates=rates)  # fmt: skip


def _true_rates(
    test: list[SimulatedCart], carts: Carts, policy: RecoveryPolicy
) -> dict[tuple[str, str], dict[str, Callable[[float], float]]]:
    """Per (store, cart id) and action, the simulator's true recovery rate by send time."""
    responses = {a.name: true_response(carts, a) for a in policy.actions}
    out: dict[tuple[str, str], dict[str, Callable[[float], float]]] = {}
    for i, cart in enumerate(test):
        mine: dict[str, Callable[[float], float]] = {}
        for name, r in responses.items():
            rate, keep, best = float(r.rate[i]), 1.0 - float(r.decay[i]), float(r.receptive_h[i])
            mine[name] = partial(_decaying, rate, keep, best)
        out[cart.retailer_id, cart.cart_id] = mine
    return out


def _experiment(
    sim: Simulation, retailer_id: str, action: str, base: _Base, cut: datetime
) -> Experiment:
    """The store's carts decided the action in its history, whose label window closed by
    ``cut``, and its decided carts given no action (``uplift.Experiment``)."""
    window = timedelta(hours=24)
    exposed = {x.cart_id: x for x in sim.exposures if x.retailer_id == retailer_id}
    rows: list[tuple[SimulatedCart, Any]] = []
    for cart in sim.carts:
        if cart.retailer_id != retailer_id:
            continue
        if cart.at + window > cut or _bought_by(cart, DECISION_HOURS):
            continue
        x = exposed.get(cart.cart_id)
        if x is None or x.action == action or x.group == "control":
            rows.append((cart, x))
    rows.sort(key=lambda r: r[0].at)

    def column(get: Callable[[SimulatedCart, Any], Any], dtype: Any = float) -> np.ndarray:
        return np.array([get(c, x) for c, x in rows], dtype=dtype)

    return Experiment(
        value=column(lambda c, x: c.cart_value),
        items=column(lambda c, x: c.item_count, int),
        device=column(lambda c, x: c.device_type, str),
        send_h=column(lambda c, x: DECISION_HOURS if x is None else x.send_after_hours),
        p0=column(lambda c, x: base.p0(c)[0]),
        treated=column(lambda c, x: x is not None and x.group == "treatment", bool),
        bought=column(lambda c, x: _bought_by(c, window.total_seconds() / 3600), bool),
        randomised=column(lambda c, x: x is not None and x.action == action, bool),
    )


def _qini(
    test: list[SimulatedCart],
    carts: Carts,
    bases: dict[str, _Base],
    policy: RecoveryPolicy,
    models: dict[str, dict[str, RecoveryModel]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per action, the expected Qini curves of the days-15–21 carts it may reach, the action
    sent at the decision moment: ranked by the prior, by what the learnt decisions use (the
    store's promoted model, else the prior) and by the truth."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    when = DECISION_HOURS
    p0 = np.array([bases[c.retailer_id].p0(c)[0] for c in test])
    for action in policy.actions:
        reach = carts.contactable if action.needs_consent else np.ones(len(test), dtype=bool)
        index = np.flatnonzero(reach)
        truth = expected_recovered(carts, action, when, decision_h=when)[index]
        scores = {
            "prior": (1.0 - p0[index]) * prior_rate(action, np.full(index.size, when)),
            "oracle": truth,
        }
        prior = scores["prior"] / np.maximum(1.0 - p0[index], 1e-12)

        rate = np.array([_learnt_rate(test[i], models, action.name, float(prior[k]), when)
                         for k, i in enumerate(index.tolist())])  # fmt: skip
        scores["model"] = (1.0 - p0[index]) * rate
        out[action.name] = {}
        for name, score in scores.items():
            curve = qini.expected_curve(score, truth)

            def statistic(
                ix: np.ndarray, score: np.ndarray = score, truth: np.ndarray = truth
            ) -> float:
                return qini.coefficient(qini.expected_curve(score[ix], truth[ix]))

            ci = qini.bootstrap(statistic, index.size, resamples=100, seed=0)
            out[action.name][name] = asdict(qini.qini(curve, ci))
    return out


def _decaying(rate: float, keep: float, best: float, h: float) -> float:
    return float(rate * keep ** abs(h - best))


def _learnt_rate(
    cart: SimulatedCart,
    models: dict[str, dict[str, RecoveryModel]],
    action: str,
    prior: float,
    send_h: float,
) -> float:
    """The rate the learnt decisions use: the store's promoted model's, else the prior."""
    model = models[cart.retailer_id].get(action)
    if model is None:
        return prior
    return model.rate(cart.cart_value, cart.item_count, cart.device_type, send_h)


def _send_time(carts: Carts, policy: RecoveryPolicy, learnt: Choices) -> dict[str, Any]:
    """For the carts the learnt decisions send a message: how often the learnt send time is
    within one grid step of the true best one, and how the true best ones spread."""
    when = DECISION_HOURS
    grid = [when, *(h for h in SEND_GRID if h > when)]
    within, total, true_best = 0, 0, []
    for i, action in enumerate(policy.actions):
        if not action.needs_consent:
            continue
        mine = np.flatnonzero(learnt.action == i)
        if not mine.size:
            continue
        times = send_times(action, when)
        profits = np.column_stack([expected_profit(carts, action, h, margin=policy.margin,
                                                   decision_h=when) for h in times])  # fmt: skip
        best = np.asarray(times)[np.argmax(profits[mine], axis=1)]
        chosen = learnt.send_h[mine]
        step = np.abs(np.searchsorted(grid, best) - np.searchsorted(grid, chosen))
        within += int(np.sum(step <= 1))
        total += int(mine.size)
        true_best += best.tolist()
    hours, counts = np.unique(np.array(true_best), return_counts=True)
    return {
        "carts": total,
        "within_one_step": within / total if total else None,
        "true_best_spread": {f"{h:g}": int(k) for h, k in zip(hours, counts, strict=True)},
    }


def _learnt_summary(pooled: RecoveryModel | None, by: dict[str, Learnt]) -> dict[str, Any]:
    """The pooled model's weights, and each store's outcome."""
    return {
        "pooled": None if pooled is None else {"intercept": pooled.intercept,
                                               "weights": pooled.named_weights()},
        "stores": {
            rid: {**{k: v for k, v in asdict(x).items() if k != "served"},
                  "promoted": x.promoted}
            for rid, x in by.items()
        },
        "promoted": sum(x.promoted for x in by.values()),
    }  # fmt: skip


def _pair(decision: Decision) -> tuple[str, float]:
    return decision.action, decision.send_after_hours


def _per_1000(values: np.ndarray) -> float:
    return float(1000.0 * values.mean()) if values.size else 0.0


def _bought_by(cart: SimulatedCart, hours: float) -> bool:
    return cart.purchased_at is not None and cart.purchased_at - cart.at <= timedelta(hours=hours)
