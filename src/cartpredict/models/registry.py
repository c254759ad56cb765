"""Which model serves a retailer, and promotion history.

A retailer is served by its own promoted model; failing that, when it opted into pooled
learning, by the promoted pooled model; failing that, by the baseline rule. Promotions and
rollbacks go through the store, which tells every worker to reload (see ``sync.py``).
"""

from __future__ import annotations

from datetime import datetime

from cartpredict.models.base import ServedModel
from cartpredict.models.baseline import BaselineRule
from cartpredict.models.logistic import LogisticModel
from cartpredict.storage import POOLED_SCOPE, ModelVersion, Promotion, RegistryStore, Retailer


class ModelRegistry:
    def __init__(self, store: RegistryStore) -> None:
        self._store = store
        self._baseline = BaselineRule()

    def served_version(self, retailer: Retailer) -> ModelVersion | None:
        own = self._store.served_version(scope=retailer.retailer_id)
        if own is not None:
            return own
        if retailer.pooled_learning:
            return self._store.served_version(scope=POOLED_SCOPE)
        return None

    def served_model(self, retailer: Retailer) -> ServedModel:
        version = self.served_version(retailer)
        if version is None:
            return self._baseline
        kind = "pooled" if version.scope == POOLED_SCOPE else "retailer"
        return LogisticModel.from_dict(version.model, version=version.version_id, kind=kind)

    def rollback(self, scope: str, *, at: datetime) -> str:
        """Serve the version promoted before the current one; returns its id."""
        history = list(self._store.promotions(scope=scope))
        served = self._store.served_version(scope=scope)
        if served is None:
            raise LookupError("nothing is served, so there is nothing to roll back")
        earlier = _previous(history, served.version_id)
        if earlier is None:
            raise LookupError("no earlier promoted version to roll back to")
        self._store.set_served(scope=scope, version_id=earlier, action="rollback", at=at)
        return earlier


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
