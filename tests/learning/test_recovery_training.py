"""Training who responds, through the store: decisions, exposure events and purchases in, a
recovery version per retailer out, and decisions that use it.

Proves, on SQLite and PostgreSQL: an action learnt from a retailer's control groups is
promoted, served to its decisions (the expected gain comes from the learnt rate) and explained
in the model info; a retailer with too few treated carts keeps the prior and says why; a
retailer not opted in gets the same model whatever other retailers' exposure data hold; a
re-priced action is a new experiment and goes back to its prior.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartpredict.api.app import create_app
from cartpredict.decisions.gain import gain_at
from cartpredict.learning.recovery_training import train_recovery
from cartpredict.serving.container import build_services
from cartpredict.serving.retailers import retailer_record
from cartpredict.serving.schemas import CartIn, ModelOut, RetailerCreate
from cartpredict.storage import RECOVERY
from cartpredict.storage.migrate import upgrade
from tests.support import responses
from tests.support.factories import OPERATOR, SettableClock, make_settings, retailer_spec
from tests.support.responses import POLICY, POPUP

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)


@pytest.fixture
def world(database_url: str) -> Any:
    upgrade(database_url)
    clock = SettableClock(T0)
    settings = make_settings(database_url)
    svc = build_services(settings, clock)
    for rid, pooled in (("a", True), ("b", True), ("alone", False), ("small", False)):
        spec = retailer_spec(rid, recovery_policy=POLICY.to_dict(), pooled_learning=pooled)
        # a fixed secret: the same carts in the same groups on every run
        record = replace(retailer_record(RetailerCreate.model_validate(spec), T0),
                         assignment_salt=f"salt-of-{rid}")  # fmt: skip
        svc.store.create_retailer(retailer=record, key_hash=f"hash-of-{rid}")
    yield svc, settings, clock
    svc.close()


def decide_and_respond(svc: Any, rid: str, n: int, *, seed: int, day: int = 0) -> None:
    responses.decide_and_respond(svc, rid, n, seed=seed, start=T0, day=day)


def train(svc: Any, day: int = 3) -> dict[str, Any]:
    now = T0 + timedelta(days=day)
    svc.clock.now = now
    outcomes = train_recovery(svc.store, as_of=now, clock=svc.clock)
    svc.cache.clear()  # (a server learns of it from the change feed)
    return {o.scope: o for o in outcomes}


def model_info(settings: Any, clock: SettableClock, rid: str) -> dict[str, Any]:
    with TestClient(create_app(settings, clock=clock)) as client:
        response = client.get(f"/retailer/{rid}/model", headers=OPERATOR)
    assert response.status_code == 200, response.text
    body = dict(response.json())
    # as documented in the OpenAPI schema: every field of the recovery section, no other
    documented = ModelOut.model_validate(body).model_dump(mode="json", exclude_unset=True)
    assert documented["recovery"] == body["recovery"]
    return body


def test_a_learnt_model_is_promoted_serves_decisions_and_is_explained(world: Any) -> None:
    svc, settings, clock = world
    decide_and_respond(svc, "a", 1400, seed=1)
    decide_and_respond(svc, "b", 1400, seed=2)
    outcomes = train(svc)
    assert outcomes["a"].status == "promoted", outcomes["a"].actions
    learnt = outcomes["a"].actions["popup_10"]
    assert learnt["source"] in ("own", "pooled") and learnt["treated"] > 400

    tenant = svc.tenants.load("a")
    model = tenant.recovery["popup_10"]
    assert model.rate(60.0, 2, "mobile", 0.0) > 3 * model.rate(60.0, 2, "desktop", 0.0)
    body = {"retailer_id": "a", "cart_id": "new-1", "cart_value": 80.0, "item_count": 2,
            "inactivity_hours": 0.0, "device_type": "mobile",
            "shipping_speed": "standard"}  # fmt: skip
    answer = svc.predictor.predict(tenant, CartIn.model_validate(body))
    p0 = 1.0 - answer["abandonment_probability"]
    rate = model.rates(80.0, 2, "mobile")
    want = gain_at(lambda h: p0, 80.0, 0.4, POPUP, 0.0, 0.0, rate)
    assert answer["decision"]["expected_gain"] == pytest.approx(want, abs=1e-6)

    info = model_info(settings, clock, "a")["recovery"]
    (popup,) = info["actions"]
    assert popup["serves"] in ("own", "pooled") and info["version"] is not None
    assert any("mobile" in line for line in popup["explanation"])
    assert set(popup["weights"]) >= {"mobile", "log_value"}
    # how it ranked who responds on carts it did not learn from: the Qini curves, cross-fitted
    held = popup["last_training"]["heldout"]
    curve = held["qini_curve"]
    assert curve["shares"] == [i / 20 for i in range(21)]
    assert len(curve["model"]) == len(curve["prior"]) == 21
    assert held["compared_with"] in ("channel_prior", "pooled_model")
    assert popup["last_training"]["treated"] + popup["last_training"]["control"] >= 20 * 10


def test_too_few_treated_carts_keep_the_prior_and_the_model_info_says_so(world: Any) -> None:
    svc, settings, clock = world
    decide_and_respond(svc, "small", 120, seed=3)
    outcomes = train(svc)
    assert outcomes["small"].status == "prior"
    assert outcomes["small"].actions["popup_10"]["reason"] == "too_few_treated"
    assert svc.tenants.load("small").recovery == {}
    (popup,) = model_info(settings, clock, "small")["recovery"]["actions"]
    assert popup["serves"] == "prior" and popup["prior"]["recovery_rate"] == POPUP.rate
    assert "too few treated carts" in popup["why"]
    assert popup["last_training"]["reason"] == "too_few_treated"
    assert popup["last_training"]["treated"] >= 10  # about 60 treated carts: shown


def test_a_retailer_not_opted_in_is_untouched_by_other_retailers_exposure_data(
    world: Any,
) -> None:
    svc, _, _ = world
    decide_and_respond(svc, "alone", 2400, seed=4)
    decide_and_respond(svc, "a", 700, seed=5)
    first = train(svc)["alone"].actions["popup_10"]
    # the opted-in retailers' data change (more days of them); the lone retailer's do not
    decide_and_respond(svc, "a", 1400, seed=6, day=1)
    decide_and_respond(svc, "b", 1400, seed=7, day=1)
    second = train(svc)
    assert second["a"].actions["popup_10"] != first
    assert second["alone"].actions["popup_10"] == first
    assert first["served"] is not None and first["source"] == "own"


def test_a_re_priced_action_is_a_new_experiment_and_keeps_its_prior(world: Any) -> None:
    svc, _, _ = world
    decide_and_respond(svc, "alone", 2400, seed=8)
    trained = train(svc)["alone"]
    assert trained.status == "promoted", trained.actions
    assert "popup_10" in svc.tenants.load("alone").recovery
    dearer = POLICY.to_dict()
    dearer["actions"][0]["discount"] = 0.15
    svc.retailers.update("alone", {"recovery_policy": dearer})  # a new policy version
    svc.cache.clear()
    assert svc.tenants.load("alone").recovery == {}  # served, but learnt for the old offer
    versions = svc.store.model_versions(scope="alone", kind=RECOVERY)
    assert len(versions) == 1


def test_a_later_training_that_learns_nothing_keeps_the_served_model_and_says_both(
    world: Any,
) -> None:
    svc, settings, clock = world
    decide_and_respond(svc, "alone", 2400, seed=9)
    first = train(svc)["alone"]
    assert first.status == "promoted"
    later = train(svc, day=30)["alone"]  # the raw window holds none of those carts any more
    assert later.status == "kept" and later.actions["popup_10"]["reason"] == "too_few_treated"
    assert "popup_10" in svc.tenants.load("alone").recovery
    (popup,) = model_info(settings, clock, "alone")["recovery"]["actions"]
    assert popup["serves"] == "own"  # the version served, not the latest attempt
    assert popup["last_training"] == {"reason": "too_few_treated", "treated": 0, "control": 0}


def test_rolling_back_the_recovery_models_serves_the_earlier_version(world: Any) -> None:
    svc, settings, clock = world
    decide_and_respond(svc, "alone", 2400, seed=9)
    first = train(svc)["alone"]
    decide_and_respond(svc, "alone", 2400, seed=10, day=4)
    second = train(svc, day=7)["alone"]
    assert first.status == second.status == "promoted"
    assert first.version != second.version
    abandonment = svc.models.info("alone")["model_version"]
    info = svc.models.rollback("alone", RECOVERY)
    assert info["recovery"]["version"] == first.version
    assert info["model_version"] == abandonment  # the abandonment model is untouched
    svc.cache.clear()
    assert model_info(settings, clock, "alone")["recovery"]["version"] == first.version


def test_the_api_rolls_back_the_recovery_models_on_their_own(world: Any) -> None:
    svc, settings, clock = world
    decide_and_respond(svc, "alone", 2400, seed=9)
    first = train(svc)["alone"]
    decide_and_respond(svc, "alone", 2400, seed=10, day=4)
    second = train(svc, day=7)["alone"]
    assert first.version != second.version
    with TestClient(create_app(settings, clock=clock)) as client:
        url = "/retailer/alone/model/rollback"
        assert client.post(url + "?kind=nonsense", headers=OPERATOR).status_code == 422
        response = client.post(url + "?kind=recovery", headers=OPERATOR)
        assert response.status_code == 200, response.text
        assert response.json()["recovery"]["version"] == first.version
        again = client.post(url + "?kind=recovery", headers=OPERATOR)
        assert again.status_code == 409  # nothing earlier than the first
