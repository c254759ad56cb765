"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response

from cartpredict.api.deps import ServicesDep, blocking, json_response
from cartpredict.api.routes.docs import errors
from cartpredict.core.errors import StoreUnavailable
from cartpredict.serving.container import Services
from cartpredict.serving.schemas import HealthOut, ReadyOut
from cartpredict.storage.tables import SCHEMA_REVISION

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, summary="The process is up")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses=errors(503),
    summary="The store (and Redis, when configured) answer",
)
async def readyz(svc: ServicesDep) -> Response:
    checks = await blocking(svc, _checks, svc)
    if checks["store"] != "ok":
        details = [{"field": name, "reason": state} for name, state in checks.items()]
        raise StoreUnavailable(
            "Not ready: the store does not answer.", retry_after_s=1, details=details
        )
    return json_response({"status": "ready", "checks": checks})


def _checks(svc: Services) -> dict[str, str]:
    """Redis is optional: without it, changes still reach workers through the change feed."""
    checks: dict[str, str] = {}
    try:
        svc.store.ping()  # a store that is down says so (the revision alone would read None)
        revision = svc.store.schema_revision()
        checks["store"] = "ok" if revision == SCHEMA_REVISION else f"schema {revision}"
    except Exception as exc:
        checks["store"] = f"error: {type(exc).__name__}"
    if svc.bus is not None:
        try:
            svc.bus.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"degraded ({type(exc).__name__}): using the change feed only"
    return checks
