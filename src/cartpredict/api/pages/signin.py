"""Who is looking at a page: the session named by the ``cp_session`` cookie, resolved once per
request; sign-in and sign-out cookies; CSRF checks; errors as pages rather than JSON.

The cookie holds the session's secret alone, ``HttpOnly`` (no script reads it), ``SameSite=
Strict`` (no other site's page sends it), ``Secure`` when the page came over HTTPS, limited to
``/app`` and to the session's lifetime. Every form carries the session's CSRF token, checked
before anything is done; the sign-in form, before any session exists, carries a token that a
cookie of its own must match (a double submit), so no other site can sign a browser in.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from cartpredict.api.deps import ServicesDep, blocking
from cartpredict.api.pages.render import page, root
from cartpredict.core.errors import CartPredictError, Forbidden, RetailerNotFound
from cartpredict.core.scopes import Scope
from cartpredict.serving.schemas import RETAILER_ID_PATTERN
from cartpredict.serving.sessions import SignedIn, csrf_ok

COOKIE = "cp_session"
LOGIN_COOKIE = "cp_login"  # the sign-in form's token, before any session
PATH = "/app"
MAX_SECRET = 128
_RETAILER_ID = re.compile(RETAILER_ID_PATTERN)
_NEXT = re.compile(r"^/app/[A-Za-z0-9_.\-/]*$")


class SignInNeeded(Exception):
    """No session (or one that has ended): the page sends the browser to sign in."""


@dataclass(frozen=True, slots=True)
class Visitor:
    secret: str  # the session's, from its cookie
    signed: SignedIn

    def require_csrf(self, form: dict[str, str]) -> None:
        if not csrf_ok(self.secret, form.get("csrf_token")):
            raise Forbidden(BAD_TOKEN)


BAD_TOKEN = (
    "This form's security token is missing or out of date: reload the page and submit it again."
)


async def visitor(request: Request, svc: ServicesDep) -> Visitor:
    secret = request.cookies.get(COOKIE)
    if not secret or len(secret) > MAX_SECRET:
        raise SignInNeeded()
    found = await blocking(svc, svc.sessions.resolve, secret)
    if found is None:
        raise SignInNeeded()
    limiter = getattr(request.app.state, "limiter", None)
    if limiter is not None:  # a retailer's pages count toward its rate, as its calls do
        limiter.charge(found.principal, request.scope)
    return Visitor(secret, found)


VisitorDep = Annotated[Visitor, Depends(visitor)]


async def on_retailer(retailer_id: str, who: VisitorDep) -> str:
    """The ``{retailer_id}`` of a page, once the visitor may see it: another tenant's looks
    exactly like one that does not exist (the same page, byte for byte)."""
    who.signed.principal.require(retailer_id, Scope.read)
    if not _RETAILER_ID.fullmatch(retailer_id):
        raise RetailerNotFound()
    return retailer_id


RetailerPage = Annotated[str, Depends(on_retailer)]


def set_session(response: Response, request: Request, secret: str, max_age: int) -> None:
    response.set_cookie(COOKIE, secret, max_age=max_age, path=PATH, httponly=True,
                        samesite="strict", secure=_https(request))  # fmt: skip


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict",
                           secure=_https(request))  # fmt: skip


def login_token(request: Request) -> str:
    """The sign-in form's token: the browser's own if it has one, else a new one."""
    given = request.cookies.get(LOGIN_COOKIE)
    return given if given and len(given) <= MAX_SECRET else secrets.token_urlsafe(24)


def set_login_token(response: Response, request: Request, token: str) -> None:
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path=PATH, httponly=True,
                        samesite="strict", secure=_https(request))  # fmt: skip


def login_token_ok(request: Request, given: str | None) -> bool:
    mine = request.cookies.get(LOGIN_COOKIE)
    return bool(mine and given) and secrets.compare_digest(str(mine), str(given))


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


def safe_next(target: str | None) -> str | None:
    """Where to go after signing in: a dashboard page of this service, or nowhere."""
    return target if target and _NEXT.fullmatch(target) and "//" not in target else None


def redirect(request: Request, path: str) -> RedirectResponse:
    return RedirectResponse(root(request) + path, status_code=303)


class PageRoute(APIRoute):
    """A page's route: a missing session sends the browser to sign in, and an error is a
    page (with the error's status) rather than the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded:
                target = request.url.path if request.method == "GET" else PATH + "/"
                response = redirect(request, f"{PATH}/login?next={quote(target, safe='/')}")
                if request.cookies.get(COOKIE):
                    clear_session(response, request)
                return response
            except CartPredictError as exc:
                return error_page(request, exc.status, exc.message, exc.headers)
            except RequestValidationError:
                return error_page(request, 404, NOT_FOUND)

        return handle


NOT_FOUND = "There is no such page here, or no such retailer that you may see."
TITLES = {403: "Not allowed", 404: "Not found", 429: "Too many requests",
          503: "Temporarily unavailable"}  # fmt: skip


def error_page(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The same page for the same status and message, whoever asks about whichever retailer:
    a 404 names nothing it was asked about."""
    if status == 404:
        message = NOT_FOUND
    title = TITLES.get(status, "Something went wrong")
    return page(request, "error.html", {"title": title, "message": message, "status": status},
                status_code=status, headers=headers)  # fmt: skip
