"""Training runs: the pooled model, then one model per retailer, each promoted only if it earns it.

* Pooled: every opted-in retailer's training carts, cart + site features. Its weights are all
  that leaves a tenant; it serves opted-in retailers that have no model of their own.
* Per retailer: that retailer's carts only, cart features + its custom attributes, shrunk
  toward the pooled weights when it opted in (toward zero otherwise).
* Each retailer's carts are split by time (oldest 60 % train, next 20 % validate: penalty and
  threshold; newest 20 % test). A candidate is promoted only when its AUC-PR (purchased) on the
  retailer's own test carts beats both the baseline rule's and the served model's.
* Too little data (fewer than ``MIN_CARTS`` training carts or ``MIN_CLASS`` rows of a class):
  no per-retailer model; the pooled model serves (if opted in), else the baseline.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from cartpredict.learning.evaluation import choose_threshold, headline
from cartpredict.learning.fit import fit_logistic, sigmoid
from cartpredict.learning.snapshots import Snapshot, Split, snapshots, split_by_time
from cartpredict.models.base import ServedModel
from cartpredict.models.baseline import BaselineRule
from cartpredict.models.features import SITE_FEATURES, FeatureSpec, site_features, spec_for
from cartpredict.models.logistic import LogisticModel
from cartpredict.models.registry import ModelRegistry
from cartpredict.monitoring import drift
from cartpredict.storage import POOLED_SCOPE, ModelVersion, Retailer, Store

MIN_CARTS = 50
MIN_CLASS = 10
PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1)
INTERACTION_FACTOR = 10.0  # pairwise products are penalised this much harder
POOLED_PRECISION_TARGET = 0.70


@dataclass(frozen=True)
class Outcome:
    scope: str
    status: str  # "promoted" | "kept" | "insufficient_data"
    version_id: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Labelled:
    """Snapshots with the retailer each came from (the pooled model mixes retailers)."""

    rows: list[Snapshot]
    retailers: list[Retailer]

    @property
    def abandoned(self) -> np.ndarray:
        return np.array([not r.purchased for r in self.rows], dtype=float)

    def matrix(self, spec: FeatureSpec) -> np.ndarray:
        width = len(spec.names())
        data = [spec.row(r, t) for r, t in zip(self.rows, self.retailers, strict=True)]
        return np.asarray(data, dtype=float).reshape(len(data), width)

    def carts(self) -> int:
        return len(
            {(t.retailer_id, r.cart_id) for r, t in zip(self.rows, self.retailers, strict=True)}
        )

    def class_counts(self) -> tuple[int, int]:
        n_abandoned = int(self.abandoned.sum())
        return n_abandoned, len(self.rows) - n_abandoned

    def window(self) -> tuple[datetime, datetime]:
        return min(r.at for r in self.rows), max(r.at for r in self.rows)


def _labelled(rows: Iterable[Snapshot], retailer: Retailer) -> Labelled:
    kept = list(rows)
    return Labelled(kept, [retailer] * len(kept))


def _concat(parts: Sequence[Labelled]) -> Labelled:
    return Labelled([r for p in parts for r in p.rows], [t for p in parts for t in p.retailers])


def _own_report(model: ServedModel, baseline: ServedModel, test: Labelled) -> dict[str, Any]:
    """The pooled model and the baseline rule on one member's own test carts."""
    return {
        "candidate": metrics(test.abandoned, _served_p(model, test)),
        "baseline": metrics(test.abandoned, _served_p(baseline, test)),
        "n_test_carts": test.carts(),
    }


def metrics(abandoned: np.ndarray, p_abandoned: np.ndarray) -> dict[str, float | None]:
    """The headline figures on one test set, from the abandoned-class arrays training uses."""
    return headline(abandoned == 0, 1.0 - p_abandoned)


def _served_p(model: ServedModel, data: Labelled) -> np.ndarray:
    return np.array(
        [model.score(r, t).p_abandoned for r, t in zip(data.rows, data.retailers, strict=True)]
    )


def _beats(candidate: float | None, other: float | None, *, strictly: bool) -> bool:
    if candidate is None:
        return False
    if other is None:
        return True
    return candidate > other if strictly else candidate >= other


class Trainer:
    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        progress: Callable[[Iterable[Retailer]], Iterable[Retailer]] = lambda it: it,
    ) -> None:
        self._store = store
        self._registry = ModelRegistry(store)
        self._clock = clock
        self._progress = progress

    # --- one run -----------------------------------------------------------------------------

    def run(
        self, *, retailer_id: str | None = None, as_of: datetime | None = None
    ) -> list[Outcome]:
        """The pooled model, then each chosen retailer's (all when ``retailer_id`` is None)."""
        as_of = as_of or self._clock()
        retailers = self._store.list_retailers()
        chosen = [r for r in retailers if retailer_id in (None, r.retailer_id)]
        if retailer_id is not None and not chosen:
            raise LookupError(retailer_id)
        splits = {r.retailer_id: self._split(r, as_of) for r in retailers if r.pooled_learning}
        outcomes = [self._train_pooled([r for r in retailers if r.pooled_learning], splits)]
        for retailer in self._progress(chosen):
            data = splits.get(retailer.retailer_id) or self._split(retailer, as_of)
            outcomes.append(self._train_retailer(retailer, data))
        return outcomes

    def train_retailer(self, retailer_id: str, *, as_of: datetime | None = None) -> Outcome:
        """Only this retailer's model, shrunk toward the pooled model that serves now."""
        retailer = self._store.get_retailer(retailer_id=retailer_id)
        if retailer is None:
            raise LookupError(retailer_id)
        return self._train_retailer(retailer, self._split(retailer, as_of or self._clock()))

    def _split(self, retailer: Retailer, as_of: datetime) -> dict[str, Labelled]:
        events = self._store.events(retailer_id=retailer.retailer_id)
        parts: Split = split_by_time(snapshots(events, as_of=as_of))
        return {
            "train": _labelled(parts.train, retailer),
            "valid": _labelled(parts.valid, retailer),
            "test": _labelled(parts.test, retailer),
        }

    # --- pooled ------------------------------------------------------------------------------

    def _train_pooled(
        self, members: Sequence[Retailer], splits: Mapping[str, Mapping[str, Labelled]]
    ) -> Outcome:
        data = {
            part: _concat([splits[r.retailer_id][part] for r in members])
            for part in ("train", "valid", "test")
        }
        if not _enough(data["train"]) or not _enough(data["valid"], carts=1):
            return Outcome(POOLED_SCOPE, "insufficient_data")
        spec = FeatureSpec(cart=True, site=True)
        model, valid_metrics = self._fit(spec, data, POOLED_PRECISION_TARGET, prior=None)
        served = self._store.served_version(scope=POOLED_SCOPE)
        test = data["test"]
        p_candidate = _served_p(model, test)
        report: dict[str, Any] = {
            "candidate": metrics(test.abandoned, p_candidate),
            "validation": valid_metrics,
            "n_test_carts": test.carts(),
        }
        if served is not None:
            current = LogisticModel.from_dict(served.model, version=served.version_id)
            report["served"] = metrics(test.abandoned, _served_p(current, test))
        baseline = BaselineRule().fit(
            [r.cart_value for r in data["train"].rows], data["train"].abandoned
        )
        report["baseline"] = metrics(test.abandoned, _served_p(baseline, test))
        # What each member may see of this model: figures over its own test carts only.
        report["by_retailer"] = {
            r.retailer_id: _own_report(model, baseline, splits[r.retailer_id]["test"])
            for r in members
            if splits[r.retailer_id]["test"].rows
        }
        promote = _beats(
            report["candidate"]["auc_pr_purchased"],
            report["baseline"]["auc_pr_purchased"],
            strictly=True,
        ) and (served is None or _beats(
            report["candidate"]["auc_pr_purchased"],
            report["served"]["auc_pr_purchased"],
            strictly=True,
        ))  # fmt: skip
        return self._record(POOLED_SCOPE, model, data["train"], report, promote)

    # --- per retailer ------------------------------------------------------------------------

    def _train_retailer(self, retailer: Retailer, data: Mapping[str, Labelled]) -> Outcome:
        scope = retailer.retailer_id
        if (
            not _enough(data["train"])
            or not _enough(data["valid"], carts=1)
            or not data["test"].rows
        ):
            return Outcome(scope, "insufficient_data")
        spec = spec_for(retailer, data["train"].rows)
        prior = self._pooled_prior(retailer, spec)
        model, valid_metrics = self._fit(spec, data, retailer.precision_target, prior=prior)
        test = data["test"]
        served = self._registry.served_model(retailer)
        baseline = BaselineRule().fit(
            [r.cart_value for r in data["train"].rows], data["train"].abandoned
        )
        report: dict[str, Any] = {
            "candidate": metrics(test.abandoned, _served_p(model, test)),
            "served": metrics(test.abandoned, _served_p(served, test)),
            "served_version": served.version,
            "baseline": metrics(test.abandoned, _served_p(baseline, test)),
            "validation": valid_metrics,
            "n_test_carts": test.carts(),
            "shrunk_toward_pooled": prior is not None,
        }
        auc = report["candidate"]["auc_pr_purchased"]
        promote = _beats(auc, report["baseline"]["auc_pr_purchased"], strictly=True) and _beats(
            auc, report["served"]["auc_pr_purchased"], strictly=True
        )
        return self._record(scope, model, data["train"], report, promote)

    def _pooled_prior(
        self, retailer: Retailer, spec: FeatureSpec
    ) -> tuple[np.ndarray, float] | None:
        """The pooled model's weights for this retailer's features (zero for its own
        attributes), and its intercept with this retailer's site features folded in."""
        if not retailer.pooled_learning:
            return None
        served = self._store.served_version(scope=POOLED_SCOPE)
        if served is None:
            return None
        pooled = LogisticModel.from_dict(served.model, version=served.version_id)
        named = pooled.named_weights()
        weights = np.array([named.get(name, 0.0) for name in spec.names()])
        site = zip(SITE_FEATURES, site_features(retailer), strict=True)
        intercept = pooled.intercept + sum(named.get(n, 0.0) * x for n, x in site)
        return weights, intercept

    # --- shared ------------------------------------------------------------------------------

    def _fit(
        self,
        spec: FeatureSpec,
        data: Mapping[str, Labelled],
        precision_target: float,
        *,
        prior: tuple[np.ndarray, float] | None,
    ) -> tuple[LogisticModel, dict[str, Any]]:
        X, y = data["train"].matrix(spec), data["train"].abandoned
        Xv, yv = data["valid"].matrix(spec), data["valid"].abandoned
        groups = np.array(spec.groups())
        best: tuple[float, float, Any] | None = None
        for penalty in PENALTIES:
            lam = np.where(groups == "interaction", penalty * INTERACTION_FACTOR, penalty)
            fitted = fit_logistic(
                X, y, penalty=lam,
                prior=None if prior is None else prior[0],
                prior_intercept=None if prior is None else prior[1],
            )  # fmt: skip
            p = np.clip(sigmoid(fitted.intercept + Xv @ fitted.weights), 1e-12, 1 - 1e-12)
            loss = float(-np.mean(yv * np.log(p) + (1 - yv) * np.log(1 - p)))
            if best is None or loss < best[0]:
                best = (loss, penalty, fitted)
        assert best is not None
        loss, penalty, fitted = best
        p_valid = sigmoid(fitted.intercept + Xv @ fitted.weights)
        threshold = choose_threshold(p_valid, yv.astype(bool), precision_target)
        model = LogisticModel(
            version=_new_version(),
            spec=spec,
            intercept=fitted.intercept,
            weights=tuple(float(w) for w in fitted.weights),
            threshold=0.5 if threshold is None else round(float(threshold), 6),
        )
        return model, {
            "log_loss": loss,
            "penalty": penalty,
            "precision_target": precision_target,
            "threshold_reaches_target": threshold is not None,
        }

    def _record(
        self,
        scope: str,
        model: LogisticModel,
        train: Labelled,
        report: dict[str, Any],
        promote: bool,
    ) -> Outcome:
        start, end = train.window()
        now = self._clock()
        report = {**report, "n_train_carts": train.carts(), "promoted": promote}
        self._store.add_model_version(
            version=ModelVersion(
                version_id=model.version,
                scope=scope,
                created_at=now,
                train_start=start,
                train_end=end,
                n_train=len(train.rows),
                threshold=model.threshold,
                metrics=report,
                model=model.to_dict(),
                profile=_profile(scope, train),
            )
        )
        if promote:
            self._store.set_served(scope=scope, version_id=model.version, action="promote", at=now)
        return Outcome(scope, "promoted" if promote else "kept", model.version, report)


def _profile(scope: str, train: Labelled) -> dict[str, Any]:
    """The training carts' histograms, for drift. The pooled model keeps one per member, so
    each retailer's drift compares its recent carts with its own share of the training carts."""
    if scope != POOLED_SCOPE:
        return drift.profile_of(train.rows)
    by_retailer: dict[str, list[Snapshot]] = {}
    for row, retailer in zip(train.rows, train.retailers, strict=True):
        by_retailer.setdefault(retailer.retailer_id, []).append(row)
    return {"by_retailer": {rid: drift.profile_of(rows) for rid, rows in by_retailer.items()}}


def _enough(data: Labelled, *, carts: int = MIN_CARTS) -> bool:
    abandoned, purchased = data.class_counts()
    return data.carts() >= carts and min(abandoned, purchased) >= (MIN_CLASS if carts > 1 else 1)


def _new_version() -> str:
    return f"m-{secrets.token_hex(6)}"
