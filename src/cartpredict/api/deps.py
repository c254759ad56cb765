"""What routes need, resolved once per request: the app's services and the caller."""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request, Response
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from ..auth import Principal, bearer_token
from ..cache import Tenant
from ..container import Services
from ..errors import RetailerNotFound
from ..schemas import RETAILER_ID_PATTERN


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(services)]

# Declares the scheme in the OpenAPI document; the check itself is ``principal`` below.
_bearer = HTTPBearer(auto_error=False, description="A retailer's API key, or the operator key")


async def principal(
    request: Request, svc: ServicesDep, _: Annotated[Any, Depends(_bearer)]
) -> Principal:
    token = bearer_token(request.headers.get("authorization"))
    found = svc.auth.cached(token)
    if found is None:
        found = await run_in_threadpool(svc.auth.lookup, token)
    return found


PrincipalDep = Annotated[Principal, Depends(principal)]


async def operator(caller: PrincipalDep) -> Principal:
    caller.require_operator()
    return caller


OperatorDep = Annotated[Principal, Depends(operator)]


_RETAILER_ID = re.compile(RETAILER_ID_PATTERN)


async def path_retailer(retailer_id: str, caller: PrincipalDep) -> str:
    """The ``{retailer_id}`` of the path, once the caller may act on it. An id no retailer
    can have is no retailer's, answered before the store sees it (PostgreSQL refuses a NUL)."""
    caller.require_access(retailer_id)
    if not _RETAILER_ID.fullmatch(retailer_id):
        raise RetailerNotFound()
    return retailer_id


RetailerIdDep = Annotated[str, Depends(path_retailer)]


async def tenant(svc: Services, retailer_id: str) -> Tenant:
    return svc.tenants.cached(retailer_id) or await run_in_threadpool(svc.tenants.load, retailer_id)


def json_response(
    data: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data), status_code=status_code, media_type="application/json", headers=headers
    )
