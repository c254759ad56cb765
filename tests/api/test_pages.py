"""The dashboard's pages through the app: signing in and out, the session cookie, CSRF, scopes,
tenant isolation, settings changes and their audit, and markup from requests rendered inert.
(The browser tests, ``tests/browser/test_dashboard.py``, run the same against a real server.)"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartpredict.api.app import create_app
from cartpredict.models.features import FeatureSpec
from cartpredict.storage import ModelVersion
from tests.support.factories import OPERATOR, OPERATOR_KEY, create_retailer, make_settings

PAGES = ("", "targeting", "model", "experiments", "settings")
NOW = datetime(2026, 11, 1, tzinfo=UTC)
MARKUP = "<script>alert(1)</script>"


@pytest.fixture
def app_client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(database_url))) as test_client:
        yield test_client


def secret(auth: dict[str, str]) -> str:
    return auth["Authorization"].removeprefix("Bearer ")


def form_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found[1]


def sign_in(client: TestClient, key: str) -> Any:
    """Sign in with ``key``; the answer (a redirect when it worked)."""
    login = client.get("/app/login")
    assert login.status_code == 200
    return client.post("/app/login", data={"csrf_token": form_token(login.text), "api_key": key},
                       follow_redirects=False)  # fmt: skip


def signed_in(client: TestClient, key: str) -> str:
    """Sign in; the session's CSRF token (from its sign-out form)."""
    response = sign_in(client, key)
    assert response.status_code == 303, response.text
    return form_token(client.get("/app/").text)


def named_key(client: TestClient, rid: str, name: str, *scopes: str) -> dict[str, Any]:
    response = client.post(f"/retailer/{rid}/keys", json={"name": name, "scopes": list(scopes)},
                           headers=OPERATOR)  # fmt: skip
    assert response.status_code == 201, response.text
    return dict(response.json())


def goes_to_sign_in(response: Any) -> bool:
    return response.status_code == 303 and "/app/login" in response.headers["location"]


def test_pages_send_a_visitor_without_a_session_to_sign_in(app_client: TestClient) -> None:
    create_retailer(app_client, "store_a")
    for path in ("/app/", "/app/store_a/", "/app/store_a/model", "/app/nobody/settings"):
        response = app_client.get(path, follow_redirects=False)
        assert goes_to_sign_in(response), path
        assert response.headers["location"] == f"/app/login?next={path}"
    refused = app_client.post("/app/store_a/settings", data={"margin": "50"},
                              follow_redirects=False)  # fmt: skip
    assert goes_to_sign_in(refused)
    assert app_client.get("/app", follow_redirects=False).headers["location"] == "/app/"


def test_signing_in_sets_a_session_cookie_the_browser_keeps_to_itself(
    app_client: TestClient,
) -> None:
    auth = create_retailer(app_client, "store_a")
    response = sign_in(app_client, secret(auth))
    assert response.status_code == 303
    assert response.headers["location"] == "/app/"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("cp_session="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/app", "max-age=28800"} <= flags
    assert "secure" not in flags  # served over plain HTTP here
    value = cookie.split(";")[0].removeprefix("cp_session=")
    assert len(value) >= 43 and secret(auth) not in cookie  # a random secret, never the key
    overview = app_client.get("/app/", follow_redirects=True)
    assert overview.status_code == 200
    assert "Overview" in overview.text and "store_a" in overview.text
    headers = overview.headers
    assert "script-src" not in headers["content-security-policy"]  # none at all
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"


def test_over_https_the_cookie_is_secure(database_url: str) -> None:
    with TestClient(create_app(make_settings(database_url)), base_url="https://testserver") as c:
        auth = create_retailer(c, "store_a")
        response = sign_in(c, secret(auth))
        cookie = next(v for v in response.headers.get_list("set-cookie") if "cp_session" in v)
        assert "secure" in cookie.lower()


def test_sign_in_refuses_a_wrong_key_one_that_may_not_read_and_a_form_from_elsewhere(
    app_client: TestClient,
) -> None:
    create_retailer(app_client, "store_a")
    wrong = sign_in(app_client, "cpk_not-a-key")
    assert wrong.status_code == 401 and "does not work" in wrong.text
    checkout = named_key(app_client, "store_a", "checkout", "predict")
    refused = sign_in(app_client, checkout["api_key"])
    assert refused.status_code == 403 and "read" in refused.text
    assert "cp_session" not in refused.headers.get("set-cookie", "")
    forged = app_client.post("/app/login", data={"api_key": OPERATOR_KEY},
                             follow_redirects=False)  # fmt: skip
    assert forged.status_code == 403  # no token of the sign-in form: not signed in
    assert goes_to_sign_in(app_client.get("/app/", follow_redirects=False))


def test_signing_out_ends_the_session_on_the_server(app_client: TestClient) -> None:
    auth = create_retailer(app_client, "store_a")
    token = signed_in(app_client, secret(auth))
    cookie = app_client.cookies["cp_session"]
    refused = app_client.post("/app/logout", follow_redirects=False)  # no CSRF token
    assert refused.status_code == 403
    assert app_client.get("/app/store_a/", follow_redirects=False).status_code == 200
    out = app_client.post("/app/logout", data={"csrf_token": token}, follow_redirects=False)
    assert goes_to_sign_in(out)
    assert 'cp_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    app_client.cookies.set("cp_session", cookie, path="/app")  # the old cookie, kept by a thief
    assert goes_to_sign_in(app_client.get("/app/store_a/", follow_redirects=False))


@pytest.mark.parametrize("how", ["rotate", "revoke"])
def test_a_session_ends_when_its_key_is_rotated_or_revoked(
    app_client: TestClient, how: str
) -> None:
    create_retailer(app_client, "store_a")
    marketing = named_key(app_client, "store_a", "marketing", "read")
    signed_in(app_client, marketing["api_key"])
    assert app_client.get("/app/store_a/model", follow_redirects=False).status_code == 200
    path = f"/retailer/store_a/keys/{marketing['key_id']}"
    if how == "rotate":  # even with a grace period for the old secret: a person signs in again
        done = app_client.post(f"{path}/rotate", json={"grace_seconds": 3600}, headers=OPERATOR)
        assert done.status_code == 201, done.text
    else:
        assert app_client.delete(path, headers=OPERATOR).status_code == 204
    assert goes_to_sign_in(app_client.get("/app/store_a/model", follow_redirects=False))


def test_a_read_only_key_sees_the_settings_but_cannot_change_them(
    app_client: TestClient,
) -> None:
    create_retailer(app_client, "store_a")
    marketing = named_key(app_client, "store_a", "marketing", "read")
    token = signed_in(app_client, marketing["api_key"])
    settings = app_client.get("/app/store_a/settings")
    assert settings.status_code == 200
    assert "Read only" in settings.text and "Save changes" not in settings.text
    assert 'name="margin" value="35"' in settings.text and "disabled" in settings.text
    refused = app_client.post("/app/store_a/settings", data={"csrf_token": token, "margin": "50"},
                              follow_redirects=False)  # fmt: skip
    assert refused.status_code == 403 and "manage" in refused.text
    assert app_client.get("/retailer/store_a", headers=OPERATOR).json()["policy_version"] == 1


def settings_form(page: str) -> dict[str, str]:
    """The settings form's fields as a browser would submit them."""
    fields = dict(re.findall(r'<input[^>]*?name="([^"]+)" value="([^"]*)"', page))
    fields |= dict(re.findall(r'<select name="([^"]+)"[^>]*>.*?<option value="([^"]+)" selected',
                              page, flags=re.S))  # fmt: skip
    if re.search(r'name="pooled_learning" checked', page):
        fields["pooled_learning"] = "on"
    return {k: html.unescape(v) for k, v in fields.items()}


def test_a_settings_change_takes_effect_and_is_audited(app_client: TestClient) -> None:
    create_retailer(app_client, "store_a")
    admin = named_key(app_client, "store_a", "admin", "read", "manage")
    signed_in(app_client, admin["api_key"])
    form = settings_form(app_client.get("/app/store_a/settings").text)
    assert form["control_share"] == "10" and form["action-1-discount"] == "10"
    unchanged = app_client.post("/app/store_a/settings", data=form, follow_redirects=False)
    assert unchanged.headers["location"].endswith("saved=0")  # no new policy version
    changed = form | {"control_share": "20", "action-1-discount": "15", "precision_target": "85"}
    done = app_client.post("/app/store_a/settings", data=changed, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("saved=1")
    config = app_client.get("/retailer/store_a", headers=OPERATOR).json()
    assert config["recovery_policy"]["control_share"] == 0.2
    assert config["recovery_policy"]["actions"][1]["discount"] == 0.15
    assert config["precision_target"] == 0.85 and config["policy_version"] == 2
    patched = app_client.patch("/retailer/store_a", json={"pooled_learning": True},
                               headers=OPERATOR)  # fmt: skip
    assert patched.status_code == 200
    page = app_client.get("/app/store_a/settings?saved=1").text
    assert "Saved." in page
    rows = re.findall(r"<tr><td>([0-9: -]+)</td><td>(.*?)</td><td>(.*?)</td></tr>", page)
    assert [(who, what) for _, who, what in rows] == [
        ("the operator", "pooled learning"),
        (f"key “admin” <code class=\"muted\">{admin['key_id']}</code>",
         "precision target, recovery policy"),
    ]  # fmt: skip


def test_invalid_settings_are_shown_by_their_field_and_change_nothing(
    app_client: TestClient,
) -> None:
    create_retailer(app_client, "store_a")
    token = signed_in(app_client, OPERATOR_KEY)
    form = settings_form(app_client.get("/app/store_a/settings").text)
    assert form["csrf_token"] == token
    bad = form | {"control_share": "80", "margin": "lots", "action-0-channel": "fax",
                  "action-2-name": "popup_10", "action-2-channel": "onsite"}  # fmt: skip
    response = app_client.post("/app/store_a/settings", data=bad)
    assert response.status_code == 422
    assert 'id="margin-error">enter a number (per cent)' in response.text
    fixed = bad | {"margin": "35"}
    response = app_client.post("/app/store_a/settings", data=fixed)
    assert response.status_code == 422
    assert 'id="control_share-error">must be at most 50 %' in response.text
    assert "Input should be &#39;email&#39;, &#39;sms&#39;, &#39;push&#39; or &#39;onsite&#39;" in (
        response.text
    )  # next to the first action's channel
    assert 'name="control_share" value="80"' in response.text  # what was typed stays
    fixed = fixed | {"control_share": "10", "action-0-channel": "email"}
    response = app_client.post("/app/store_a/settings", data=fixed)
    assert response.status_code == 422 and "action names must be unique" in response.text
    assert app_client.get("/retailer/store_a", headers=OPERATOR).json()["policy_version"] == 1


def test_a_settings_form_without_its_csrf_token_is_refused(app_client: TestClient) -> None:
    create_retailer(app_client, "store_a")
    signed_in(app_client, OPERATOR_KEY)
    form = settings_form(app_client.get("/app/store_a/settings").text)
    another = signed_in(TestClient(app_client.app), OPERATOR_KEY)  # another session's token
    for token in (None, "0" * 64, another):
        data = {k: v for k, v in form.items() if k != "csrf_token"} | {"control_share": "30"}
        if token is not None:
            data["csrf_token"] = token
        response = app_client.post("/app/store_a/settings", data=data, follow_redirects=False)
        assert response.status_code == 403, token
        assert "security token" in response.text
    assert app_client.get("/retailer/store_a", headers=OPERATOR).json()["policy_version"] == 1


def test_another_retailers_pages_are_the_same_404_as_a_retailer_that_does_not_exist(
    app_client: TestClient,
) -> None:
    auth_a = create_retailer(app_client, "store_a")
    create_retailer(app_client, "store_b")
    token = signed_in(app_client, secret(auth_a))
    for path in PAGES:
        theirs = app_client.get(f"/app/store_b/{path}", follow_redirects=False)
        nobodys = app_client.get(f"/app/store_zz/{path}", follow_redirects=False)
        assert theirs.status_code == nobodys.status_code == 404, path
        assert theirs.content == nobodys.content, path
        assert "store_b" not in theirs.text
        assert app_client.get(f"/app/store_a/{path}").status_code == 200, path
    posted = app_client.post("/app/store_b/settings", data={"csrf_token": token, "margin": "50"})
    assert posted.status_code == 404
    assert posted.content == app_client.get("/app/store_zz/").content
    assert app_client.get("/app/", follow_redirects=False).headers["location"] == "/app/store_a/"


def test_the_operator_picks_a_retailer(app_client: TestClient) -> None:
    for rid in ("store_a", "store_b"):
        create_retailer(app_client, rid)
    signed_in(app_client, OPERATOR_KEY)
    picker = app_client.get("/app/")
    assert picker.status_code == 200
    assert 'href="/app/store_a/"' in picker.text and 'href="/app/store_b/"' in picker.text
    for path in PAGES:
        assert app_client.get(f"/app/store_b/{path}").status_code == 200, path
    assert app_client.get("/app/nobody/").status_code == 404


def test_markup_sent_through_the_api_renders_inert(app_client: TestClient) -> None:
    """A categorical attribute's value is any string the API lets through: it becomes a
    weight's name once a model is trained with it. Action names, cart ids and retailer ids are
    identifiers the API refuses markup in."""
    auth = create_retailer(app_client, "store_a",
                           attributes=[{"name": "coupon", "kind": "categorical"}])  # fmt: skip
    event = {"event_id": "e-1", "type": "cart_updated", "cart_id": "c-1",
             "at": "2026-10-01T10:00:00Z", "cart_value": 40.0, "item_count": 1,
             "device_type": "mobile", "shipping_speed": "standard",
             "attributes": {"coupon": MARKUP}}  # fmt: skip
    sent = app_client.post("/events", json={"retailer_id": "store_a", "events": [event]},
                           headers=auth)  # fmt: skip
    assert sent.status_code == 200, sent.text  # the API takes it
    spec = FeatureSpec(categorical=(("coupon", (MARKUP,)),))
    weights = dict.fromkeys(spec.names(), 0.1) | {f"coupon={MARKUP}": 0.7}
    model = {"kind": "logistic", "features": spec.to_dict(), "intercept": 0.2,
             "weights": weights, "threshold": 0.5}  # fmt: skip
    svc = app_client.app.state.services  # type: ignore[attr-defined]
    version = ModelVersion("m-markup", "store_a", NOW, NOW, NOW, 100, 0.5, {}, model)
    svc.store.add_model_version(version=version)
    svc.store.set_served(scope="store_a", version_id="m-markup", action="promote", at=NOW)
    svc.cache.clear()
    assert MARKUP in app_client.get("/retailer/store_a/model", headers=auth).text
    for refused in (
        app_client.patch("/retailer/store_a", headers=auth, json={"recovery_policy": {
            "margin": 0.3, "control_share": 0.1, "actions": [
                {"name": MARKUP, "channel": "email", "cost": 0.0, "discount": 0.0}]}}),
        app_client.post("/predict_cart", headers=auth, json={
            "retailer_id": "store_a", "cart_id": MARKUP, "cart_value": 1, "item_count": 1,
            "inactivity_hours": 1, "device_type": "mobile", "shipping_speed": "standard"}),
    ):  # fmt: skip
        assert refused.status_code == 422, refused.text

    signed_in(app_client, secret(auth))
    page = app_client.get("/app/store_a/model")
    assert page.status_code == 200
    assert MARKUP not in page.text and "<script" not in page.text
    assert html.escape(MARKUP) in page.text  # shown, as text
    assert "coupon is “&lt;script&gt;alert(1)&lt;/script&gt;”" in page.text  # a weight
    assert "coupon is “&lt;script&gt;alert(1)&lt;/script&gt;” (rather than none)" in page.text


def arm(carts: int, purchased: int) -> dict[str, Any]:
    return {"carts": carts, "purchased": purchased, "rate": purchased / carts,
            "revenue": purchased * 60.0, "margin": purchased * 21.0,
            "cost": carts * 0.01}  # fmt: skip


def compared(treated: int, bought: int, held: int, held_bought: int) -> dict[str, Any]:
    """An action's figures as the experiment report gives them."""
    uplift = bought / treated - held_bought / held
    return {"treatment": arm(treated, bought), "control": arm(held, held_bought),
            "uplift": {"estimate": uplift, "ci95": [uplift - 0.03, uplift + 0.03]},
            "incremental_purchases": uplift * treated, "incremental_margin": -120.5,
            "periods": [{"start": "2026-10-01", "end": "2026-10-01"}]}  # fmt: skip


def test_the_experiments_page_shows_explored_carts_apart(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the report holds is drawn: the explored carts against their own control carts
    beside the targeted ones, and what exploring cost."""
    auth = create_retailer(app_client, "store_a")
    shown = compared(1000, 300, 120, 30)
    report = {
        "retailer_id": "store_a", "k_anonymity": 10, "computed_at": None,
        "window": {"start": "2026-09-02", "end": "2026-10-01", "days": 30},
        "actions": {"reminder_email": shown | {"exploration": {
            "explored": compared(100, 25, 20, 5), "targeted": compared(900, 275, 100, 25),
            "cost": 42.0, "periods": shown["periods"]}},
            "popup_10": {"treatment": None, "control": None, "uplift": None, "periods": [],
                         "incremental_purchases": None, "incremental_margin": None,
                         "exploration": None}},
        "merged": [], "suppressed": [],
    }  # fmt: skip
    svc = app_client.app.state.services  # type: ignore[attr-defined]
    monkeypatch.setattr(svc.experiment, "report", lambda retailer_id, days: report)
    signed_in(app_client, secret(auth))
    page = app_client.get("/app/store_a/experiments")
    assert page.status_code == 200
    assert "+5.0 purchases per 100 carts" in page.text
    assert "Explored carts apart" in page.text and "What exploring cost: $42.00" in page.text
    assert "−$120.50" in page.text  # a loss, with a minus sign
    overview = app_client.get("/app/store_a/")
    assert overview.status_code == 200 and "+50.0" in overview.text  # 5 per 100 of 1,000 carts


def test_the_model_page_explains_where_each_actions_recovery_rate_comes_from(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = create_retailer(app_client, "store_a")
    svc = app_client.app.state.services  # type: ignore[attr-defined]
    info = svc.models.info("store_a")
    learnt = {"action": "popup_10", "channel": "onsite", "serves": "own",
              "explanation": ["recovers 2.2 % of otherwise-lost carts like a typical one"],
              "intercept": -1.2, "weights": {"mobile": 1.5},
              "last_training": {"reason": "promoted", "treated": 1213, "control": 1187,
                                "heldout": {"qini": 0.036, "qini_prior": -0.003}}}  # fmt: skip
    info["recovery"]["actions"][1] = learnt
    monkeypatch.setattr(svc.models, "info", lambda retailer_id: info)
    signed_in(app_client, secret(auth))
    page = app_client.get("/app/store_a/model").text
    assert "recovers 2.2 % of otherwise-lost carts like a typical one" in page
    assert "learnt from your carts" in page and "1,213 treated" in page
    assert "Qini coefficient of 0.036, against -0.003 for the prior" in page
    assert "No recovery model has been trained yet for this action." in page  # the other
    assert "The baseline rule" in page  # no model trained for its carts yet
