"""Databases for the benchmark: many retailers, each with its key and its served model.

The SQLite database goes through the product's own pipeline: retailers onboarded through the
service (which issues their keys), a simulated week of cart events stored, every model trained
and promoted (or not) by the trainer. The PostgreSQL database receives a copy of what serving
reads (retailers, key hashes, served model versions) through the same ``Store`` interface.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from cartpredict.core.clock import utcnow
from cartpredict.core.settings import Settings
from cartpredict.learning.simulate import simulate
from cartpredict.learning.training import Trainer
from cartpredict.ops.experiments import load_simulation
from cartpredict.ops.loadtest import Target
from cartpredict.serving.auth import hash_key
from cartpredict.serving.container import Services, build_services
from cartpredict.serving.schemas import RetailerCreate
from cartpredict.storage import POOLED_SCOPE, Store
from cartpredict.storage.migrate import upgrade


@dataclass
class Seeded:
    targets: list[Target]
    served: Counter[str]  # retailers by the kind of model that serves them
    carts: int
    seconds: float


def seed(url: str, *, retailers: int, days: int, carts_per_day: float, seed: int = 1) -> Seeded:
    started = utcnow()
    upgrade(url)
    svc = build_services(Settings(database_url=url), utcnow)
    try:
        now = utcnow().replace(microsecond=0)
        sim = simulate(
            retailers=retailers,
            days=days,
            carts_per_day=carts_per_day,
            seed=seed,
            start=now - timedelta(days=days),
        )
        targets = []
        for config in sim.retailers:
            retailer, key = svc.retailers.create(RetailerCreate.model_validate(config))
            targets.append(Target(retailer.retailer_id, key, retailer.shipping_speeds))
        load_simulation(sim, svc.store, now=now)
        Trainer(svc.store, clock=svc.clock).run()
        served = _served_kinds(svc)
    finally:
        svc.close()
    seconds = (utcnow() - started).total_seconds()
    return Seeded(targets, served, len(sim.carts), seconds)


def copy_serving_state(source_url: str, target_url: str, targets: list[Target]) -> None:
    """Retailers, their keys and their served models, from one database into another."""
    upgrade(target_url)
    source = build_services(Settings(database_url=source_url), utcnow)
    target = build_services(Settings(database_url=target_url), utcnow)
    try:
        keys = {t.retailer_id: t.key for t in targets}
        for retailer in source.store.list_retailers():
            target.store.create_retailer(
                retailer=retailer, key_hash=hash_key(keys[retailer.retailer_id])
            )
        scopes = [POOLED_SCOPE, *keys]
        for scope in scopes:
            _copy_served(source.store, target.store, scope)
    finally:
        source.close()
        target.close()


def _copy_served(source: Store, target: Store, scope: str) -> None:
    version = source.served_version(scope=scope)
    if version is None:
        return
    target.add_model_version(version=version)
    target.set_served(
        scope=scope, version_id=version.version_id, action="promote", at=version.created_at
    )


def _served_kinds(svc: Services) -> Counter[str]:
    return Counter(svc.registry.served_model(r).kind for r in svc.store.list_retailers())
