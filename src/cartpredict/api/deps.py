"""What routes need, resolved once per request: the app's services and the caller."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, TypeVar

import anyio
import orjson
from fastapi import Depends, Request, Response
from fastapi.security import HTTPBearer

from ..auth import Principal, bearer_token
from ..cache import Tenant
from ..container import Services
from ..errors import RetailerNotFound, StoreUnavailable
from ..schemas import RETAILER_ID_PATTERN

T = TypeVar("T")


async def blocking(svc: Services, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Blocking work on the store, in a worker thread, for at most ``store_timeout_s``. A store
    that stops answering (a frozen server, a cut network: nothing a connect timeout catches)
    gets the request a 503 with ``Retry-After`` instead of a hang; the thread is left to finish
    or fail on its own, and a retried write is safe (events are idempotent by id)."""
    try:
        with anyio.fail_after(svc.settings.store_timeout_s):
            return await anyio.to_thread.run_sync(
                partial(work, *args, **kwargs), abandon_on_cancel=True
            )
    except TimeoutError:
        raise StoreUnavailable(
            "The data store did not answer in time; try again shortly."
        ) from None


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
        found = await blocking(svc, svc.auth.lookup, token)
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
    return svc.tenants.cached(retailer_id) or await blocking(svc, svc.tenants.load, retailer_id)


def json_response(
    data: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data), status_code=status_code, media_type="application/json", headers=headers
    )
