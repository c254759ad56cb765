"""Which model serves a retailer, at which threshold, and promotion history.

A retailer is served by its own promoted model; failing that, when it opted into pooled
learning, by the promoted pooled model; failing that, by the baseline rule. The threshold is
the retailer's operating point, read off the version's threshold table at the retailer's
``precision_target`` as it is now (``thresholds.py``), so a new target needs no retraining.
Promotions, rollbacks and changes of a retailer go through the store, which tells every worker
to reload (see ``sync.py``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from cartpredict.models import thresholds
from cartpredict.models.base import ServedModel
from cartpredict.models.baseline import BaselineRule
from cartpredict.models.logistic import LogisticModel
from cartpredict.models.recovery import RecoveryModel, served_models
from cartpredict.models.thresholds import OperatingPoint, ThresholdTable
from cartpredict.storage import (
    ABANDONMENT,
    POOLED_SCOPE,
    RECOVERY,
    ModelVersion,
    Promotion,
    RegistryStore,
    Retailer,
)


class ModelRegistry:
    def __init__(self, store: RegistryStore) -> None:
        self._store = store
        self._baseline = BaselineRule()
        self._pooled: dict[str, ModelVersion] = {}  # by kind, the last pooled version read

    def served_version(self, retailer: Retailer) -> ModelVersion | None:
        own = self._store.served_version(scope=retailer.retailer_id)
        if own is not None:
            return own
        if retailer.pooled_learning:
            return self._served_pooled()
        return None

    def _served_pooled(self, kind: str = ABANDONMENT) -> ModelVersion | None:
        """The pooled version of a kind, read once per version: it serves every opted-in
        retailer without a model of its own (the abandonment model holds a threshold table
        per member), so reading it for each of a thousand members would cost a thousand
        reads. A version never changes once stored; which version is served is read every
        time."""
        version_id = self._store.served_version_id(scope=POOLED_SCOPE, kind=kind)
        if version_id is None:
            return None
        known = self._pooled.get(kind)
        if known is None or known.version_id != version_id:
            known = self._store.served_version(scope=POOLED_SCOPE, kind=kind)
            if known is not None:
                self._pooled[kind] = known
        return known

    def recovery_version(self, retailer: Retailer) -> ModelVersion | None:
        """The recovery models' version serving the retailer: its own, else, when it opted
        into pooled learning, the pooled one; None: every action keeps its prior."""
        own = self._store.served_version(scope=retailer.retailer_id, kind=RECOVERY)
        if own is not None or not retailer.pooled_learning:
            return own
        return self._served_pooled(RECOVERY)

    def latest_recovery(self, retailer_id: str) -> ModelVersion | None:
        """The retailer's newest recovery version, served or not: what its last training
        found for each action."""
        versions = self._store.model_versions(scope=retailer_id, kind=RECOVERY)
        return versions[0] if versions else None

    def recovery_models(self, retailer: Retailer) -> dict[str, RecoveryModel]:
        """The learnt recovery model of each action that has one, by name."""
        version = self.recovery_version(retailer)
        return {} if version is None else served_models(version.model)

    def served_model(self, retailer: Retailer) -> ServedModel:
        """The model serving the retailer, at its operating point (resolved here, once per
        load of the retailer: a table of a hundred steps or so, read in microseconds)."""
        version = self.served_version(retailer)
        if version is None:
            return self._baseline
        kind = "pooled" if version.scope == POOLED_SCOPE else "retailer"
        model = LogisticModel.from_dict(version.model, version=version.version_id, kind=kind)
        threshold = operating_point(version, retailer).threshold
        if threshold is None or threshold == model.threshold:
            return model
        return replace(model, threshold=threshold)

    def rollback(self, scope: str, *, at: datetime, kind: str = ABANDONMENT) -> str:
        """Serve the version promoted before the current one; returns its id."""
        history = list(self._store.promotions(scope=scope, kind=kind))
        served = self._store.served_version(scope=scope, kind=kind)
        if served is None:
            raise LookupError("nothing is served, so there is nothing to roll back")
        earlier = _previous(history, served.version_id)
        if earlier is None:
            raise LookupError("no earlier promoted version to roll back to")
        self._store.set_served(scope=scope, version_id=earlier, action="rollback", at=at,
                               kind=kind)  # fmt: skip
        return earlier


def operating_point(version: ModelVersion | None, retailer: Retailer) -> OperatingPoint:
    """The threshold for the retailer's ``precision_target`` on ``version`` (None: the
    baseline rule serves), and where it comes from (see ``thresholds.py``).

    The pooled model serves a member from the member's own table when the version holds one
    (``metrics["thresholds_by_retailer"]``: training keeps one for each member with enough
    validation carts in the pooled sample), since its own carts are what it is scored on;
    every other member from the pooled table, quantised. A version without a table serves
    its stored threshold."""
    target = retailer.precision_target
    if version is None:
        return thresholds.baseline_point(target, BaselineRule().describe(retailer))
    if version.scope == POOLED_SCOPE:
        members = version.metrics.get("thresholds_by_retailer") or {}
        member = members.get(retailer.retailer_id)
        if member is not None:
            return thresholds.own_point(ThresholdTable.from_dict(member), target)
        pool = version.model.get("thresholds")
        if pool is not None:
            return thresholds.pooled_point(ThresholdTable.from_dict(pool), target)
    else:
        own = version.model.get("thresholds")
        if own is not None:
            return thresholds.own_point(ThresholdTable.from_dict(own), target)
    trained_at = (version.metrics.get("validation") or {}).get("precision_target")
    return thresholds.stored_point(float(version.model["threshold"]), target, trained_at)


def _previous(history: list[Promotion], current: str) -> str | None:
    """The version that served before ``current``: replay promotions as a stack (oldest
    first), where a rollback pops back to the version it restored."""
    stack: list[str] = []
    for entry in reversed(history):
        if entry.action in ("retire", "expire"):
            stack.clear()  # nothing before a retirement fits the retailer any more
        elif entry.action == "rollback" and entry.version_id in stack:
            del stack[stack.index(entry.version_id) + 1 :]
        else:
            stack.append(entry.version_id)
    if not stack or stack[-1] != current or len(stack) < 2:
        return None
    return stack[-2]
