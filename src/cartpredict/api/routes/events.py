"""Cart activity and purchases in: what the models learn from."""

from __future__ import annotations

from fastapi import APIRouter, Response

from cartpredict.api.deps import EventsCaller, ServicesDep, blocking, json_response, tenant
from cartpredict.api.routes.docs import errors
from cartpredict.serving.schemas import EventsIn, EventsOut

router = APIRouter(tags=["events"])


@router.post(
    "/events",
    response_model=EventsOut,
    responses=errors(401, 403, 404, 409, 413, 415, 422),
    summary="Send cart_updated and purchased events (idempotent by event_id; all or nothing)",
)
async def post_events(batch: EventsIn, caller: EventsCaller, svc: ServicesDep) -> Response:
    caller.require_access(batch.retailer_id)
    found = await tenant(svc, batch.retailer_id)
    stored = await blocking(svc, svc.events.ingest, found.retailer, batch.events)
    received = len(batch.events)
    return json_response(
        {
            "retailer_id": batch.retailer_id,
            "received": received,
            "stored": stored,
            "duplicates": received - stored,
        }
    )
