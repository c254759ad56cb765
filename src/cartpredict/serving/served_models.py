"""The model serving a retailer, in terms a stakeholder can read (figures over other
retailers' carts withheld, counts under k left out), its operating point (the threshold in
use for the retailer's ``precision_target``, where it came from, what it is expected to do,
and warnings), and rollback to the one before."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cartpredict.core.clock import Clock, rfc3339
from cartpredict.core.errors import Conflict
from cartpredict.models.baseline import BaselineRule
from cartpredict.models.recovery import explain
from cartpredict.models.registry import ModelRegistry, operating_point
from cartpredict.models.thresholds import OWN, OperatingPoint
from cartpredict.privacy.anonymity import K_ANONYMITY
from cartpredict.serving.cache import Tenant
from cartpredict.serving.sync import Notifier
from cartpredict.serving.tenants import Tenants
from cartpredict.storage import ABANDONMENT, POOLED_SCOPE, ModelVersion, Retailer


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
        tenant = self._tenants.load(retailer_id)
        return {**self._abandonment(tenant.retailer), "recovery": self._recovery(tenant)}

    def _recovery(self, tenant: Tenant) -> dict[str, Any]:
        """Per action of the policy in force: where its recovery rate comes from (a model
        learnt from the retailer's own control groups, the pooled one, or the prior), why,
        and what the model says in plain words."""
        retailer = tenant.retailer
        served = self._registry.recovery_version(retailer)
        latest = self._registry.latest_recovery(retailer.retailer_id)
        tried = {} if latest is None else dict(latest.model.get("actions") or {})
        serving = {} if served is None else dict(served.model.get("actions") or {})
        actions = []
        for action in tenant.policy.actions:
            model = tenant.recovery.get(action.name)
            found = tried.get(action.name)
            entry: dict[str, Any] = {"action": action.name, "channel": action.channel}
            if model is None:
                entry.update(serves="prior", prior={"recovery_rate": action.rate,
                                                    "decay_per_hour": action.decay})  # fmt: skip
                entry["why"] = _why_prior(found, action.name)
            else:
                # what the served version (not always the latest) says it serves
                pooled = served is not None and served.scope == POOLED_SCOPE
                source = (serving.get(action.name) or {}).get("source") or "own"
                entry.update(
                    serves="pooled" if pooled else source,
                    explanation=explain(
                        model, typical=retailer.typical_cart_value, currency=retailer.currency
                    ),
                    intercept=model.intercept,
                    weights=model.named_weights(),
                )
            if found is not None:
                entry["last_training"] = _counts(found)
            actions.append(entry)
        return {
            "version": None if served is None else served.version_id,
            "trained_at": None if latest is None else rfc3339(latest.created_at),
            "description": "per action, r(cart, h): the share of otherwise-lost carts it "
            "recovers when it reaches the cart h hours after the last activity, "
            "σ(intercept + weights · features); learnt from the retailer's treatment and "
            "control groups, or its channel's prior until enough carts have been measured",
            "actions": actions,
        }

    def _abandonment(self, retailer: Retailer) -> dict[str, Any]:
        retailer_id = retailer.retailer_id
        version = self._registry.served_version(retailer)
        point, point_suppressed = _shown(operating_point(version, retailer))
        if version is None:
            rule = BaselineRule()
            return {
                "retailer_id": retailer_id,
                "model_version": rule.version,
                "kind": "baseline",
                "description": rule.describe(retailer),
                "threshold": None,
                "operating_point": point.to_dict(),
                "warnings": list(point.warnings),
                "intercept": None,
                "weights": None,
                "metrics": None,
                "curves": None,
                "training_window": None,
                "n_train": 0,
                "suppressed": [],
            }
        pooled = version.scope == POOLED_SCOPE
        figures = self._pooled_figures if pooled else self._own_figures
        metrics, n_train, suppressed = figures(retailer_id, version)
        curves, hidden = _curves(version, retailer_id)
        return {
            "retailer_id": retailer_id,
            "model_version": version.version_id,
            "kind": "pooled" if pooled else "retailer",
            "description": "logistic regression on P(abandoned); weights are log-odds per unit "
            "of each feature",
            "threshold": point.threshold,
            "operating_point": point.to_dict(),
            "warnings": list(point.warnings),
            "intercept": version.model["intercept"],
            "weights": dict(version.model["weights"]),
            "metrics": None if metrics is None else _without_curves(metrics),
            "curves": curves,
            "training_window": {
                "start": rfc3339(version.train_start),
                "end": rfc3339(version.train_end),
            },
            "n_train": n_train,
            "suppressed": suppressed + hidden + point_suppressed,
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
        (``metrics["by_retailer"]``). Counts of 1 to k-1 are left out, as everywhere. (The
        operating point's figures are of the threshold served: over the member's own
        validation carts, or, from the pooled table, over steps of at least k carts and to
        the target grid's resolution, see ``models/thresholds.py``.)"""
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

    def rollback(self, retailer_id: str, kind: str = ABANDONMENT) -> dict[str, Any]:
        """Serve the retailer's previously promoted version of ``kind`` again: its
        abandonment model, or its recovery models."""
        self._tenants.load(retailer_id)  # RetailerNotFound first
        try:
            self._registry.rollback(retailer_id, at=self._clock(), kind=kind)
        except LookupError as exc:
            raise Conflict(str(exc)) from None
        self._notifier.changed(retailer_id)
        return self.info(retailer_id)


def _curves(
    version: ModelVersion, retailer_id: str
) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """The version's precision-recall curves and calibration bins, and the baseline rule's, on
    the retailer's own held-out carts (``training.curves``): of its own model, or of the
    pooled model on its carts in the pooled sample; shown over at least k test carts. None,
    without a note, for a version that kept none (trained before they were kept, or a pooled
    version with no figures over this member's carts: ``metrics`` says why)."""
    held = version.metrics
    if version.scope == POOLED_SCOPE:
        held = (version.metrics.get("by_retailer") or {}).get(retailer_id) or {}
    kept = held.get("curves")
    if kept is None:
        return None, []
    if int(held.get("n_test_carts", 0)) < K_ANONYMITY:
        reason = f"held-out curves cover fewer than {K_ANONYMITY} test carts"
        return None, [{"field": "curves", "reason": reason}]
    return dict(kept), []


def _without_curves(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The held-out figures, their curves apart (``curves``)."""
    return {key: value for key, value in metrics.items() if key != "curves"}


def _why_prior(found: Mapping[str, Any] | None, name: str) -> str:
    """Why an action keeps its prior, in words."""
    if found is None:
        return "no recovery model has been trained yet for this action"
    needs = found.get("needs") or {}
    reason = found.get("reason")
    if reason == "too_few_treated":
        return (
            f"too few treated carts to learn from: it needs {needs.get('treated')} treated "
            f"carts of which {needs.get('treated_bought')} bought; see last_training"
        )
    if reason == "too_few_control":
        return f"too few control carts to learn from: it needs {needs.get('control')}"
    if reason == "not_better":
        return (
            "the model learnt did not beat the prior on held-out carts (its Qini coefficient "
            "was not higher, or its targeting lost money), so the prior stays"
        )
    return f"{name} changed since the last training (channel or discount): a new experiment"


def _counts(found: Mapping[str, Any]) -> dict[str, Any]:
    """The last training's counts of the retailer's own carts (under k: not shown)."""
    out: dict[str, Any] = {"reason": found.get("reason")}
    for arm in ("treated", "control"):
        n = int(found.get(arm) or 0)
        out[arm] = n if n == 0 or n >= K_ANONYMITY else None
    if found.get("heldout"):
        out["heldout"] = found["heldout"]
    return out


def _shown(point: OperatingPoint) -> tuple[OperatingPoint, list[dict[str, str]]]:
    """The operating point as shown: figures over the retailer's own validation carts only
    when they are at least k carts (as its held-out metrics are)."""
    carts = point.validation_carts
    if point.source != OWN or carts is None or carts >= K_ANONYMITY:
        return point, []
    hidden = replace(point, expected_precision=None, share_called_abandoned=None,
                     abandonment_rate=None, validation_carts=None)  # fmt: skip
    reason = f"the threshold was set on fewer than {K_ANONYMITY} validation carts of yours"
    return hidden, [{"field": "operating_point", "reason": reason}]
