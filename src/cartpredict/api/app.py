"""The ASGI application: ``create_app()`` wires settings, store, cache and routes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from cartpredict import __version__
from cartpredict.api import errors
from cartpredict.api.deps import principal
from cartpredict.api.fastlane import FastLane
from cartpredict.api.limits import BodyLimit
from cartpredict.api.pages import router as pages
from cartpredict.api.ratelimit import RateLimiter, Sharing, keep
from cartpredict.api.routes import (
    docs,
    events,
    experiment,
    health,
    keys,
    metrics,
    models,
    predict,
    retailers,
    stats,
)
from cartpredict.core.clock import Clock, utcnow
from cartpredict.core.errors import SchemaOutOfDate
from cartpredict.core.settings import Settings
from cartpredict.monitoring.recorder import COUNTS_EVERY_S, FLUSH_EVERY_S
from cartpredict.monitoring.rollup import rollup_now
from cartpredict.serving.background import purge_now, repeat
from cartpredict.serving.container import Services, build_services
from cartpredict.serving.sync import ChangeFeed, FeedKeeper
from cartpredict.storage.engine import describe
from cartpredict.storage.tables import SCHEMA_REVISION

log = logging.getLogger(__name__)

DESCRIPTION = """\
Predicts, for an e-commerce cart, whether it will be purchased or abandoned in the next
24 hours. Every retailer is a tenant: its API key acts on its own data only.
Errors always have the shape `{"error": {"status", "code", "message", "details"}}`.
"""


def check_store(svc: Services) -> None:
    """Refuse to start against a database that does not answer or has an older schema."""
    try:
        svc.store.ping()
    except Exception as exc:
        raise RuntimeError(f"cannot reach the database: {exc}") from exc
    revision = svc.store.schema_revision()
    if revision != SCHEMA_REVISION:
        raise SchemaOutOfDate(
            f"database schema is at {revision or 'nothing'}, this code needs {SCHEMA_REVISION}: "
            "run `cartpredict db upgrade`"
        )
    for problem in svc.store.privilege_problems():
        log.warning(
            "%s: row-level security does not apply to it; serve with the role that "
            "`cartpredict db create-service-role` makes",
            problem,
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    svc: Services = app.state.services
    check_store(svc)
    keeper = FeedKeeper(ChangeFeed(svc.store, svc.cache), svc.store, clock=svc.clock)
    settings = svc.settings
    stop = asyncio.Event()
    jobs: list[tuple[Callable[[], object], float, str, bool]] = [  # (work, every_s, what, at_once)
        (keeper.tick, settings.sync_interval_s, "change feed poll", False),
        (partial(svc.recorder.flush, svc.store, counts_every_s=COUNTS_EVERY_S), FLUSH_EVERY_S,
         "prediction log write", False),
        (partial(rollup_now, svc.store, svc.recorder, clock=svc.clock), settings.stats_interval_s,
         "daily stats", False),
        (partial(purge_now, svc.store, settings, clock=svc.clock, metrics=svc.metrics,
                 recorder=svc.recorder), settings.purge_interval_s, "purge", True),
    ]  # fmt: skip
    tasks = [
        asyncio.create_task(repeat(work, every_s=every, stop=stop, what=what, at_once=at_once))
        for work, every, what, at_once in jobs
    ]
    listener = asyncio.create_task(svc.bus.listen(svc.cache)) if svc.bus is not None else None
    limiter: RateLimiter | None = app.state.limiter
    if limiter is not None:
        sharing = (
            Sharing(limiter, settings.redis_url, f"{settings.redis_channel}:rate:")
            if settings.redis_url
            else None
        )
        tasks.append(asyncio.create_task(keep(limiter, sharing, stop)))
    # What start-up made lives as long as the process: moved out of the collector's sight, a
    # full collection under load no longer scans it (pauses of ~50 ms gone; see the benchmark).
    gc.freeze()
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            await task
        try:
            await run_in_threadpool(svc.recorder.flush, svc.store)
        except Exception as exc:
            log.warning("%d predictions not written to the log: %s", len(svc.recorder),
                        describe(exc))  # fmt: skip
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        svc.close()


class CartPredictAPI(FastAPI):
    """The FastAPI app, entered through the fast lane, which sits in front of the framework's
    own middleware as well: a request the lane answers touches none of it."""

    entry: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.entry is None:
            await super().__call__(scope, receive, send)
        else:
            await self.entry(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None, *, clock: Clock = utcnow, fast_lane: bool = True
) -> CartPredictAPI:
    """The service. ``fast_lane=False`` leaves every request to FastAPI (for comparisons)."""
    settings = settings or Settings()
    app = CartPredictAPI(
        title="cartpredict",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,  # /docs and /redoc are served by routes/docs.py, with their assets
        redoc_url=None,
    )
    services = build_services(settings, clock)
    app.state.services = services
    errors.install(app)
    modules = (predict, events, retailers, keys, models, stats, experiment, health, metrics, docs)
    for module in modules:
        app.include_router(module.router)
    app.include_router(pages)  # the dashboard, under /app/
    app.mount(docs.ASSETS_PATH, docs.assets(), name="static")
    # Every route, as declared (the app's own list holds the included routers, not theirs).
    routes = [r for r in app.routes if hasattr(r, "path")]
    routes += [r for module in modules for r in module.router.routes] + list(pages.routes)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    limiter = None
    if settings.rate_limit_per_s > 0:
        limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst,
                              on_refused=services.metrics.rate_limited)  # fmt: skip
    app.state.limiter = limiter
    # The lane also times every request, answered by it or not, for the metrics, and turns
    # away, before their body is read, the calls over their retailer's rate limit.
    public = public_paths(routes) | docs.asset_paths()  # the pages' assets take no key either
    app.entry = FastLane(app.framework, services=services, metrics=services.metrics,
                         enabled=fast_lane, limiter=limiter, public=public,
                         routes=routes)  # fmt: skip
    return app


def public_paths(routes: list[BaseRoute]) -> set[str]:
    """The paths of the routes that take no key (health, metrics, the API's documents)."""
    return {
        getattr(route, "path", "")
        for route in routes
        if not (isinstance(route, APIRoute) and _needs_key(route.dependant))
    } - {""}


def _needs_key(dependant: Dependant) -> bool:
    return dependant.call is principal or any(_needs_key(d) for d in dependant.dependencies)
