"""Wiring: one ``Services`` per process, built from ``Settings`` (used by the API and the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from cartpredict.core.clock import Clock
from cartpredict.core.settings import Settings
from cartpredict.models.registry import ModelRegistry
from cartpredict.monitoring.experiment import ExperimentService
from cartpredict.monitoring.metrics import Metrics
from cartpredict.monitoring.recorder import PredictionRecorder
from cartpredict.monitoring.stats import StatsService
from cartpredict.serving.auth import Authenticator
from cartpredict.serving.cache import TenantCache
from cartpredict.serving.events import EventService
from cartpredict.serving.keys import KeyService
from cartpredict.serving.policies import policy_of
from cartpredict.serving.predict import Predictor
from cartpredict.serving.retailers import RetailerService
from cartpredict.serving.served_models import ModelService
from cartpredict.serving.sessions import SessionService
from cartpredict.serving.sync import Notifier, RedisBus
from cartpredict.serving.tenants import Tenants
from cartpredict.storage import Store, open_store


@dataclass
class Services:
    settings: Settings
    clock: Clock
    store: Store
    cache: TenantCache
    tenants: Tenants
    auth: Authenticator
    retailers: RetailerService
    keys: KeyService
    predictor: Predictor
    events: EventService
    models: ModelService
    registry: ModelRegistry
    notifier: Notifier
    bus: RedisBus | None
    metrics: Metrics
    recorder: PredictionRecorder
    stats: StatsService
    experiment: ExperimentService
    sessions: SessionService

    def close(self) -> None:
        if self.bus is not None:
            self.bus.close()
        self.store.close()


def build_services(settings: Settings, clock: Clock) -> Services:
    store = open_store(settings.database_url)
    cache = TenantCache()
    bus = RedisBus(settings.redis_url, settings.redis_channel) if settings.redis_url else None
    notifier = Notifier(cache, bus)
    registry = ModelRegistry(store)
    tenants = Tenants(store=store, cache=cache, registry=registry)
    operator_key = settings.operator_key.get_secret_value() if settings.operator_key else None
    metrics = Metrics(cache)
    recorder = PredictionRecorder(
        clock, on_written=metrics.prediction_log_written, on_dropped=metrics.prediction_log_dropped
    )
    metrics.log_buffered.set_function(lambda: len(recorder))
    auth = Authenticator(store=store, cache=cache, operator_key=operator_key, clock=clock)
    return Services(
        settings=settings,
        clock=clock,
        store=store,
        cache=cache,
        tenants=tenants,
        auth=auth,
        retailers=RetailerService(store=store, tenants=tenants, notifier=notifier, clock=clock),
        keys=KeyService(store=store, notifier=notifier, clock=clock),
        predictor=Predictor(metrics, recorder),
        events=EventService(store=store, clock=clock),
        models=ModelService(tenants=tenants, registry=registry, notifier=notifier, clock=clock),
        registry=registry,
        notifier=notifier,
        bus=bus,
        metrics=metrics,
        recorder=recorder,
        stats=StatsService(
            store=store,
            retailer=lambda retailer_id: tenants.load(retailer_id).retailer,
            registry=registry,
            clock=clock,
            held_days=settings.aggregate_retention_days,
        ),
        experiment=ExperimentService(
            store=store,
            retailer=lambda retailer_id: tenants.load(retailer_id).retailer,
            policy=policy_of,
            clock=clock,
            held_days=settings.aggregate_retention_days,
        ),
        sessions=SessionService(store=store, auth=auth, operator_key=operator_key, clock=clock),
    )
