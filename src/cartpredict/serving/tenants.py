"""Per-retailer serving state: a retailer's config and served model, from the in-process cache
or loaded from the store."""

from __future__ import annotations

from typing import Protocol

from cartpredict.core.errors import RetailerNotFound
from cartpredict.models.registry import ModelRegistry
from cartpredict.serving.cache import Tenant, TenantCache
from cartpredict.storage import PredictionStore, RetailerStore


class TenantStore(RetailerStore, PredictionStore, Protocol):
    """A retailer's configuration, and its budget's cut-off."""


class Tenants:
    """Per-retailer serving state, from the cache or loaded from the store."""

    def __init__(self, *, store: TenantStore, cache: TenantCache, registry: ModelRegistry) -> None:
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
        tenant = Tenant(
            retailer=retailer,
            model=self._registry.served_model(retailer),
            budget=self._store.budget_cutoff(retailer_id=retailer_id),
            learnt=self._registry.recovery_models(retailer),
        )
        self._cache.put_tenant(tenant, generation=generation)
        return tenant
