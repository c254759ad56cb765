"""Prometheus metrics: aggregate counts and latencies, no cart data (see ``metrics.py``): with
several workers, the whole server's, whichever worker answers the scrape."""

from __future__ import annotations

from fastapi import APIRouter, Response

from cartpredict.api.deps import ServicesDep
from cartpredict.monitoring.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Request counts and latencies by route and status, predictions by model kind",
)
async def metrics(svc: ServicesDep) -> Response:
    return Response(svc.metrics.exposition(), media_type=CONTENT_TYPE)
