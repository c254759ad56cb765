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

The lane's work is synchronous (``admits`` looks at the head, ``answer`` at the whole body),
so the service's HTTP protocol (``ops/server.py``) takes it too, before any ASGI message or
task exists: under ``cartpredict serve`` a prediction costs the server a parse and a write
beyond this, about a third less than through the ASGI layer above (``benchmarks/README.md``).
A request the protocol tried and left to the app arrives here marked (``STARTED``) and goes
straight on, so it is neither answered nor counted twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

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
# Set in the scope of a request the protocol put to the lane already (see ``ops/server.py``):
# when it began (``time.perf_counter``); the lane hands it straight to the app.
STARTED = "cartpredict.lane_started"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer the lane gives itself: status, headers (content-type and content-length
    included) and body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class FastLane:
    path = PATH
    raw_path = PATH.encode()  # as a request line gives it

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
        started: float | None = scope.get(STARTED)  # set: the protocol left it to the app
        if started is None:
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
                    await _send(self._refusal(wait), send)
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
        authorization = self.admits(scope["headers"])
        if authorization is None:
            return None, None
        body = await _read(receive)
        if body is None:
            return CLIENT_GONE, None
        reply, charged = self.answer(authorization, body)
        if charged:
            scope[CHARGED] = True
        if reply is None:
            return None, body
        await _send(reply, send)
        return reply.status, None

    def admits(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
        """The request's ``Authorization`` when its head lets the lane take it (a JSON body of
        a sane size, each of the headers the lane reads given once), else None: the app's."""
        found: dict[bytes, bytes] = {}
        for name, value in headers:
            if name in _HEADERS:
                if name in found:  # repeated: leave the framework's rules to the framework
                    return None
                found[name] = value
        length = found.get(b"content-length", b"")
        if (
            found.get(b"content-type") != _JSON
            or not length.isdigit()
            or int(length) > self._max_body
        ):
            return None
        return found.get(b"authorization")

    def answer(self, authorization: bytes, body: bytes) -> tuple[Reply | None, bool]:
        """(the reply, whether the call was counted against its retailer's rate limit), for a
        request ``admits`` took, its whole body read. A None reply leaves the request to the
        app, which has the one definition of every error. Synchronous: the caller may be the
        HTTP protocol itself, between two reads of the socket (``ops/server.py``)."""
        token = _bearer(authorization)
        caller = self._auth.cached(token) if token else None
        if caller is None:
            return None, False
        try:
            cart = CartIn.model_validate_json(body)
        except ValidationError:
            return None, False
        # Counted here, after the checks the framework makes before its own count (the JSON
        # parses), so that both paths refuse the same requests.
        charged = False
        if self._limiter is not None and caller.retailer_id is not None:
            charged = True
            wait = self._limiter.take(caller.retailer_id)
            if wait:
                return self._refusal(wait), charged
        if caller.retailer_id is not None and (
            caller.retailer_id != cart.retailer_id or PREDICT not in caller.scopes
        ):  # the framework has the one answer: the retailer's 404 first, then the scope's 403
            return None, charged
        tenant = self._tenants.cached(cart.retailer_id)
        if tenant is None:
            return None, charged
        try:
            payload = orjson.dumps(self._predictor.predict(tenant, cart))
        except CartPredictError:
            return None, charged
        except Exception:  # a bug: logged here; the app answers (and logs) with its 500
            log.exception("fast lane failed; handing the request to the app")
            return None, charged
        return Reply(200, [(b"content-type", _JSON), (b"content-length", b"%d" % len(payload))],
                     payload), charged  # fmt: skip

    @property
    def enabled(self) -> bool:
        return self._enabled

    def hand_on(self, scope: Scope, started: float, charged: bool) -> None:
        """Mark a request that ``answer`` left to the app, for ``__call__`` to pass it on:
        when it began, and whether it was counted against its retailer's rate limit."""
        scope[STARTED] = started
        if charged:
            scope[CHARGED] = True

    def timed(self, status: int, started: float) -> None:
        """Count a request the lane answered, begun at ``started`` (``time.perf_counter``)."""
        self._metrics.request(PATH, status, time.perf_counter() - started)

    def left(self, started: float) -> None:
        """Count a request whose client went away before its whole body arrived."""
        self.timed(CLIENT_GONE, started)

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

    def _refusal(self, wait_s: float) -> Reply:
        """The framework's very answer to a call over its limit (``errors.install``)."""
        assert self._limiter is not None
        error = self._limiter.refusal(wait_s)
        response = json_response(error.body(), error.status, error.headers)
        return Reply(response.status_code, response.raw_headers, bytes(response.body))

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


async def _send(reply: Reply, send: Send) -> None:
    await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
    await send({"type": "http.response.body", "body": reply.body})


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
