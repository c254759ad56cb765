"""End-to-end runs: load a simulation into a store, train, and evaluate against the oracle.

The evaluation also compares decision policies by their true expected profit per 1,000 carts
(``learning/treatments.py``), on every retailer's test carts at the decision moment (1 h of
inactivity, still unbought), with no control group (every cart is evaluated under each policy):

* ``no_action``;
* ``uniform:<action>``: that action on every cart it may reach (a message only on contactable
  carts), at the decision moment (the first of the fixed timers retailers use);
* ``baseline_rule``: on the carts the baseline rule calls abandoned (value under the
  retailer's threshold), the policy's first action the cart may get, at the decision moment;
* ``product``: ``decisions.decide`` with the served model's P(purchase) over inactivity, the
  retailer's policy (its priors) and no budget, each cart contactable or not as drawn
  (``treatments.CONTACTABLE_SHARE``);
* ``oracle``: per cart, the action and send time with the highest true expected profit, or
  none (also messaging contactable carts only).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from cartpredict.decisions.decide import decide
from cartpredict.decisions.policy import NO_ACTION, Action, RecoveryPolicy
from cartpredict.learning.evaluation import (
    DecisionReport,
    EvaluationReport,
    ModelPredictions,
    evaluate,
)
from cartpredict.learning.simulate import SimulatedCart, Simulation, simulate
from cartpredict.learning.snapshots import Snapshot, snapshots, split_by_time
from cartpredict.learning.training import Outcome, Trainer
from cartpredict.learning.treatments import (
    DECISION_HOURS,
    NONE,
    Choices,
    cart_arrays,
    decision_report,
    first_allowed,
    is_contactable,
    no_action,
    oracle_choices,
    uniform_choices,
)
from cartpredict.models.base import ServedModel
from cartpredict.models.baseline import BaselineRule
from cartpredict.models.logistic import LogisticModel
from cartpredict.models.registry import ModelRegistry
from cartpredict.serving.auth import hash_key, new_api_key
from cartpredict.serving.decisions import Decider
from cartpredict.serving.events import EventService
from cartpredict.serving.policies import policy_of
from cartpredict.serving.retailers import retailer_record
from cartpredict.serving.schemas import CartIn, EventsIn, RetailerCreate
from cartpredict.serving.tenants import Tenants
from cartpredict.storage import (
    POOLED_SCOPE,
    DuplicateRetailer,
    Retailer,
    ScoredCart,
    Store,
    open_store,
)
from cartpredict.storage.migrate import upgrade

EVENT_BATCH = 5_000


def load_simulation(sim: Simulation, store: Store, *, now: datetime) -> dict[str, int]:
    """Create the simulation's retailers (keeping any that exist) and store its events.

    A new retailer is onboarded when its history starts (or ``now``, if earlier), with the
    default policy and the simulation's assignment salt, so that its simulated exposures name
    a policy in force at their time and the groups the service assigns. A retailer that
    existed keeps its salt: exposures simulated under another one are refused."""
    onboarded = min(now, sim.start)
    for config in sim.retailers:
        retailer = retailer_record(RetailerCreate.model_validate(config), onboarded)
        salt = sim.salts.get(retailer.retailer_id)
        if salt is not None:
            retailer = replace(retailer, assignment_salt=salt)
        with contextlib.suppress(DuplicateRetailer):  # already onboarded: keep its config
            store.create_retailer(retailer=retailer, key_hash=hash_key(new_api_key()))
    service = EventService(store=store, clock=lambda: now)
    retailers = {r.retailer_id: r for r in store.list_retailers()}
    by_retailer: dict[str, list[dict[str, Any]]] = {}
    for event in sim.events():
        by_retailer.setdefault(event.pop("retailer_id"), []).append(event)
    stored: dict[str, int] = {}
    for retailer_id, events in by_retailer.items():
        stored[retailer_id] = 0
        for start in range(0, len(events), EVENT_BATCH):
            batch = EventsIn.model_validate(
                {"retailer_id": retailer_id, "events": events[start : start + EVENT_BATCH]}
            )
            stored[retailer_id] += service.ingest(retailers[retailer_id], batch.events)
    return stored


def log_simulated_predictions(
    sim: Simulation,
    tenants: Tenants,
    store: Store,
    *,
    retailer_ids: Iterable[str],
    now: datetime,
    after: timedelta = timedelta(hours=1),
    decided: bool = False,
) -> int:
    """Fill the prediction log as if each retailer's site had asked, ``after`` into every
    cart's inactivity, whether to send a reminder (carts bought by then are not asked about),
    and the model serving it now had answered; with ``decided``, each with the decision the
    service would have logged (its policy now, the shopper contactable as the simulator draws
    it). Return how many predictions were logged."""
    chosen = set(retailer_ids)
    logged: list[ScoredCart] = []
    decider = Decider()
    for cart in sim.carts:
        at = cart.at + after
        if cart.retailer_id not in chosen or at > now:
            continue
        if cart.purchased_at is not None and cart.purchased_at <= at:
            continue
        tenant = tenants.load(cart.retailer_id)
        body = CartIn(retailer_id=cart.retailer_id, cart_id=cart.cart_id,
                      cart_value=cart.cart_value, item_count=cart.item_count,
                      inactivity_hours=after.total_seconds() / 3600,
                      device_type=cart.device_type, shipping_speed=cart.shipping_speed,
                      contactable=is_contactable(cart.retailer_id, cart.cart_id))  # fmt: skip
        score, curve = tenant.model.score_over_inactivity(body, tenant.retailer)
        decision = decider.decide(tenant, body, score.p_abandoned, curve) if decided else None
        logged.append(
            ScoredCart(cart.retailer_id, at, cart.cart_id, tenant.model.version,
                       score.p_abandoned, score.abandoned, cart.cart_value, cart.item_count,
                       cart.device_type, cart.shipping_speed, decision)
        )  # fmt: skip
    store.add_scored_carts(carts=logged, history=True)
    return len(logged)


def simulated_evaluation(
    *,
    retailers: int = 20,
    days: int = 14,
    seed: int = 0,
    carts_per_day: float = 150.0,
    truth: str = "logistic",
    progress: Callable[[Iterable[Any], int], Iterable[Any]] = lambda it, total: it,
) -> tuple[EvaluationReport, list[Outcome]]:
    """Simulate (``truth``: the simulator's purchase model), store in a throwaway SQLite
    database, train, and score every retailer's newest carts with the served models, the
    pooled model, the baseline and the oracle."""
    sim = simulate(retailers=retailers, days=days, seed=seed, carts_per_day=carts_per_day,
                   truth=truth)  # fmt: skip
    as_of = sim.end + timedelta(days=1)  # every 24 h window has closed
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'simulation.db'}"
        upgrade(url)
        store = open_store(url)
        try:
            load_simulation(sim, store, now=as_of)
            outcomes = Trainer(store, clock=lambda: as_of, progress=progress).run(as_of=as_of)
            report = _score(sim, store, as_of, truth)
        finally:
            store.close()
    return report, outcomes


def _score(sim: Simulation, store: Store, as_of: datetime, truth: str) -> EvaluationReport:
    registry = ModelRegistry(store)
    carts = {(c.retailer_id, c.cart_id): c for c in sim.carts}
    pooled_version = store.served_version(scope=POOLED_SCOPE)
    pooled = (
        LogisticModel.from_dict(pooled_version.model, version=pooled_version.version_id)
        if pooled_version
        else None
    )
    columns: dict[str, list[Any]] = {
        k: []
        for k in (
            *("retailer", "cart", "purchased", "served", "pooled", "baseline", "oracle"),
            *("served_abandoned", "baseline_abandoned"),
        )
    }
    weights: dict[str, dict[str, float]] = {}
    n_train = 0
    moments: list[_Moment] = []
    policies: set[RecoveryPolicy] = set()
    for retailer in store.list_retailers():
        split = split_by_time(
            snapshots(store.events(retailer_id=retailer.retailer_id), as_of=as_of)
        )
        n_train += len(split.train)
        if not split.test:
            continue
        served = registry.served_model(retailer)
        baseline = BaselineRule().fit(
            [r.cart_value for r in split.train],
            [not r.purchased for r in split.train],
            threshold=retailer.baseline_threshold,
        )
        sim_carts = [carts[(retailer.retailer_id, r.cart_id)] for r in split.test]
        levels = np.array([r.inactivity_hours for r in split.test])
        columns["oracle"] += list(sim.oracle_many(sim_carts, levels))
        policy = policy_of(retailer)
        policies.add(policy)
        moments += [
            _moment(cart, row, retailer, served, baseline, policy)
            for cart, row in zip(sim_carts, split.test, strict=True)
            if row.inactivity_hours == DECISION_HOURS
        ]
        for row in split.test:
            columns["retailer"].append(retailer.retailer_id)
            columns["cart"].append(row.cart_id)
            columns["purchased"].append(row.purchased)
            served_score = served.score(row, retailer)
            baseline_score = baseline.score(row, retailer)
            columns["served"].append(1.0 - served_score.p_abandoned)
            columns["served_abandoned"].append(served_score.abandoned)
            columns["baseline"].append(1.0 - baseline_score.p_abandoned)
            columns["baseline_abandoned"].append(baseline_score.abandoned)
            columns["pooled"].append(
                1.0 - pooled.score(row, retailer).p_abandoned if pooled else np.nan
            )
    if pooled is not None:
        weights["pooled"] = pooled.named_weights()
    purchased = np.array(columns["purchased"], dtype=bool)
    models = [
        ModelPredictions(
            "logistic (served)",
            np.array(columns["served"]),
            np.array(columns["served_abandoned"], dtype=bool),
        ),
        ModelPredictions(
            "baseline",
            np.array(columns["baseline"]),
            np.array(columns["baseline_abandoned"], dtype=bool),
        ),
        ModelPredictions("oracle", np.array(columns["oracle"]), None),
    ]
    if pooled is not None:
        models.insert(1, ModelPredictions("pooled", np.array(columns["pooled"]), None))
    if len(policies) > 1:
        raise ValueError("the decisions section needs one recovery policy for every retailer")
    return evaluate(
        purchased=purchased.astype(int),
        models=models,
        retailer_ids=np.array(columns["retailer"]),
        cart_ids=np.array(columns["cart"]),
        weights=weights,
        n_train=n_train,
        context={
            "data": "simulated",
            "truth": truth,
            "retailers": len(sim.retailers),
            "days": (sim.end - sim.start).days,
            "window": f"{sim.start:%Y-%m-%d} to {sim.end:%Y-%m-%d}",
            "split": "per retailer by time: oldest 60 % of carts train, next 20 % validate, "
            "newest 20 % test",
        },
        decisions=_decisions(sim, moments, policies.pop()) if moments else None,
    )


@dataclass(frozen=True)
class _Moment:
    """A test cart at the decision moment: the product's decision and the baseline's call."""

    cart: SimulatedCart
    action: str
    send_after_hours: float
    called_abandoned: bool


def _moment(
    cart: SimulatedCart,
    row: Snapshot,
    retailer: Retailer,
    served: ServedModel,
    baseline: BaselineRule,
    policy: RecoveryPolicy,
) -> _Moment:
    score, curve = served.score_over_inactivity(row, retailer)

    def p0_at(hours: float) -> float:
        return 1.0 - (score.p_abandoned if hours == row.inactivity_hours else curve(hours))

    decided = decide(p0_at=p0_at, value=row.cart_value, inactivity_hours=row.inactivity_hours,
                     policy=policy, policy_version=retailer.policy_version, group="treatment",
                     contactable=is_contactable(cart.retailer_id, cart.cart_id))  # fmt: skip
    return _Moment(cart, decided.action, decided.send_after_hours,
                   baseline.score(row, retailer).abandoned)  # fmt: skip


RULES = {
    "no_action": "no action on any cart",
    "baseline_rule": "on carts the baseline rule calls abandoned, the policy's first action the "
    "cart may get, at the decision moment",
    "product": "the product's decision: the served model's P(purchase) over inactivity, the "
    "policy's prior recovery rates, no budget",
    "oracle": "per cart, the action and send time with the highest true expected profit, or none",
}


def _decisions(
    sim: Simulation, moments: Sequence[_Moment], policy: RecoveryPolicy
) -> DecisionReport:
    """The decisions section: every policy's true expected profit on the same carts."""
    when = DECISION_HOURS
    carts = cart_arrays([m.cart for m in moments], sim.responsiveness)
    names = [a.name for a in policy.actions]
    product = Choices(
        np.array([NONE if m.action == NO_ACTION else names.index(m.action) for m in moments]),
        np.array([m.send_after_hours for m in moments], dtype=float),
    )
    first = first_allowed(carts, policy)
    called = np.array([m.called_abandoned for m in moments], dtype=bool)
    choices = {
        "no_action": no_action(carts, when),
        **{f"uniform:{name}": uniform_choices(carts, policy, i, decision_h=when)
           for i, name in enumerate(names)},
        "baseline_rule": Choices(np.where(called, first, NONE), np.full(len(carts), when)),
        "product": product,
        "oracle": oracle_choices(carts, policy, decision_h=when),
    }  # fmt: skip
    rules = {**RULES, **{f"uniform:{a.name}": _uniform_rule(a) for a in policy.actions}}
    return decision_report(carts, policy, choices, rules, decision_h=when)


def _uniform_rule(action: Action) -> str:
    reach = "contactable" if action.needs_consent else "open"
    return f"{action.name} on every {reach} cart, at the decision moment"
