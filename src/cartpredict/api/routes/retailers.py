"""Retailer configuration: create (operator), read, change, erase (its keys: ``keys.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from cartpredict.api.deps import (
    ManagedRetailer,
    OperatorDep,
    PrincipalDep,
    ReadRetailer,
    ServicesDep,
    blocking,
    json_response,
    tenant,
)
from cartpredict.api.routes.docs import errors
from cartpredict.serving.schemas import (
    RetailerCreate,
    RetailerCreated,
    RetailerPublic,
    RetailerUpdate,
    retailer_public,
)

router = APIRouter(tags=["retailers"])


@router.post(
    "/retailer",
    status_code=201,
    response_model=RetailerCreated,
    responses=errors(401, 403, 409, 413, 415, 422),
    summary="Create a retailer (operator key); returns its API key once",
)
async def create_retailer(spec: RetailerCreate, _: OperatorDep, svc: ServicesDep) -> Response:
    retailer, key = await blocking(svc, svc.retailers.create, spec)
    return json_response(
        retailer_public(retailer) | {"api_key": key},
        201,
        {"Location": f"/retailer/{retailer.retailer_id}"},
    )


@router.get(
    "/retailer/{retailer_id}",
    response_model=RetailerPublic,
    responses=errors(401, 403, 404),
    summary="A retailer's configuration",
)
async def get_retailer(retailer_id: ReadRetailer, svc: ServicesDep) -> Response:
    found = await tenant(svc, retailer_id)
    return json_response(retailer_public(found.retailer))


@router.patch(
    "/retailer/{retailer_id}",
    response_model=RetailerPublic,
    responses=errors(401, 403, 404, 413, 415, 422),
    summary="Change some of a retailer's configuration",
)
async def update_retailer(
    retailer_id: ManagedRetailer, changes: RetailerUpdate, caller: PrincipalDep, svc: ServicesDep
) -> Response:
    retailer = await blocking(svc, svc.retailers.update, retailer_id, changes.changes(), by=caller)
    return json_response(retailer_public(retailer))


@router.delete(
    "/retailer/{retailer_id}",
    status_code=204,
    responses=errors(401, 403, 404),
    summary="Erase a retailer and every row of its data",
)
async def delete_retailer(retailer_id: ManagedRetailer, svc: ServicesDep) -> Response:
    await blocking(svc, svc.retailers.delete, retailer_id)
    return Response(status_code=204)
