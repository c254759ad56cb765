"""The model serving a retailer, in terms a stakeholder can read (figures over other
retailers' carts withheld, counts under k left out), and rollback to the one before."""

from __future__ import annotations

from typing import Any

from cartpredict.core.clock import Clock, rfc3339
from cartpredict.core.errors import Conflict
from cartpredict.models.baseline import BaselineRule
from cartpredict.models.registry import ModelRegistry
from cartpredict.privacy.anonymity import K_ANONYMITY
from cartpredict.serving.sync import Notifier
from cartpredict.serving.tenants import Tenants
from cartpredict.storage import POOLED_SCOPE, ModelVersion


class ModelService:
    """What serves a retailer, in terms a stakeholder can read; rollback."""

    def __init__(
        self, *, tenants: Tenants, registry: ModelRegistry, notifier: Notifier, clock: Clock
    ) -> None:
        self._tenants = tenants
        self._registry = registry
        self._notifier = notifier
        self._clock = clock

    def info(self, retailer_id: str) -> dict[str, Any]:
        retailer = self._tenants.load(retailer_id).retailer
        version = self._registry.served_version(retailer)
        if version is None:
            rule = BaselineRule()
            return {
                "retailer_id": retailer_id,
                "model_version": rule.version,
                "kind": "baseline",
                "description": f"abandoned when cart_value < {rule.threshold_for(retailer):g} "
                f"{retailer.currency}",
                "threshold": None,
                "intercept": None,
                "weights": None,
                "metrics": None,
                "training_window": None,
                "n_train": 0,
                "suppressed": [],
            }
        pooled = version.scope == POOLED_SCOPE
        figures = self._pooled_figures if pooled else self._own_figures
        metrics, n_train, suppressed = figures(retailer_id, version)
        return {
            "retailer_id": retailer_id,
            "model_version": version.version_id,
            "kind": "pooled" if pooled else "retailer",
            "description": "logistic regression on P(abandoned); weights are log-odds per unit "
            "of each feature",
            "threshold": version.threshold,
            "intercept": version.model["intercept"],
            "weights": dict(version.model["weights"]),
            "metrics": metrics,
            "training_window": {
                "start": rfc3339(version.train_start),
                "end": rfc3339(version.train_end),
            },
            "n_train": n_train,
            "suppressed": suppressed,
        }

    @staticmethod
    def _own_figures(
        retailer_id: str, version: ModelVersion
    ) -> tuple[dict[str, Any] | None, int | None, list[dict[str, str]]]:
        """A retailer's own model: every figure is over its own carts; held-out metrics are
        shown over at least k test carts."""
        if int(version.metrics.get("n_test_carts", 0)) >= K_ANONYMITY:
            return dict(version.metrics), version.n_train, []
        reason = f"held-out figures cover fewer than {K_ANONYMITY} test carts"
        return None, version.n_train, [{"field": "metrics", "reason": reason}]

    @staticmethod
    def _pooled_figures(
        retailer_id: str, version: ModelVersion
    ) -> tuple[dict[str, Any] | None, int | None, list[dict[str, str]]]:
        """The pooled model is fitted on every member's carts. Its weights, intercept and
        threshold are what crosses tenants; of its figures a retailer sees only those computed
        on its own carts: its share of the training rows (from the member's training profile)
        and held-out metrics on its own test carts, where the version holds them per member
        (``metrics["by_retailer"]``). Counts of 1 to k-1 are left out, as everywhere."""
        k = K_ANONYMITY
        others = "pooled model: figures over other retailers' carts are not shown"
        suppressed: list[dict[str, str]] = []
        own = (version.metrics.get("by_retailer") or {}).get(retailer_id)
        metrics = dict(own) if own and int(own.get("n_test_carts", 0)) >= k else None
        if metrics is None:
            why = others if own is None else f"{others}; yours cover fewer than {k} test carts"
            suppressed.append({"field": "metrics", "reason": why})
        members = (version.profile or {}).get("by_retailer")
        mine = None if members is None else members.get(retailer_id, {}).get("cart_value", [])
        n_train = None if mine is None else sum(mine)  # one count per training row
        if n_train is None or 0 < n_train < k:
            n_train = None
            why = others if members is None else f"{others}; yours are fewer than {k} rows"
            suppressed.append({"field": "n_train", "reason": why})
        else:
            why = "pooled model: counts the training rows of your carts only"
            suppressed.append({"field": "n_train", "reason": why})
        return metrics, n_train, suppressed

    def rollback(self, retailer_id: str) -> dict[str, Any]:
        self._tenants.load(retailer_id)  # RetailerNotFound first
        try:
            self._registry.rollback(retailer_id, at=self._clock())
        except LookupError as exc:
            raise Conflict(str(exc)) from None
        self._notifier.changed(retailer_id)
        return self.info(retailer_id)
