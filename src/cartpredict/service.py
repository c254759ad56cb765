"""Use cases, knowing nothing of HTTP: retailers, their keys, and predictions.

Callers have already decided the caller may act on the retailer (see ``auth.Principal``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from .auth import hash_key, new_api_key
from .cache import Tenant, TenantCache
from .clock import Clock, rfc3339
from .errors import Conflict, InvalidInput, RetailerExists, RetailerNotFound
from .metrics import Metrics
from .models.baseline import BaselineRule
from .models.registry import ModelRegistry
from .recorder import PredictionRecorder
from .schemas import CartIn, CartUpdated, Purchased, RetailerCreate
from .settings import K_ANONYMITY
from .storage import (
    POOLED_SCOPE,
    DuplicateRetailer,
    EventConflict,
    EventStore,
    KeyStore,
    ModelVersion,
    NoSuchRetailer,
    RegistryStore,
    Retailer,
    RetailerStore,
    StoredEvent,
)
from .sync import Notifier


class Tenants:
    """Per-retailer serving state, from the cache or loaded from the store."""

    def __init__(
        self, *, store: RetailerStore, cache: TenantCache, registry: ModelRegistry
    ) -> None:
        self._store = store
        self._cache = cache
        self._registry = registry

    def cached(self, retailer_id: str) -> Tenant | None:
        return self._cache.tenant(retailer_id)

    def load(self, retailer_id: str) -> Tenant:
        """Blocking: reads the store on a cache miss. RetailerNotFound if there is none."""
        tenant = self._cache.tenant(retailer_id)
        if tenant is not None:
            return tenant
        generation = self._cache.generation(retailer_id)
        retailer = self._store.get_retailer(retailer_id=retailer_id)
        if retailer is None:
            raise RetailerNotFound()
        tenant = Tenant(retailer=retailer, model=self._registry.served_model(retailer))
        self._cache.put_tenant(tenant, generation=generation)
        return tenant


def retailer_record(spec: RetailerCreate, now: datetime) -> Retailer:
    return Retailer(
        retailer_id=spec.retailer_id,
        requires_account=spec.requires_account,
        payment_options=tuple(spec.payment_options),
        shipping_speeds=tuple(s.value for s in spec.shipping_speeds),
        pooled_learning=spec.pooled_learning,
        precision_target=spec.precision_target,
        created_at=now,
        last_updated=now,
        attributes=tuple((a.name, a.kind.value) for a in spec.attributes),
    )


class RetailerAdminStore(RetailerStore, KeyStore, RegistryStore, Protocol):
    """Onboarding, changing, rotating and erasing retailers."""


class RetailerService:
    def __init__(
        self, *, store: RetailerAdminStore, tenants: Tenants, notifier: Notifier, clock: Clock
    ) -> None:
        self._store = store
        self._tenants = tenants
        self._notifier = notifier
        self._clock = clock

    def create(self, spec: RetailerCreate) -> tuple[Retailer, str]:
        """The new retailer and its API key, which is returned here and never again."""
        retailer = retailer_record(spec, self._clock())
        key = new_api_key()
        try:
            self._store.create_retailer(retailer=retailer, key_hash=hash_key(key))
        except DuplicateRetailer:
            raise RetailerExists() from None
        self._notifier.changed(retailer.retailer_id)
        return retailer, key

    def get(self, retailer_id: str) -> Retailer:
        return self._tenants.load(retailer_id).retailer

    def update(self, retailer_id: str, changes: Mapping[str, Any]) -> Retailer:
        """Apply the changes. New custom attributes retire the retailer's own model (it was
        trained on the old ones): the pooled model or the baseline serves until it retrains."""
        values = dict(changes)
        now = self._clock()
        before = self._store.get_retailer(retailer_id=retailer_id)
        retailer = self._store.update_retailer(
            retailer_id=retailer_id, changes=values, updated_at=now
        )
        if retailer is None or before is None:
            raise RetailerNotFound()
        if retailer.attributes != before.attributes:
            self._store.retire_served(scope=retailer_id, at=now)
        self._notifier.changed(retailer_id)
        return retailer

    def delete(self, retailer_id: str) -> None:
        if not self._store.delete_retailer(retailer_id=retailer_id, at=self._clock()):
            raise RetailerNotFound()
        self._notifier.changed(retailer_id)

    def rotate_key(self, retailer_id: str) -> str:
        """Revoke every key of the retailer and issue a new one (atomically: after concurrent
        rotations, only the last one's key is valid)."""
        key = new_api_key()
        if not self._store.replace_api_keys(
            retailer_id=retailer_id, key_hash=hash_key(key), at=self._clock()
        ):
            raise RetailerNotFound()
        self._notifier.changed(retailer_id)
        return key


def cart_problems(retailer: Retailer, cart: Any, prefix: str = "") -> list[dict[str, str]]:
    """What in a cart (request or event) the retailer's configuration does not allow."""
    problems: list[dict[str, str]] = []
    speed = str(cart.shipping_speed)
    if speed not in retailer.shipping_speeds:
        offered = ", ".join(retailer.shipping_speeds)
        problems.append(
            {
                "field": f"{prefix}shipping_speed",
                "reason": f"'{speed}' is not offered by this retailer (offered: {offered})",
            }
        )
    if not cart.attributes:
        return problems
    kinds = retailer.attribute_kinds()
    for name, value in cart.attributes.items():
        field = f"{prefix}attributes.{name}"
        kind = kinds.get(name)
        if kind is None:
            problems.append({"field": field, "reason": "not an attribute this retailer declared"})
        elif kind == "numeric" and isinstance(value, str):
            problems.append({"field": field, "reason": "declared numeric: send a number"})
        elif kind == "categorical" and not isinstance(value, str):
            problems.append({"field": field, "reason": "declared categorical: send a string"})
    return problems


class EventService:
    """Cart activity and purchases in: validated whole, stored once per event id."""

    FUTURE_TOLERANCE = timedelta(minutes=5)

    def __init__(self, *, store: EventStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def problems(
        self, retailer: Retailer, events: Sequence[CartUpdated | Purchased], prefix: str = "events."
    ) -> list[dict[str, str]]:
        """What the retailer's configuration or the clock rules out, by event index."""
        now = self._clock()
        problems: list[dict[str, str]] = []
        first: dict[str, CartUpdated | Purchased] = {}
        for i, event in enumerate(events):
            seen = first.setdefault(event.event_id, event)
            if seen is not event and seen != event:  # the same id for two different events
                reason = "repeats the event_id of an earlier, different event in this batch"
                problems.append({"field": f"{prefix}{i}.event_id", "reason": reason})
            if event.at > now + self.FUTURE_TOLERANCE:
                problems.append({"field": f"{prefix}{i}.at", "reason": "is in the future"})
            if isinstance(event, CartUpdated):
                problems += cart_problems(retailer, event, f"{prefix}{i}.")
        return problems

    def ingest(self, retailer: Retailer, events: Sequence[CartUpdated | Purchased]) -> int:
        """Store the batch (all or nothing); return how many events were new."""
        now = self._clock()
        problems = self.problems(retailer, events)
        if problems:
            raise InvalidInput(f"{len(problems)} problem(s) in the batch; nothing was stored",
                               details=problems)  # fmt: skip
        stored = [_stored(event, now) for event in events]
        try:
            return self._store.add_events(
                retailer_id=retailer.retailer_id, events=stored, incarnation=retailer.created_at
            )
        except NoSuchRetailer:
            raise RetailerNotFound() from None
        except EventConflict as exc:
            conflicting = set(exc.event_ids)
            details = [
                {"field": f"events.{i}.event_id",
                 "reason": f"'{e.event_id}' is stored already with another payload"}
                for i, e in enumerate(events) if e.event_id in conflicting
            ]  # fmt: skip
            raise Conflict(
                f"{len(conflicting)} event id(s) already stored with a different event: an "
                "event id names one event; nothing was stored",
                details=details,
            ) from None


def _stored(event: CartUpdated | Purchased, received_at: datetime) -> StoredEvent:
    at = event.at
    if isinstance(event, Purchased):
        return StoredEvent(event.event_id, "purchased", event.cart_id, at, received_at)
    return StoredEvent(
        event_id=event.event_id,
        type="cart_updated",
        cart_id=event.cart_id,
        at=at,
        received_at=received_at,
        cart_value=event.cart_value,
        item_count=event.item_count,
        device_type=event.device_type.value,
        shipping_speed=event.shipping_speed.value,
        attributes=dict(event.attributes),
    )


class Predictor:
    """Scores carts with each retailer's served model, at its operating point; counts them
    (metrics) and logs them for the daily stats (recorder)."""

    def __init__(
        self, metrics: Metrics | None = None, recorder: PredictionRecorder | None = None
    ) -> None:
        self._metrics = metrics
        self._recorder = recorder

    def predict(self, tenant: Tenant, cart: CartIn) -> dict[str, Any]:
        out = self._score(tenant, cart, "")
        if self._metrics is not None:
            self._metrics.predicted(tenant.model.kind)
        if self._recorder is not None:
            self._record(cart, out)
        return out

    def predict_batch(
        self, tenants: Mapping[str, Tenant], carts: Sequence[CartIn]
    ) -> list[dict[str, Any]]:
        """All or nothing: every invalid cart is reported, by index, before any is scored."""
        results: list[dict[str, Any]] = []
        problems: list[dict[str, str]] = []
        for i, cart in enumerate(carts):
            try:
                results.append(self._score(tenants[cart.retailer_id], cart, f"carts.{i}."))
            except InvalidInput as exc:
                problems.extend(exc.details)
        if problems:
            raise InvalidInput(f"{len(problems)} invalid cart(s)", details=problems)
        if self._metrics is not None:
            kinds = Counter(tenants[cart.retailer_id].model.kind for cart in carts)
            for kind, n in kinds.items():
                self._metrics.predicted(kind, n)
        if self._recorder is not None:
            for cart, out in zip(carts, results, strict=True):
                self._record(cart, out)
        return results

    def _record(self, cart: CartIn, out: Mapping[str, Any]) -> None:
        assert self._recorder is not None
        self._recorder.record(
            cart.retailer_id, cart.cart_id, out["model_version"],
            out["abandonment_probability"], out["prediction"] == "abandoned",
            cart.cart_value, cart.item_count, cart.device_type, cart.shipping_speed,
        )  # fmt: skip

    def _score(self, tenant: Tenant, cart: CartIn, field_prefix: str) -> dict[str, Any]:
        retailer = tenant.retailer
        problems = cart_problems(retailer, cart, field_prefix)
        if problems:
            raise InvalidInput(
                problems[0]["field"] + ": " + problems[0]["reason"], details=problems
            )
        model = tenant.model
        p_abandoned, abandoned = model.score(cart, retailer)
        out: dict[str, Any] = {
            "prediction": "abandoned" if abandoned else "purchased",
            "probability": round(p_abandoned if abandoned else 1.0 - p_abandoned, 6),
            "retailer_id": retailer.retailer_id,
            "abandonment_probability": round(p_abandoned, 6),
            "model_version": model.version,
            "threshold": model.threshold,
        }
        if cart.explain:
            explain = getattr(model, "contributions", None)
            out["contributions"] = (
                {k: round(v, 6) for k, v in explain(cart, retailer).items()} if explain else None
            )
        return out


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
                "description": f"abandoned when cart_value < {rule.value_threshold:g}",
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
