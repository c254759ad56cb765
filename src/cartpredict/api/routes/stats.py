"""A retailer's daily aggregates: volume, predictions, realised outcomes, drift (k-anonymous)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from cartpredict.api.deps import ReadRetailer, ServicesDep, blocking, json_response
from cartpredict.api.routes.docs import errors
from cartpredict.monitoring.stats import MAX_DAYS
from cartpredict.serving.schemas import StatsOut

router = APIRouter(tags=["stats"])


@router.get(
    "/retailer/{retailer_id}/stats",
    response_model=StatsOut,
    responses=errors(401, 403, 404, 422),
    summary="Carts scored per day, their outcomes, realised precision and recall, and drift",
)
async def get_stats(
    retailer_id: ReadRetailer,
    svc: ServicesDep,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="Days back from today (UTC)")] = 30,
) -> Response:
    return json_response(await blocking(svc, svc.stats.report, retailer_id, days=days))
