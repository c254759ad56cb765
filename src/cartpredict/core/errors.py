"""Every error the service reports, each carrying its HTTP status.

One JSON body for all of them::

    {"error": {"status": 422, "code": "invalid_input", "message": "...",
               "details": [{"field": "cart_value", "reason": "..."}]}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar


class CartPredictError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Internal server error."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Iterable[Mapping[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = [dict(d) for d in details]
        self.headers = dict(headers or {})
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.code, self.message, self.details)


def error_body(
    status: int, code: str, message: str, details: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, "details": details or []}}


# Parts of pydantic's error locations that name a union branch, not a field of the request.
_UNION_TAGS = frozenset({"float", "str", "constrained-str", "[key]"})
# An event's type names its branch first, or right after the event's index ("action" is also
# the name of a field, which comes last).
_EVENT_TAGS = frozenset({"cart_updated", "purchased", "action"})
_SOURCES = frozenset({"body", "query", "path", "header"})


def field_path(loc: Iterable[object]) -> str:
    """``("body", "events", 0, "cart_updated", "at")`` -> ``events.0.at``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in _SOURCES:
        parts = parts[1:]
    kept = [
        p for i, p in enumerate(parts)
        if p not in _UNION_TAGS
        and not (p in _EVENT_TAGS and i < len(parts) - 1 and (i == 0 or parts[i - 1].isdigit()))
    ]  # fmt: skip
    return ".".join(kept)


class InvalidInput(CartPredictError):
    status = 422
    code = "invalid_input"
    default_message = "The request is not valid."

    @classmethod
    def field(cls, field: str, reason: str) -> InvalidInput:
        return cls(f"{field}: {reason}", details=[{"field": field, "reason": reason}])


class Unauthorized(CartPredictError):
    status = 401
    code = "unauthorized"
    default_message = "A valid API key is required (Authorization: Bearer <key>)."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(CartPredictError):
    status = 403
    code = "forbidden"
    default_message = "This operation needs the operator key."


class MissingScope(Forbidden):
    """A retailer's key without the scope an operation needs (checked after the retailer, so
    another tenant's retailer still looks like none); or a key granting, to a key it makes, a
    scope it lacks itself."""

    code = "missing_scope"

    def __init__(self, *scopes: str, granting: bool = False) -> None:
        names = ", ".join(f"'{s}'" for s in scopes)
        plural = "s" if len(scopes) > 1 else ""
        message = (
            f"A key can grant only the scopes it has: this key lacks the {names} scope{plural}."
            if granting
            else f"This API key lacks the {names} scope{plural}, which this operation needs."
        )
        details = [{"field": "scope", "reason": f"this key lacks '{s}'"} for s in scopes]
        super().__init__(message, details=details)


class RetailerNotFound(CartPredictError):
    """Also what a key gets for another tenant's retailer: the same bytes, nothing revealed."""

    status = 404
    code = "retailer_not_found"
    default_message = "No such retailer."


class KeyNotFound(CartPredictError):
    """No live key of this id for this retailer (another retailer's key id included)."""

    status = 404
    code = "key_not_found"
    default_message = "No such API key for this retailer."


class RouteNotFound(CartPredictError):
    status = 404
    code = "not_found"
    default_message = "No such endpoint."


class MethodNotAllowed(CartPredictError):
    status = 405
    code = "method_not_allowed"
    default_message = "Method not allowed on this endpoint."

    def __init__(self, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers=headers)  # Allow: the methods it takes


class RetailerExists(CartPredictError):
    status = 409
    code = "retailer_exists"
    default_message = "A retailer with this id already exists."


class Conflict(CartPredictError):
    status = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(CartPredictError):
    status = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


class UnsupportedMediaType(CartPredictError):
    status = 415
    code = "unsupported_media_type"
    default_message = "Send the body as JSON, with the header Content-Type: application/json."


class StoreUnavailable(CartPredictError):
    status = 503
    code = "store_unavailable"
    default_message = "The data store is unavailable; nothing was written. Try again shortly."

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after_s: int = 5,
        details: Iterable[Mapping[str, str]] = (),
    ) -> None:
        super().__init__(message, details=details, headers={"Retry-After": str(retry_after_s)})


class SchemaOutOfDate(CartPredictError):
    status = 503
    code = "schema_out_of_date"
    default_message = "The database schema is not up to date: run `cartpredict db upgrade`."


class TooManyRequests(CartPredictError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests for this retailer; retry after the seconds in Retry-After."

    def __init__(self, message: str | None = None, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})
