"""The model serving a retailer: version, weights by feature, metrics, operating point (threshold
for its precision target, where it came from, warnings); rollback."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from cartpredict.api.deps import ManagedRetailer, ReadRetailer, ServicesDep, blocking, json_response
from cartpredict.api.routes.docs import errors
from cartpredict.serving.schemas import ModelOut

router = APIRouter(tags=["models"])


@router.get(
    "/retailer/{retailer_id}/model",
    response_model=ModelOut,
    responses=errors(401, 403, 404),
    summary="The model serving this retailer, explained",
)
async def get_model(retailer_id: ReadRetailer, svc: ServicesDep) -> Response:
    return json_response(await blocking(svc, svc.models.info, retailer_id))


@router.post(
    "/retailer/{retailer_id}/model/rollback",
    response_model=ModelOut,
    responses=errors(401, 403, 404, 409),
    summary="Serve the previously promoted version again",
)
async def rollback_model(
    retailer_id: ManagedRetailer,
    svc: ServicesDep,
    kind: Annotated[
        Literal["abandonment", "recovery"],
        Query(description="The abandonment model, or the recovery models of the decisions"),
    ] = "abandonment",
) -> Response:
    return json_response(await blocking(svc, svc.models.rollback, retailer_id, kind))
