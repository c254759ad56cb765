"""The fast lane: ``POST /predict_cart`` answered without the web framework.

A prediction for a cached retailer is a header lookup, a SHA-256, one pydantic validation of
the raw JSON, a dot product of a few dozen numbers and one orjson dump: tens of microseconds.
Routing, dependency injection and response models would cost ten times that (see
``benchmarks/README.md``). So this thin ASGI layer sits in front of the FastAPI app and answers
the common case itself: a JSON body of a sane size, a key already in the cache, a valid cart
for a retailer already loaded. Everything else (no or unknown key, bad JSON, a cache miss, a
cart the retailer's configuration rules out, other routes) is replayed, byte for byte, to the
FastAPI app, which has the one definition of every error. The answers are therefore the same
either way; ``tests/test_fastlane.py`` checks it, request by request.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..container import Services
from ..errors import CartPredictError
from ..metrics import OTHER_ROUTE, Metrics
from ..schemas import CartIn

PATH = "/predict_cart"
MAX_FAST_BODY = 64 * 1024  # one cart is a few hundred bytes; larger bodies take the full path
_JSON_HEADERS = [(b"content-type", b"application/json")]


class FastLane:
    def __init__(
        self, app: ASGIApp, *, services: Services, metrics: Metrics, enabled: bool = True
    ) -> None:
        self.app = app
        self._enabled = enabled
        self._auth = services.auth
        self._tenants = services.tenants
        self._predictor = services.predictor
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if scope["path"] == PATH and scope["method"] == "POST" and self._enabled:
            answered, body = await self._predict(scope, receive, send)
            if answered:
                self._metrics.request(PATH, 200, time.perf_counter() - started)
                return
            if body is not None:
                receive = _replay(body, receive)
        status = await self._full(scope, receive, send)
        route = getattr(scope.get("route"), "path", OTHER_ROUTE)
        self._metrics.request(route, status, time.perf_counter() - started)

    async def _full(self, scope: Scope, receive: Receive, send: Send) -> int:
        """The FastAPI app; returns the status it answered."""
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, sending)
        return status

    async def _predict(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[bool, bytes | None]:
        """(True, None) once answered; else (False, the body if it was read) for the full app."""
        authorization = content_type = length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
        if (
            content_type != b"application/json"
            or authorization is None
            or length is None
            or not length.isdigit()
            or int(length) > MAX_FAST_BODY
        ):
            return False, None
        body = await _read(receive)
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False, body
        caller = self._auth.cached(token.strip())
        if caller is None:
            return False, body
        try:
            cart = CartIn.model_validate_json(body)
        except ValidationError:
            return False, body
        if caller.retailer_id is not None and caller.retailer_id != cart.retailer_id:
            return False, body
        tenant = self._tenants.cached(cart.retailer_id)
        if tenant is None:
            return False, body
        try:
            out: dict[str, Any] = self._predictor.predict(tenant, cart)
        except CartPredictError:
            return False, body
        except Exception:  # a bug: let the framework answer, log and count it as a 500
            return False, body
        self._metrics.predicted(tenant.model.kind)
        payload = orjson.dumps(out)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        return True, None


async def _read(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the already-read body first."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
