"""The dashboard in a real browser, on a real server with the demo's retailers (``cartpredict demo
--no-serve``: simulated history, trained models, daily stats) and one simulated store that acted
on its carts with control groups (so that its experiment report has figures), cut off from every
host but the server: signing in and out, every page at a screen's and a phone's width (with
screenshots in ``CARTPREDICT_SCREENSHOTS``), a setting changed on the page and seen in
``/predict_cart``'s decisions, another retailer's session kept out, a form without its CSRF token
refused, and markup that came through the API shown as text."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2 as httpx
import pytest

from cartpredict.cli.demo import _env_file_keys
from cartpredict.core.clock import utcnow
from cartpredict.core.settings import Settings
from cartpredict.learning.recovery_training import train_recovery
from cartpredict.learning.simulate import Choice, SimulatedCart, Treatment, simulate
from cartpredict.learning.treatments import DECISION_HOURS, is_contactable
from cartpredict.models.features import FeatureSpec
from cartpredict.monitoring.rollup import rollup
from cartpredict.ops.experiments import load_simulation, log_simulated_predictions
from cartpredict.serving.container import build_services
from cartpredict.serving.retailers import retailer_record
from cartpredict.serving.schemas import RetailerCreate
from cartpredict.storage import ModelVersion
from tests.support.browser import offline
from tests.support.factories import OPERATOR_KEY, SettableClock, retailer_spec
from tests.support.responses import POLICY, decide_and_respond
from tests.support.servers import running_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGES = (("", "Overview"), ("targeting", "Targeting"), ("model", "Model"),
         ("experiments", "Experiments"), ("settings", "Settings"))  # fmt: skip
WIDTHS = (1280, 390)
ACTING = "sim_acting"  # a simulated store that acted on its carts, with control groups
LEARNT = "sim_learnt"  # a store whose learnt recovery model serves its decisions
MARKUP_STORE = "markup_store"
MARKUP = "<script>alert(1)</script>"


@dataclass(frozen=True)
class Demo:
    url: str
    keys: dict[str, str]  # retailer id -> its default key (every scope)


def acting_store(settings: Settings, now: datetime) -> str:
    """A week of a store that sent every contactable cart the reminder an hour into its
    inactivity and showed the others the pop-up, with the default policy's control groups,
    loaded through the service's own ingestion and rolled up; its key."""

    def everyone(cart: SimulatedCart) -> Choice:
        action = "reminder_email" if is_contactable(cart.retailer_id, cart.cart_id) else "popup_10"
        return Choice(action, DECISION_HOURS)

    days = 7
    config = {"retailer_id": ACTING, "requires_account": False,
              "payment_options": ["credit_card", "paypal"],
              "shipping_speeds": ["standard", "express"]}  # fmt: skip
    sim = simulate(retailers=1, days=days + 1, carts_per_day=1500, seed=0, configs=[config],
                   start=now - timedelta(days=days + 4), treatment=Treatment(everyone),
                   fixed_size=True)  # fmt: skip
    last = sim.start + timedelta(days=days)  # every decision's 24 h inside the simulation
    sim = replace(sim, exposures=[x for x in sim.exposures if x.at < last])
    svc = build_services(settings, utcnow)
    try:
        load_simulation(sim, svc.store, now=now)
        log_simulated_predictions(sim, svc.tenants, svc.store, retailer_ids=[ACTING], now=now)
        rollup(svc.store, as_of=now)
        return svc.keys.replace_all(ACTING).secret
    finally:
        svc.close()


def learnt_store(settings: Settings, now: datetime) -> str:
    """A store whose pop-up was decided for 2,400 carts three days ago, by the service with its
    control group, each decision reported and the carts bought as a known response buys them
    (``tests/support/responses.py``); then its recovery model learnt, which serves: its
    Experiments page draws the Qini curve. Its key."""
    clock = SettableClock(now - timedelta(days=3))
    svc = build_services(settings, clock)
    try:
        spec = retailer_spec(LEARNT, recovery_policy=POLICY.to_dict(), pooled_learning=False)
        record = replace(retailer_record(RetailerCreate.model_validate(spec), clock.now),
                         assignment_salt=f"salt-of-{LEARNT}")  # fmt: skip
        svc.store.create_retailer(retailer=record, key_hash=f"hash-of-{LEARNT}")
        decide_and_respond(svc, LEARNT, 2400, seed=9, start=clock.now)
        clock.now = now
        (learnt,) = [o for o in train_recovery(svc.store, as_of=now, clock=clock)
                     if o.scope == LEARNT]  # fmt: skip
        assert learnt.status == "promoted", learnt.actions
        return svc.keys.replace_all(LEARNT).secret
    finally:
        svc.close()


def markup_store(settings: Settings, now: datetime) -> None:
    """A store whose categorical attribute took a value with markup, which the API accepts
    and which became a weight's name of the model serving it."""
    spec = {"retailer_id": MARKUP_STORE, "requires_account": False,
            "payment_options": ["card"], "shipping_speeds": ["standard"],
            "attributes": [{"name": "coupon", "kind": "categorical"}]}  # fmt: skip
    features = FeatureSpec(categorical=(("coupon", (MARKUP,)),))
    weights = dict.fromkeys(features.names(), 0.1) | {f"coupon={MARKUP}": 0.7}
    model = {"kind": "logistic", "features": features.to_dict(), "intercept": 0.2,
             "weights": weights, "threshold": 0.5}  # fmt: skip
    svc = build_services(settings, utcnow)
    try:
        svc.retailers.create(RetailerCreate.model_validate(spec))
        version = ModelVersion("m-markup", MARKUP_STORE, now, now, now, 100, 0.5, {}, model)
        svc.store.add_model_version(version=version)
        svc.store.set_served(scope=MARKUP_STORE, version_id="m-markup", action="promote", at=now)
    finally:
        svc.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    directory = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{directory / 'cartpredict.db'}"
    env = {"CARTPREDICT_DATABASE_URL": url, "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY}
    made = subprocess.run(
        [sys.executable, "-m", "cartpredict", "demo", "--no-serve"],
        cwd=directory, env=os.environ | env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-4000:]
    keys = dict(_env_file_keys(directory / "cartpredict-demo.env"))
    settings = Settings(database_url=url, operator_key=OPERATOR_KEY)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    keys[ACTING] = acting_store(settings, now)
    keys[LEARNT] = learnt_store(settings, now)
    markup_store(settings, now)
    with running_server(env) as client:
        yield Demo(str(client.base_url).rstrip("/"), keys)


def sign_in(page: Page, demo: Demo, key: str) -> None:
    page.goto(f"{demo.url}/app/login")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url("**/app/**")
    assert "/app/login" not in page.url


def phone(browser: Browser) -> Page:
    return browser.new_context(viewport={"width": 390, "height": 844}).new_page()


@pytest.mark.parametrize("retailer", ["demo_fashion", "demo_grocery", ACTING, LEARNT])
def test_every_page_renders_offline_on_a_screen_and_on_a_phone(
    browser: Browser, page: Page, demo: Demo, screenshots: Path, retailer: str
) -> None:
    for width in WIDTHS:
        tab = page if width == 1280 else phone(browser)
        try:
            traffic = offline(tab)
            sign_in(tab, demo, demo.keys[retailer])
            for path, title in PAGES:
                tab.goto(f"{demo.url}/app/{retailer}/{path}")
                assert tab.locator("h1").inner_text() == title
                assert tab.locator(".store").inner_text() == retailer
                # nothing wider than the screen: tables scroll inside their own box
                assert tab.evaluate("document.documentElement.scrollWidth") <= width, path
                name = path or "overview"
                tab.screenshot(path=screenshots / f"dashboard-{retailer}-{name}-{width}.png",
                               full_page=True)  # fmt: skip
            assert traffic.problems() == {}
        finally:
            if tab is not page:
                tab.context.close()


def test_the_acting_stores_pages_show_what_its_actions_earned(page: Page, demo: Demo) -> None:
    sign_in(page, demo, demo.keys[ACTING])
    page.goto(f"{demo.url}/app/{ACTING}/experiments")
    for action in ("reminder_email", "popup_10"):
        card = page.locator("section.card", has=page.locator("h2", has_text=action))
        assert "purchases per 100 carts" in card.inner_text()
        assert card.locator("tbody tr").count() == 2  # treatment and control
    assert page.locator("figure svg.chart").first.is_visible()
    page.goto(f"{demo.url}/app/{ACTING}/")
    assert page.get_by_role("columnheader", name="Purchases added").is_visible()


def test_the_model_page_draws_the_model_against_the_rule_curve_by_curve(
    browser: Browser, page: Page, demo: Demo
) -> None:
    for width in WIDTHS:
        tab = page if width == 1280 else phone(browser)
        try:
            sign_in(tab, demo, demo.keys["demo_fashion"])
            tab.goto(f"{demo.url}/app/demo_fashion/model")
            card = tab.locator("section.card", has=tab.locator("h2", has_text="Curve by curve"))
            assert "on 266 held-out carts of yours" in card.inner_text()
            charts = card.locator("figure svg.chart:visible")
            assert charts.count() == 2  # precision-recall and calibration, at this width
            for i in range(2):
                assert charts.nth(i).bounding_box()["width"] <= width  # type: ignore[index]
        finally:
            if tab is not page:
                tab.context.close()


def test_the_learnt_stores_experiments_page_draws_who_responds(page: Page, demo: Demo) -> None:
    sign_in(page, demo, demo.keys[LEARNT])
    page.goto(f"{demo.url}/app/{LEARNT}/experiments")
    card = page.locator("section.card", has=page.locator("h2", has_text="popup_10"))
    assert "Who responds: your model" in card.inner_text()
    qini = card.locator("figure svg.chart:visible", has=page.locator("title", has_text="Qini"))
    assert qini.count() == 1 and qini.is_visible()


def test_the_demo_pages_show_decisions_by_action_and_what_became_of_each_band(
    page: Page, demo: Demo, screenshots: Path
) -> None:
    """The demo's history logs each named cart's decision, as a site that asked would have
    had it: the Overview draws them by action, the Targeting page each band's purchases."""
    traffic = offline(page)
    sign_in(page, demo, demo.keys["demo_fashion"])
    page.goto(f"{demo.url}/app/demo_fashion/")
    card = page.locator("section.card", has=page.locator("h2", has_text="Actions recommended"))
    assert card.locator("figure svg.chart").first.is_visible()
    assert card.get_by_role("rowheader", name="no action").is_visible()
    card.screenshot(path=screenshots / "dashboard-demo_fashion-recommended-1280.png")
    page.goto(f"{demo.url}/app/demo_fashion/targeting")
    card = page.locator("section.card", has=page.locator("h2", has_text="What became of"))
    assert card.locator("tbody tr").count() == 5  # every band, shown or not
    rates = card.locator('td[data-label="Purchase rate"]').all_inner_texts()
    assert any(rate.endswith(" %") for rate in rates), rates
    assert card.locator("figure svg.chart").first.is_visible()
    card.screenshot(path=screenshots / "dashboard-demo_fashion-bands-1280.png")
    assert traffic.problems() == {}


def decisions(demo: Demo, retailer: str, n: int = 400) -> list[dict[str, Any]]:
    """The decisions of ``n`` named carts (the same ids every time)."""
    carts = [{"retailer_id": retailer, "cart_id": f"dash-{i}", "cart_value": 80.0,
              "item_count": 2, "inactivity_hours": 1.5, "device_type": "mobile",
              "shipping_speed": "standard", "contactable": True} for i in range(n)]  # fmt: skip
    answer = httpx.post(f"{demo.url}/predict_cart/batch", json={"carts": carts}, timeout=30,
                        headers={"Authorization": f"Bearer {demo.keys[retailer]}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return [p["decision"] for p in answer.json()["predictions"]]


def test_a_setting_changed_on_its_page_takes_effect_in_the_predictions(
    page: Page, demo: Demo
) -> None:
    retailer = "demo_electronics"
    before = decisions(demo, retailer)
    held = {i for i, d in enumerate(before) if d["group"] == "control"}
    traffic = offline(page)
    sign_in(page, demo, demo.keys[retailer])
    page.goto(f"{demo.url}/app/{retailer}/settings")
    assert page.locator("#control_share").input_value() == "10"
    page.fill("#control_share", "40")
    page.click("text=Save changes")
    page.wait_for_url("**/settings?saved=1")
    assert page.locator(".notice").inner_text() == "Saved."
    assert page.locator("#control_share").input_value() == "40"
    assert "recovery policy" in page.locator("table >> nth=-1").inner_text()  # the audit
    after = decisions(demo, retailer)
    now_held = {i for i, d in enumerate(after) if d["group"] == "control"}
    assert {d["policy_version"] for d in after} == {before[0]["policy_version"] + 1}
    assert held < now_held  # carts move from treatment to control only
    assert 0.3 < len(now_held) / len(after) < 0.5
    assert traffic.problems() == {}


def test_signing_out_ends_the_session(page: Page, demo: Demo) -> None:
    traffic = offline(page)
    sign_in(page, demo, demo.keys["demo_fashion"])
    page.click("text=Sign out")
    page.wait_for_url("**/app/login")
    page.goto(f"{demo.url}/app/demo_fashion/model")
    assert "/app/login" in page.url  # sent to sign in again
    assert page.locator("h1").inner_text() == "Sign in"
    assert traffic.problems() == {}


def test_another_retailers_session_cannot_reach_the_first_ones_pages(
    page: Page, demo: Demo, screenshots: Path
) -> None:
    sign_in(page, demo, demo.keys["demo_electronics"])
    for path, _ in PAGES:
        theirs = page.goto(f"{demo.url}/app/demo_fashion/{path}")
        assert theirs is not None and theirs.status == 404
        body = page.content()
        nobodys = page.goto(f"{demo.url}/app/no_such_store/{path}")
        assert nobodys is not None and nobodys.status == 404
        assert page.content() == body
        assert "demo_fashion" not in body
    page.screenshot(path=screenshots / "dashboard-not-found-1280.png")


def test_a_form_without_its_csrf_token_is_refused(page: Page, demo: Demo) -> None:
    sign_in(page, demo, demo.keys["demo_grocery"])
    page.goto(f"{demo.url}/app/demo_grocery/settings")
    page.fill("#margin", "50")
    page.locator('form.settings input[name="csrf_token"]').evaluate("input => input.remove()")
    page.click("text=Save changes")
    assert page.locator("h1").inner_text() == "Not allowed"
    assert "security token" in page.locator("main").inner_text()
    page.goto(f"{demo.url}/app/demo_grocery/settings")
    assert page.locator("#margin").input_value() == "35"  # nothing changed


def test_markup_that_came_through_the_api_is_shown_as_text(
    page: Page, demo: Demo, screenshots: Path
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    traffic = offline(page)
    sign_in(page, demo, OPERATOR_KEY)
    assert page.locator(f'a[href="/app/{MARKUP_STORE}/"]').is_visible()  # the picker
    page.goto(f"{demo.url}/app/{MARKUP_STORE}/model")
    what_if = page.get_by_role("rowheader", name=f"coupon is “{MARKUP}” (rather than none)")
    assert what_if.is_visible()  # the typical cart with that value, as text
    page.locator("summary", has_text="weights").click()
    assert page.get_by_text(f"coupon={MARKUP}", exact=True).is_visible()  # the weight's name
    assert page.locator("main script").count() == 0
    assert dialogs == []
    assert traffic.problems() == {}
    page.screenshot(path=screenshots / "dashboard-markup-model-1280.png", full_page=True)
