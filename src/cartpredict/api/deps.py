"""What routes need, resolved once per request: the app's services and the caller."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, TypeVar

import anyio
import orjson
from fastapi import Depends, Request, Response
from fastapi.security import HTTPBearer

from cartpredict.core.errors import RetailerNotFound, StoreUnavailable
from cartpredict.core.scopes import Scope
from cartpredict.serving.auth import bearer_token
from cartpredict.serving.cache import Tenant
from cartpredict.serving.container import Services
from cartpredict.serving.principal import Principal
from cartpredict.serving.schemas import RETAILER_ID_PATTERN
from cartpredict.storage.deadline import Deadline, DeadlineExceeded, within
from cartpredict.storage.engine import unavailable

T = TypeVar("T")


async def blocking(svc: Services, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Blocking work on the store, in a worker thread, for at most ``store_timeout_s``. A store
    that stops answering (a frozen server, a lock held elsewhere, a cut network) gets the request
    a 503 with ``Retry-After`` instead of a hang, and the answer tells the truth: the store's own
    deadline comes first (``storage/deadline.py``), so a 503 means nothing was written, unless
    it says otherwise because a commit was already under way."""
    limit = Deadline(svc.settings.store_timeout_s)
    call = partial(within, limit, partial(work, *args, **kwargs))
    try:
        with anyio.fail_after(svc.settings.store_timeout_s):
            return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
    except TimeoutError:
        if limit.abandon():
            raise StoreUnavailable(MAYBE_WRITTEN) from None
        raise StoreUnavailable(NOTHING_WRITTEN) from None
    except DeadlineExceeded:
        raise StoreUnavailable(MAYBE_WRITTEN if limit.committed else NOTHING_WRITTEN) from None
    except Exception as exc:
        if limit.committed and unavailable(exc):  # else the outage handler answers (and logs)
            raise StoreUnavailable(MAYBE_WRITTEN) from None
        raise


NOTHING_WRITTEN = "The data store did not answer in time; nothing was written. Try again shortly."
# Any other failure of the store leaves it to the outage handler, whose 503 says the same.
MAYBE_WRITTEN = (
    "The data store did not answer in time, after part of the change may have been written: "
    "check its state before trying again (events may be sent again safely)."
)


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(services)]

# Declares the scheme in the OpenAPI document; the check itself is ``principal`` below.
_bearer = HTTPBearer(auto_error=False, description="A retailer's API key, or the operator key")


async def principal(
    request: Request, svc: ServicesDep, _: Annotated[Any, Depends(_bearer)]
) -> Principal:
    """The caller, once its key is known and its rate limit allows the request (a request
    the fast lane has already counted is not counted again)."""
    token = bearer_token(request.headers.get("authorization"))
    found = svc.auth.cached(token)
    if found is None:
        found = await blocking(svc, svc.auth.lookup, token)
    limiter = getattr(request.app.state, "limiter", None)  # a RateLimiter, or None: no limit
    if limiter is not None:
        limiter.charge(found, request.scope)
    return found


PrincipalDep = Annotated[Principal, Depends(principal)]


async def operator(caller: PrincipalDep) -> Principal:
    caller.require_operator()
    return caller


OperatorDep = Annotated[Principal, Depends(operator)]


_RETAILER_ID = re.compile(RETAILER_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller, for an operation that needs ``scope`` on the retailers its body names."""

    principal: Principal
    scope: Scope

    def require_access(self, retailer_id: str) -> None:
        """The retailer, then the scope (``Principal.require``)."""
        self.principal.require(retailer_id, self.scope)


class Needs:
    """The caller of a route whose body names its retailers, with the scope the route needs,
    checked with each retailer it names. Every route that takes a key declares its scope in one
    of these dependencies or ``OnRetailer`` (or is the operator's alone), where a test finds it
    (``tests/api/test_keys.py``)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, caller: PrincipalDep) -> Caller:
        return Caller(caller, self.scope)


class OnRetailer:
    """The ``{retailer_id}`` of the path, once the caller may act on it with ``scope``: an
    id no retailer can have is no retailer's, answered before the store sees it (PostgreSQL
    refuses a NUL); the scope is checked after the retailer, so another tenant's retailer is
    the same 404 whatever the key may do."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, retailer_id: str, caller: PrincipalDep) -> str:
        caller.require_access(retailer_id)
        if not _RETAILER_ID.fullmatch(retailer_id):
            raise RetailerNotFound()
        caller.require_scope(self.scope)
        return retailer_id


PredictCaller = Annotated[Caller, Depends(Needs(Scope.predict))]
EventsCaller = Annotated[Caller, Depends(Needs(Scope.events))]
ReadRetailer = Annotated[str, Depends(OnRetailer(Scope.read))]
ManagedRetailer = Annotated[str, Depends(OnRetailer(Scope.manage))]


async def tenant(svc: Services, retailer_id: str) -> Tenant:
    cached = svc.tenants.cached(retailer_id)
    return cached if cached is not None else await blocking(svc, svc.tenants.load, retailer_id)


def json_response(
    data: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data), status_code=status_code, media_type="application/json", headers=headers
    )
