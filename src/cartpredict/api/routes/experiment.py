"""A retailer's experiment: per action, treatment against control (k-anonymous)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from cartpredict.api.deps import ReadRetailer, ServicesDep, blocking, json_response
from cartpredict.api.routes.docs import errors
from cartpredict.monitoring.stats import MAX_DAYS
from cartpredict.serving.schemas import ExperimentOut

router = APIRouter(tags=["stats"])


@router.get(
    "/retailer/{retailer_id}/experiment",
    response_model=ExperimentOut,
    responses=errors(401, 403, 404, 422),
    summary="What each action added over its control group: purchases, margin, uplift",
)
async def get_experiment(
    retailer_id: ReadRetailer,
    svc: ServicesDep,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="Days back from today (UTC)")] = 30,
) -> Response:
    return json_response(await blocking(svc, svc.experiment.report, retailer_id, days=days))
