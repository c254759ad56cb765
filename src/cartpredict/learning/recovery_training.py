"""Training who responds: every retailer's recovery models, pooled where it opted in, into
the registry.

For each action of each retailer's policy in force, its experiment over the raw window
(``responses.py``: the carts decided in the last 14 days whose 24-hour outcome is known) goes
to ``uplift.learn_pooled``, pooled with the other opted-in retailers that have the same
action (same name, channel and discount). A retailer not opted in learns from its own carts
alone, and its carts take no part in any pool.

Each retailer gets a new recovery version (``kind: recovery`` in the registry) that records,
per action, the model it serves (its own, or the pool's) or why the action keeps its prior
(too few treated or control carts, or no better than the prior on held-out carts), with its
cross-fitted figures on the randomised carts (``heldout``: the Qini coefficients and, where
each 5 % step covers at least k carts, the Qini curves, of the model and of what it was
compared with: the channel's prior, or the pooled model). The
version is promoted when at least one action serves a learnt model; otherwise the version
served before (if any) goes on serving and the new one is kept as the record of the attempt,
which the model info reports. Each pool's model is a version of the pooled scope, served to
opted-in retailers that have no version of their own. Rollback and retention are the
registry's, as for the abandonment models.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from cartpredict.decisions.policy import Action, RecoveryPolicy, in_force
from cartpredict.learning import qini, uplift
from cartpredict.learning.responses import OUTCOME_WINDOW, ResponseStore, experiments
from cartpredict.learning.uplift import Experiment, Learnt
from cartpredict.models.recovery import RecoveryModel
from cartpredict.storage import POOLED_SCOPE, RECOVERY, ModelVersion, RegistryStore

RAW_WINDOW = timedelta(days=14)

Offer = tuple[str, str, float]  # (action name, channel, discount): what a pool shares


class RecoveryStore(ResponseStore, RegistryStore, Protocol):
    """What training recovery models needs of the store."""


@dataclass(frozen=True)
class RecoveryOutcome:
    scope: str
    status: str  # promoted | kept | prior
    version: str
    actions: Mapping[str, Mapping[str, Any]]


def train_recovery(
    store: RecoveryStore, *, as_of: datetime, clock: Callable[[], datetime]
) -> list[RecoveryOutcome]:
    """Learn, store and promote every retailer's recovery models (module docstring)."""
    start, end = as_of - RAW_WINDOW, as_of - OUTCOME_WINDOW
    policies: dict[str, RecoveryPolicy] = {}
    by_offer: dict[Offer, dict[str, Experiment]] = defaultdict(dict)
    actions: dict[Offer, Action] = {}
    opted_in: set[str] = set()
    margins: dict[str, float] = {}
    for retailer in store.list_retailers():
        rid = retailer.retailer_id
        policy = in_force(retailer.recovery_policy, retailer.currency)
        policies[rid] = policy
        margins[rid] = policy.margin
        if retailer.pooled_learning:
            opted_in.add(rid)
        found = experiments(store, retailer, policy, start=start, end=end)
        for action in policy.actions:
            offer = _offer(action)
            by_offer[offer][rid] = found[action.name]
            actions.setdefault(offer, action)
    learnt: dict[str, dict[str, Learnt]] = defaultdict(dict)
    pools: dict[Offer, tuple[RecoveryModel, int]] = {}
    for offer, data in sorted(by_offer.items()):
        pooled, by_retailer = uplift.learn_pooled(
            actions[offer], data, opted_in=opted_in, margins=margins
        )
        if pooled is not None:
            members = sum(1 for rid in data if rid in opted_in)
            pools[offer] = (pooled, members)
        for rid, x in by_retailer.items():
            learnt[rid][offer[0]] = x
    now = clock()
    window = (start, end)
    out = [_record(store, rid, learnt[rid], policies[rid], window, now) for rid in policies]
    pooled_outcome = _record_pools(store, pools, window, now)
    return out + ([pooled_outcome] if pooled_outcome is not None else [])


def _summary(x: Learnt, action: Action) -> dict[str, Any]:
    served = x.served  # (learnt for this offer: its name, channel and discount)
    source = None if served is None else ("pooled" if x.reason == "pooled" else "own")
    return {
        "served": None if served is None else served.to_dict(),
        "source": source,
        "reason": x.reason,
        "treated": x.treated,
        "control": x.control,
        "needs": {
            "treated": uplift.MIN_TREATED,
            "treated_bought": uplift.MIN_TREATED_BOUGHT,
            "control": uplift.MIN_CONTROL,
        },
        "penalty": x.penalty,
        "heldout": None
        if x.heldout_qini is None
        else {
            "qini": x.heldout_qini,
            "qini_prior": x.heldout_qini_prior,
            "loglik": x.heldout_loglik,
            "loglik_prior": x.heldout_loglik_prior,
            "profit": x.heldout_profit,
            "profit_prior": x.heldout_profit_prior,
            "compared_with": x.compared_with,
            **_qini_curve(x),
        },
        "channel": action.channel,
        "discount": action.discount,
    }


def _qini_curve(x: Learnt) -> dict[str, Any]:
    """The cross-fitted Qini curves of the model and of what it was compared with, where
    ``learn`` kept them (each 5 % step over at least k randomised carts)."""
    if x.heldout_qini_curve is None or x.heldout_qini_curve_prior is None:
        return {}
    shares = [round(i / (qini.POINTS - 1), 2) for i in range(qini.POINTS)]
    return {"qini_curve": {"shares": shares,
                           "model": list(x.heldout_qini_curve),
                           "prior": list(x.heldout_qini_curve_prior)}}  # fmt: skip


def _offer(action: Action) -> Offer:
    return (action.name, action.channel, action.discount)


def _record(
    store: RecoveryStore,
    rid: str,
    learnt: Mapping[str, Learnt],
    policy: RecoveryPolicy,
    window: tuple[datetime, datetime],
    now: datetime,
) -> RecoveryOutcome:
    summary = {a.name: _summary(learnt[a.name], a) for a in policy.actions if a.name in learnt}
    serving = any(s["served"] is not None for s in summary.values())
    n = sum(int(s["treated"]) + int(s["control"]) for s in summary.values())
    version = _store_version(store, rid, summary, window, n, now)
    if serving:
        store.set_served(scope=rid, version_id=version, action="promote", at=now, kind=RECOVERY)
        status = "promoted"
    else:
        status = "kept" if store.served_version_id(scope=rid, kind=RECOVERY) else "prior"
    return RecoveryOutcome(rid, status, version, summary)


def _record_pools(
    store: RecoveryStore,
    pools: Mapping[Offer, tuple[RecoveryModel, int]],
    window: tuple[datetime, datetime],
    now: datetime,
) -> RecoveryOutcome | None:
    """The pooled models, one per action name (where two pools share a name, the one of
    more members)."""
    if not pools:
        return None
    chosen: dict[str, tuple[RecoveryModel, int]] = {}
    for (name, _, _), (model, members) in sorted(pools.items()):
        if name not in chosen or members > chosen[name][1]:
            chosen[name] = (model, members)
    summary = {
        name: {"served": model.to_dict(), "source": "pooled", "reason": "promoted",
               "members": members, "channel": model.channel, "discount": model.discount}
        for name, (model, members) in chosen.items()
    }  # fmt: skip
    version = _store_version(store, POOLED_SCOPE, summary, window, 0, now)
    store.set_served(scope=POOLED_SCOPE, version_id=version, action="promote", at=now,
                     kind=RECOVERY)  # fmt: skip
    return RecoveryOutcome(POOLED_SCOPE, "promoted", version, summary)


def _store_version(
    store: RecoveryStore,
    scope: str,
    summary: Mapping[str, Any],
    window: tuple[datetime, datetime],
    n: int,
    now: datetime,
) -> str:
    version = f"r-{secrets.token_hex(6)}"
    store.add_model_version(
        version=ModelVersion(
            version_id=version,
            scope=scope,
            created_at=now,
            train_start=window[0],
            train_end=window[1],
            n_train=n,
            threshold=None,
            metrics={},
            model={"kind": RECOVERY, "actions": dict(summary)},
            kind=RECOVERY,
        )
    )
    return version
