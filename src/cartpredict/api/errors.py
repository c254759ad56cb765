"""One handler per kind of failure, all answering the one JSON error shape."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.routing import Match

from cartpredict.api.deps import json_response
from cartpredict.core.errors import (
    CartPredictError,
    InvalidInput,
    MethodNotAllowed,
    RouteNotFound,
    StoreUnavailable,
    UnsupportedMediaType,
    error_body,
    field_path,
)
from cartpredict.storage.engine import describe, unavailable

log = logging.getLogger(__name__)

OUTAGE_LOG_EVERY_S = 10.0


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return field_path(loc) or "body"


def _reason(err: dict[str, Any]) -> str:
    if err.get("type") == "json_invalid":
        detail = (err.get("ctx") or {}).get("error", "")
        return f"malformed JSON{': ' + str(detail) if detail else ''}"
    return str(err.get("msg", "invalid")).removeprefix("Value error, ")


def _detail(err: dict[str, Any]) -> dict[str, str]:
    if err.get("type") == "json_invalid":
        return {"field": "body", "reason": _reason(err)}
    return {"field": _field(err.get("loc", ())), "reason": _reason(err)}


def validation_details(errors: list[Any]) -> list[dict[str, str]]:
    return [_detail(e) for e in errors]


def invalid(errors: list[Any]) -> InvalidInput:
    details = validation_details(errors)
    first = details[0] if details else {"field": "body", "reason": "invalid"}
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return InvalidInput(f"{first['field']}: {first['reason']}{more}", details=details)


async def _app_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, CartPredictError)
    return json_response(exc.body(), exc.status, exc.headers or None)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if isinstance(exc.body, bytes) and exc.body and not _is_json(request):
        return await _app_error(request, UnsupportedMediaType())
    return await _app_error(request, invalid(list(exc.errors())))


def _is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return await _app_error(request, RouteNotFound())
    if exc.status_code == 405:
        return await _app_error(request, MethodNotAllowed(headers={"Allow": _allowed(request)}))
    if exc.status_code == 400:  # a body the framework could not parse (bad UTF-8, too deep)
        return await _app_error(request, InvalidInput.field("body", str(exc.detail)))
    body = error_body(exc.status_code, "http_error", str(exc.detail))
    return json_response(body, exc.status_code, dict(exc.headers or {}) or None)


class _OutageLog:
    """During an outage every request that needs the store fails: one warning at first, then
    at most one every ``OUTAGE_LOG_EVERY_S`` with how many were refused meanwhile."""

    def __init__(self) -> None:
        self._next = 0.0
        self._quiet = 0

    def refused(self, exc: Exception) -> None:
        now = time.monotonic()
        if now < self._next:
            self._quiet += 1
            return
        more = f" ({self._quiet} more refused since the last warning)" if self._quiet else ""
        log.warning("store unavailable, answering 503: %s%s", describe(exc), more)
        self._next, self._quiet = now + OUTAGE_LOG_EVERY_S, 0


_outage_log = _OutageLog()


async def _database_error(request: Request, exc: Exception) -> Response:
    """The store did not answer: a 503 the client may retry (``Retry-After``), not a 500.
    Any other database error is a bug, left to the handler of unexpected errors."""
    if not unavailable(exc):
        raise exc
    _outage_log.refused(exc)
    return await _app_error(request, StoreUnavailable())


def _allowed(request: Request) -> str:
    """Every method the path takes: the framework's own Allow names one route's only, and
    FastAPI makes a route per method."""
    allowed = []
    for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


async def _unexpected(_: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return json_response(CartPredictError().body(), 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(CartPredictError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(Exception, _unexpected)
