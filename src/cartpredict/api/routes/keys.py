"""A retailer's API keys: list, issue, rotate with a grace period, revoke one. All of it needs
the ``manage`` scope, and a key grants at most the scopes it has (``serving/keys.py``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Response

from cartpredict.api.deps import ManagedRetailer, PrincipalDep, ServicesDep, blocking, json_response
from cartpredict.api.routes.docs import errors
from cartpredict.core.clock import rfc3339
from cartpredict.serving.keys import IssuedKey
from cartpredict.serving.schemas import (
    ApiKeyOut,
    KeyCreate,
    KeyRotate,
    KeyRotated,
    KeysOut,
    key_public,
)

router = APIRouter(tags=["keys"])


@router.get(
    "/retailer/{retailer_id}/keys",
    response_model=KeysOut,
    responses=errors(401, 403, 404),
    summary="The retailer's live keys: id, name, scopes, expiry (never a secret)",
)
async def list_keys(retailer_id: ManagedRetailer, svc: ServicesDep) -> Response:
    found = await blocking(svc, svc.keys.keys_of, retailer_id)
    return json_response({"retailer_id": retailer_id, "keys": [key_public(k) for k in found]})


@router.post(
    "/retailer/{retailer_id}/keys",
    status_code=201,
    response_model=ApiKeyOut,
    responses=errors(401, 403, 404, 409, 413, 415, 422),
    summary="Issue a key. Without a body: a new default key with every scope, revoking all "
    "earlier ones; with one, a named key with some scopes, beside the others",
)
async def issue_key(
    retailer_id: ManagedRetailer,
    caller: PrincipalDep,
    svc: ServicesDep,
    spec: KeyCreate | None = None,
) -> Response:
    if spec is None:
        issued = await blocking(svc, svc.keys.replace_all, retailer_id, granter=caller.scopes)
    else:
        issued = await blocking(svc, svc.keys.issue, retailer_id, name=spec.name,
                                scopes=spec.scopes, replace=spec.replace,
                                granter=caller.scopes)  # fmt: skip
    return json_response(_shown(retailer_id, issued), 201)


@router.post(
    "/retailer/{retailer_id}/keys/{key_id}/rotate",
    status_code=201,
    response_model=KeyRotated,
    responses=errors(401, 403, 404, 409, 413, 415, 422),
    summary="A new secret for the key (a new key id, the same name and scopes); the old one "
    "works for grace_seconds more",
)
async def rotate_key(
    retailer_id: ManagedRetailer,
    key_id: str,
    caller: PrincipalDep,
    svc: ServicesDep,
    spec: KeyRotate | None = None,
) -> Response:
    grace = timedelta(seconds=(spec or KeyRotate()).grace_seconds)
    issued, ends = await blocking(svc, svc.keys.rotate, retailer_id, key_id, grace=grace,
                                  granter=caller.scopes)  # fmt: skip
    replaced = {"key_id": key_id, "expires_at": rfc3339(ends)}
    return json_response(_shown(retailer_id, issued) | {"replaced": replaced}, 201)


@router.delete(
    "/retailer/{retailer_id}/keys/{key_id}",
    status_code=204,
    responses=errors(401, 403, 404),
    summary="Revoke one key (at once, in every worker within the sync bound)",
)
async def revoke_key(retailer_id: ManagedRetailer, key_id: str, svc: ServicesDep) -> Response:
    await blocking(svc, svc.keys.revoke, retailer_id, key_id)
    return Response(status_code=204)


def _shown(retailer_id: str, issued: IssuedKey) -> dict[str, Any]:
    return {"retailer_id": retailer_id, "api_key": issued.secret} | key_public(issued.key)
