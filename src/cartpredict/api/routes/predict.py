"""Predictions: one cart, or a batch of up to 1,000 in order."""

from __future__ import annotations

from fastapi import APIRouter, Response

from cartpredict.api.deps import PredictCaller, ServicesDep, json_response, tenant
from cartpredict.api.routes.docs import errors
from cartpredict.serving.schemas import BatchIn, BatchOut, CartIn, PredictionOut

router = APIRouter(tags=["predictions"])


@router.post(
    "/predict_cart",
    response_model=PredictionOut,
    responses=errors(401, 403, 404, 413, 415, 422),
    summary="Will this cart be purchased or abandoned in the next 24 hours?",
)
async def predict_cart(cart: CartIn, caller: PredictCaller, svc: ServicesDep) -> Response:
    caller.require_access(cart.retailer_id)
    found = await tenant(svc, cart.retailer_id)
    return json_response(svc.predictor.predict(found, cart))


@router.post(
    "/predict_cart/batch",
    response_model=BatchOut,
    responses=errors(401, 403, 404, 413, 415, 422),
    summary="Score up to 1,000 carts; one prediction per cart, in order",
)
async def predict_batch(batch: BatchIn, caller: PredictCaller, svc: ServicesDep) -> Response:
    retailer_ids = sorted({cart.retailer_id for cart in batch.carts})
    for retailer_id in retailer_ids:
        caller.require_access(retailer_id)
    tenants = {rid: await tenant(svc, rid) for rid in retailer_ids}
    return json_response({"predictions": svc.predictor.predict_batch(tenants, batch.carts)})
