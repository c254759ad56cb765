"""Use cases, knowing nothing of HTTP: retailers, their keys, and predictions.

Callers have already decided the caller may act on the retailer (see ``auth.Principal``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .auth import hash_key, new_api_key
from .cache import Tenant, TenantCache
from .clock import Clock
from .errors import InvalidInput, RetailerNotFound
from .models.registry import ModelRegistry
from .schemas import CartIn, RetailerCreate
from .storage import Retailer, Store
from .sync import Notifier


class Tenants:
    """Per-retailer serving state, from the cache or loaded from the store."""

    def __init__(self, *, store: Store, cache: TenantCache, registry: ModelRegistry) -> None:
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


class RetailerService:
    def __init__(self, *, store: Store, tenants: Tenants, notifier: Notifier, clock: Clock) -> None:
        self._store = store
        self._tenants = tenants
        self._notifier = notifier
        self._clock = clock

    def create(self, spec: RetailerCreate) -> tuple[Retailer, str]:
        """The new retailer and its API key, which is returned here and never again."""
        now = self._clock()
        retailer = Retailer(
            retailer_id=spec.retailer_id,
            requires_account=spec.requires_account,
            payment_options=tuple(spec.payment_options),
            shipping_speeds=tuple(s.value for s in spec.shipping_speeds),
            pooled_learning=spec.pooled_learning,
            precision_target=spec.precision_target,
            created_at=now,
            last_updated=now,
        )
        key = new_api_key()
        self._store.create_retailer(retailer=retailer, key_hash=hash_key(key))
        self._notifier.changed(retailer.retailer_id)
        return retailer, key

    def get(self, retailer_id: str) -> Retailer:
        return self._tenants.load(retailer_id).retailer

    def update(self, retailer_id: str, changes: Mapping[str, Any]) -> Retailer:
        values = {k: _plain(v) for k, v in changes.items()}
        retailer = self._store.update_retailer(
            retailer_id=retailer_id, changes=values, updated_at=self._clock()
        )
        if retailer is None:
            raise RetailerNotFound()
        self._notifier.changed(retailer_id)
        return retailer

    def delete(self, retailer_id: str) -> None:
        if not self._store.delete_retailer(retailer_id=retailer_id, at=self._clock()):
            raise RetailerNotFound()
        self._notifier.changed(retailer_id)

    def rotate_key(self, retailer_id: str) -> str:
        """Revoke every key of the retailer and issue a new one."""
        now = self._clock()
        if self._store.get_retailer(retailer_id=retailer_id) is None:
            raise RetailerNotFound()
        self._store.revoke_api_keys(retailer_id=retailer_id, at=now)
        key = new_api_key()
        if not self._store.add_api_key(
            retailer_id=retailer_id, key_hash=hash_key(key), created_at=now
        ):
            raise RetailerNotFound()
        self._notifier.changed(retailer_id)
        return key


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [getattr(v, "value", v) for v in value]
    return value


class Predictor:
    """Scores carts with each retailer's served model, at its operating point."""

    def predict(self, tenant: Tenant, cart: CartIn, *, field_prefix: str = "") -> dict[str, Any]:
        retailer = tenant.retailer
        speed = cart.shipping_speed.value
        if speed not in retailer.shipping_speeds:
            offered = ", ".join(retailer.shipping_speeds)
            raise InvalidInput.field(
                f"{field_prefix}shipping_speed",
                f"'{speed}' is not offered by this retailer (offered: {offered})",
            )
        model = tenant.model
        p_abandoned, abandoned = model.score(cart, retailer)
        return {
            "prediction": "abandoned" if abandoned else "purchased",
            "probability": round(p_abandoned if abandoned else 1.0 - p_abandoned, 6),
            "retailer_id": retailer.retailer_id,
            "abandonment_probability": round(p_abandoned, 6),
            "model_version": model.version,
            "threshold": model.threshold,
        }

    def predict_batch(
        self, tenants: Mapping[str, Tenant], carts: Sequence[CartIn]
    ) -> list[dict[str, Any]]:
        """All or nothing: every invalid cart is reported, by index, before any is scored."""
        results: list[dict[str, Any]] = []
        problems: list[dict[str, str]] = []
        for i, cart in enumerate(carts):
            try:
                results.append(
                    self.predict(tenants[cart.retailer_id], cart, field_prefix=f"carts.{i}.")
                )
            except InvalidInput as exc:
                problems.extend(exc.details)
        if problems:
            raise InvalidInput(f"{len(problems)} invalid cart(s)", details=problems)
        return results
