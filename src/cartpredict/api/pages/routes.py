"""The dashboard's pages: sign in and out, the operator's retailer picker, and per retailer its
Overview, Targeting, Model, Experiments and Settings. Thin, as the API's routes are: each page
calls the service its endpoint calls, and ``figures.py`` puts the answer into words."""

from __future__ import annotations

import hashlib
import math
from functools import cache
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from cartpredict.api.deps import ServicesDep, blocking, tenant
from cartpredict.api.pages import curves, figures
from cartpredict.api.pages.forms import CHANNEL_CHOICES, SettingsForm, parse_body
from cartpredict.api.pages.render import page
from cartpredict.api.pages.signin import (
    COOKIE,
    PATH,
    PageRoute,
    RetailerPage,
    SignInNeeded,
    Visitor,
    VisitorDep,
    clear_session,
    login_token,
    login_token_ok,
    redirect,
    safe_next,
    set_login_token,
    set_session,
    visitor,
)
from cartpredict.core.errors import Forbidden, InvalidInput, MissingScope, Unauthorized
from cartpredict.core.scopes import Scope
from cartpredict.monitoring.stats import MAX_DAYS

router = APIRouter(prefix=PATH, route_class=PageRoute, include_in_schema=False)
STYLESHEET = "app.css"

Days = Annotated[int, Query(ge=1, le=MAX_DAYS)]
TABS = (("", "Overview"), ("targeting", "Targeting"), ("model", "Model"),
        ("experiments", "Experiments"), ("settings", "Settings"))  # fmt: skip


def _context(who: Visitor, retailer_id: str | None, tab: str, title: str) -> dict[str, object]:
    return {"who": who.signed, "retailer_id": retailer_id, "tab": tab, "tabs": TABS,
            "title": title, "windows": figures.WINDOWS}  # fmt: skip


@router.get(f"/static/{STYLESHEET}")
async def stylesheet(request: Request) -> Response:
    css, etag = _stylesheet()
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(css, media_type="text/css; charset=utf-8", headers=headers)


@cache
def _stylesheet() -> tuple[bytes, str]:
    css = (files("cartpredict.api.pages") / "static" / STYLESHEET).read_bytes()
    return css, f'"{hashlib.sha256(css).hexdigest()[:32]}"'


@router.get("")
async def app_root(request: Request) -> Response:
    return redirect(request, PATH + "/")


@router.get("/")
async def home(request: Request, who: VisitorDep, svc: ServicesDep) -> Response:
    """A retailer's session goes to its Overview; the operator picks a retailer."""
    principal = who.signed.principal
    if principal.retailer_id is not None:
        return redirect(request, f"{PATH}/{principal.retailer_id}/")
    retailers = await blocking(svc, svc.store.list_retailers)
    return page(request, "picker.html", {**_context(who, None, "", "Retailers"),
                                         "retailers": retailers})  # fmt: skip


@router.get("/login")
async def login_form(request: Request, svc: ServicesDep, next: str | None = None) -> Response:
    secret = request.cookies.get(COOKIE)
    if secret and await blocking(svc, svc.sessions.resolve, secret) is not None:
        return redirect(request, safe_next(next) or PATH + "/")
    return _login_page(request, next=safe_next(next), problem=None)


def _login_page(request: Request, *, next: str | None, problem: str | None,
                status_code: int = 200) -> Response:  # fmt: skip
    token = login_token(request)
    context = {"title": "Sign in", "token": token, "next": next, "problem": problem}
    response = page(request, "login.html", context, status_code=status_code)
    set_login_token(response, request, token)
    return response


@router.post("/login")
async def login(request: Request, svc: ServicesDep) -> Response:
    form = parse_body(await request.body())
    if not login_token_ok(request, form.get("csrf_token")):
        raise Forbidden("This sign-in form is out of date: reload the page and sign in again.")
    next = safe_next(form.get("next"))
    key = form.get("api_key", "").strip()
    try:
        if not key:
            raise Unauthorized()
        secret, signed = await blocking(svc, svc.sessions.open, key)
    except Unauthorized:
        return _login_page(
            request,
            next=next,
            status_code=401,
            problem="This key does not work: check it, or ask for a new one.",
        )
    except MissingScope:
        return _login_page(request, next=next, status_code=403,
                           problem="This key may not read the dashboard: sign in with a key "
                           "that has the ‘read’ scope.")  # fmt: skip
    response = redirect(request, next or PATH + "/")
    seconds = math.ceil((signed.expires_at - svc.clock()).total_seconds())
    set_session(response, request, secret, max(seconds, 1))
    return response


@router.post("/logout")
async def logout(request: Request, svc: ServicesDep) -> Response:
    form = parse_body(await request.body())
    try:
        who = await visitor(request, svc)
    except SignInNeeded:
        return redirect(request, PATH + "/login")
    who.require_csrf(form)
    await blocking(svc, svc.sessions.close, who.secret)
    response = redirect(request, PATH + "/login")
    clear_session(response, request)
    return response


@router.get("/{retailer_id}/")
async def overview(
    request: Request, retailer_id: RetailerPage, who: VisitorDep, svc: ServicesDep,
    days: Days = 30,
) -> Response:  # fmt: skip
    stats = await blocking(svc, svc.stats.report, retailer_id, days=days)
    experiment = await blocking(svc, svc.experiment.report, retailer_id, days=days)
    found = await tenant(svc, retailer_id)
    return page(request, "overview.html", {
        **_context(who, retailer_id, "", "Overview"), "days": days, "stats": stats,
        "experiment": experiment, "actions": figures.action_results(experiment),
        "trend": figures.trend(stats), "currency": found.retailer.currency,
        "kind": found.model.kind,
    })  # fmt: skip


@router.get("/{retailer_id}/targeting")
async def targeting(
    request: Request, retailer_id: RetailerPage, who: VisitorDep, svc: ServicesDep,
    days: Days = 30,
) -> Response:  # fmt: skip
    stats = await blocking(svc, svc.stats.report, retailer_id, days=days)
    found = await tenant(svc, retailer_id)
    bands = figures.bands(stats, found)
    return page(request, "targeting.html", {
        **_context(who, retailer_id, "targeting", "Targeting"), "days": days, "stats": stats,
        "bands": bands, "reach": figures.reach_table(bands),
        "chart": figures.distribution_chart(bands, found.model.threshold),
        "retailer": found.retailer,
        "policy": found.policy, "threshold": found.model.threshold,
    })  # fmt: skip


@router.get("/{retailer_id}/model")
async def model(
    request: Request, retailer_id: RetailerPage, who: VisitorDep, svc: ServicesDep
) -> Response:
    info = await blocking(svc, svc.models.info, retailer_id)
    stats = await blocking(svc, svc.stats.report, retailer_id, days=MAX_DAYS)
    found = await tenant(svc, retailer_id)
    weights = figures.weights(info)
    compared, test_carts = figures.against_rule(info)
    what_ifs = figures.what_ifs(found, info) if info["kind"] != "baseline" else []
    rule = curves.rule_words(found.retailer.baseline_threshold, found.retailer.currency)
    return page(request, "model.html", {
        **_context(who, retailer_id, "model", "Model"), "info": info, "drift": stats["drift"],
        "weights": weights, "weights_chart": figures.weights_chart(weights),
        "compared": compared, "test_carts": test_carts,
        "compared_chart": figures.against_rule_chart(compared), "what_ifs": what_ifs,
        "typical": figures.typical_cart(found), "retailer": found.retailer, "rule": rule,
        "held": curves.held_out(info, rule),
    })  # fmt: skip


@router.get("/{retailer_id}/experiments")
async def experiments(
    request: Request, retailer_id: RetailerPage, who: VisitorDep, svc: ServicesDep,
    days: Days = 30,
) -> Response:  # fmt: skip
    experiment = await blocking(svc, svc.experiment.report, retailer_id, days=days)
    info = await blocking(svc, svc.models.info, retailer_id)
    found = await tenant(svc, retailer_id)
    actions = figures.action_results(experiment)
    return page(request, "experiments.html", {
        **_context(who, retailer_id, "experiments", "Experiments"), "days": days,
        "experiment": experiment, "actions": actions, "chart": figures.uplift_chart(actions),
        "currency": found.retailer.currency, "qini": curves.qini(info),
    })  # fmt: skip


@router.get("/{retailer_id}/settings")
async def settings(
    request: Request, retailer_id: RetailerPage, who: VisitorDep, svc: ServicesDep,
    saved: str | None = None,
) -> Response:  # fmt: skip
    found = await tenant(svc, retailer_id)
    form = SettingsForm.of(found.retailer)
    notice = {"1": "Saved.", "0": "Nothing changed."}.get(saved or "")
    return await _settings_page(request, svc, who, retailer_id, form, notice=notice)


async def _settings_page(request: Request, svc: ServicesDep, who: Visitor, retailer_id: str,
                         form: SettingsForm, *, notice: str | None = None,
                         status_code: int = 200) -> Response:  # fmt: skip
    found = await tenant(svc, retailer_id)
    audit = await blocking(svc, svc.store.settings_changes, retailer_id=retailer_id)
    return page(request, "settings.html", {
        **_context(who, retailer_id, "settings", "Settings"), "form": form,
        "retailer": found.retailer, "channels": CHANNEL_CHOICES, "audit": audit,
        "notice": notice, "may_manage": who.signed.may_manage,
    }, status_code=status_code)  # fmt: skip


@router.post("/{retailer_id}/settings")
async def change_settings(
    request: Request, retailer_id: RetailerPage, who: VisitorDep, svc: ServicesDep
) -> Response:
    data = parse_body(await request.body())
    who.require_csrf(data)
    who.signed.principal.require_scope(Scope.manage)
    found = await tenant(svc, retailer_id)
    form = SettingsForm.submitted(data)
    changes = form.changes(found.retailer)
    if changes is None:
        return await _settings_page(request, svc, who, retailer_id, form, status_code=422)
    if not changes:
        return redirect(request, f"{PATH}/{retailer_id}/settings?saved=0")
    try:
        await blocking(svc, svc.retailers.update, retailer_id, changes, by=who.signed.principal)
    except InvalidInput as exc:
        form.add_problems(exc.details, form.action_rows())
        return await _settings_page(request, svc, who, retailer_id, form, status_code=422)
    return redirect(request, f"{PATH}/{retailer_id}/settings?saved=1")
