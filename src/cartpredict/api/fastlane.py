"""The fast lane: ``POST /predict_cart`` answered without the web framework.

A prediction for a cached retailer is a header lookup, a SHA-256, one pydantic validation of
the raw JSON, a dot product of a few dozen numbers and one orjson dump: tens of microseconds.
Routing, dependency injection and response models would cost ten times that (see
``benchmarks/README.md``). So this thin ASGI layer sits in front of the FastAPI app and answers
the common case itself: a JSON body of a sane size, a key already in the cache, a valid cart
for a retailer already loaded. Everything else (no or unknown key, a key without the ``predict``
scope, bad JSON, a cache miss, a cart the retailer's configuration rules out, other routes) is
replayed, byte for byte, to the FastAPI app, which has the one definition of every error. The
answers are therefore the same either way; ``tests/api/test_fastlane.py`` checks it, request by
request.

Every request enters here, so the lane also times them all for the metrics, and turns away
a call over its retailer's rate limit (``ratelimit.py``) before its body is read: a flood of
large batches costs a header lookup each, not a parse. A request it counted is marked in its
scope, and the framework path does not count it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence

import orjson
from pydantic import ValidationError
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cartpredict.api.deps import json_response
from cartpredict.api.ratelimit import CHARGED, RateLimiter
from cartpredict.core.errors import CartPredictError
from cartpredict.core.scopes import Scope as KeyScope
from cartpredict.monitoring.metrics import OTHER_ROUTE, Metrics
from cartpredict.serving.container import Services
from cartpredict.serving.schemas import CartIn

PATH = "/predict_cart"
PREDICT = KeyScope.predict.value  # the scope the route needs (``routes/predict.py``)
MAX_FAST_BODY = 64 * 1024  # one cart is a few hundred bytes; larger bodies take the full path
CLIENT_GONE = 499  # recorded (never sent) when the client disconnects mid-request
_JSON = b"application/json"
_HEADERS = (b"authorization", b"content-type", b"content-length")

log = logging.getLogger(__name__)


class FastLane:
    def __init__(
        self,
        app: ASGIApp,
        *,
        services: Services,
        metrics: Metrics,
        enabled: bool = True,
        limiter: RateLimiter | None = None,
        public: Collection[str] = (),
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        """``public``: the paths that take no key (never limited); ``routes``: the app's, to
        name the route of a request refused here in the metrics."""
        self.app = app
        self._enabled = enabled
        self._limiter = limiter
        self._public = frozenset(public)
        self._routes = routes
        self._auth = services.auth
        self._tenants = services.tenants
        self._predictor = services.predictor
        self._metrics = metrics
        self._max_body = min(MAX_FAST_BODY, services.settings.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if self._enabled and scope["path"] == PATH and scope["method"] == "POST":
            status, body = await self._predict(scope, receive, send)
            if status is not None:
                self._metrics.request(PATH, status, time.perf_counter() - started)
                return
            if body is not None:
                receive = _replay(body, receive)
        elif self._enabled and self._limiter is not None and scope["path"] not in self._public:
            wait = self._over_limit(scope)
            if wait:
                await self._refuse(wait, scope, receive, send)
                self._metrics.request(self._route(scope), 429, time.perf_counter() - started)
                return
        status = 500  # unless the app starts a response
        answered = False

        async def sending(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            # The framework re-raises an error after its handler has logged it and answered
            # 500; raised further, the server would log it a second time.
            if not (answered and status == 500):
                raise
        finally:  # an error the app re-raises after its 500 is counted too
            route = getattr(scope.get("route"), "path", OTHER_ROUTE)
            self._metrics.request(route, status, time.perf_counter() - started)

    async def _predict(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[int | None, bytes | None]:
        """(status, None) once answered; else (None, the body if it was read) for the app."""
        found: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _HEADERS:
                if name in found:  # repeated: leave the framework's rules to the framework
                    return None, None
                found[name] = value
        length = found.get(b"content-length", b"")
        authorization = found.get(b"authorization")
        if (
            found.get(b"content-type") != _JSON
            or authorization is None
            or not length.isdigit()
            or int(length) > self._max_body
        ):
            return None, None
        body = await _read(receive)
        if body is None:
            return CLIENT_GONE, None
        token = _bearer(authorization)
        caller = self._auth.cached(token) if token else None
        if caller is None:
            return None, body
        try:
            cart = CartIn.model_validate_json(body)
        except ValidationError:
            return None, body
        # Counted here, after the checks the framework makes before its own count (the JSON
        # parses), so that both paths refuse the same requests.
        if self._limiter is not None and caller.retailer_id is not None:
            scope[CHARGED] = True
            wait = self._limiter.take(caller.retailer_id)
            if wait:
                await self._refuse(wait, scope, receive, send)
                return 429, None
        if caller.retailer_id is not None and (
            caller.retailer_id != cart.retailer_id or PREDICT not in caller.scopes
        ):  # the framework has the one answer: the retailer's 404 first, then the scope's 403
            return None, body
        tenant = self._tenants.cached(cart.retailer_id)
        if tenant is None:
            return None, body
        try:
            payload = orjson.dumps(self._predictor.predict(tenant, cart))
        except CartPredictError:
            return None, body
        except Exception:  # a bug: logged here; the app answers (and logs) with its 500
            log.exception("fast lane failed; handing the request to the app")
            return None, body
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", _JSON), (b"content-length", b"%d" % len(payload))],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        return 200, None

    def _over_limit(self, scope: Scope) -> float:
        """Seconds until the caller may call again (0.0: now), for a key already in the cache;
        any other caller is left to the framework path's count."""
        assert self._limiter is not None
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is not None:  # repeated: the framework's rules apply
                    return 0.0
                authorization = value
        token = _bearer(authorization) if authorization is not None else None
        caller = self._auth.cached(token) if token else None
        if caller is None or caller.retailer_id is None:
            return 0.0
        scope[CHARGED] = True
        return self._limiter.take(caller.retailer_id)

    async def _refuse(self, wait_s: float, scope: Scope, receive: Receive, send: Send) -> None:
        """The framework's very answer to a call over its limit (``errors.install``)."""
        assert self._limiter is not None
        error = self._limiter.refusal(wait_s)
        await json_response(error.body(), error.status, error.headers)(scope, receive, send)

    def _route(self, scope: Scope) -> str:
        for route in self._routes:
            if route.matches(scope)[0] is Match.FULL:
                return getattr(route, "path", OTHER_ROUTE)
        return OTHER_ROUTE


def _bearer(authorization: bytes) -> str | None:
    """The token of ``Bearer <token>`` (as ``auth.bearer_token`` reads it), or None."""
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def _read(receive: Receive) -> bytes | None:
    """The whole body, or None if the client went away first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
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
