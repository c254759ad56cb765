"""How the model compares with the baseline rule curve by curve, and who responds to an action
ranked: in the model info (``curves``; per action, ``last_training.heldout.qini_curve``), on
the Model page and on the Experiments page, shown only over the retailer's own carts and over
at least 10 of them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartpredict.api.app import create_app
from cartpredict.models.features import FeatureSpec
from cartpredict.storage import POOLED_SCOPE, ModelVersion
from tests.support.curves import kept_curves
from tests.support.factories import OPERATOR, create_retailer, make_settings

NOW = datetime(2026, 11, 1, tzinfo=UTC)
MODEL = {"kind": "logistic", "features": FeatureSpec(cart=True).to_dict(), "intercept": 0.8,
         "weights": dict.fromkeys(FeatureSpec(cart=True).names(), 0.0) | {"log_value": -0.3},
         "threshold": 0.5}  # fmt: skip
FIGURES = {"auc_pr_purchased": 0.41, "auc_pr_abandoned": 0.86, "roc_auc": 0.7, "brier": 0.16}


@pytest.fixture
def shop(database_url: str) -> Iterator[tuple[TestClient, Any, dict[str, str]]]:
    with TestClient(create_app(make_settings(database_url))) as client:
        auth = create_retailer(client, "store_a")
        yield client, client.app.state.services, auth  # type: ignore[attr-defined]


def serve(svc: Any, version_id: str, metrics: dict[str, Any], scope: str = "store_a") -> None:
    version = ModelVersion(version_id, scope, NOW, NOW, NOW, 400, 0.5, metrics, MODEL)
    svc.store.add_model_version(version=version)
    svc.store.set_served(scope=scope, version_id=version_id, action="promote", at=NOW)
    svc.cache.clear()


def held_out(n_test_carts: int, curves: dict[str, Any] | None) -> dict[str, Any]:
    metrics = {"candidate": FIGURES, "baseline": FIGURES, "n_test_carts": n_test_carts}
    return metrics if curves is None else metrics | {"curves": curves}


def info(client: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    response = client.get("/retailer/store_a/model", headers=auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


def page(client: TestClient, path: str) -> str:
    """The page's markup, each run of whitespace one space."""
    response = client.get(f"/app/store_a/{path}")
    assert response.status_code == 200, response.text
    return " ".join(response.text.split())


def sign_in(client: TestClient, auth: dict[str, str]) -> None:
    login = client.get("/app/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert token is not None
    key = auth["Authorization"].removeprefix("Bearer ")
    done = client.post("/app/login", data={"csrf_token": token[1], "api_key": key},
                       follow_redirects=False)  # fmt: skip
    assert done.status_code == 303, done.text


def test_the_model_info_shows_the_curves_of_its_own_held_out_carts_over_10_of_them(
    shop: tuple[TestClient, Any, dict[str, str]],
) -> None:
    client, svc, auth = shop
    curves = kept_curves()
    serve(svc, "m-1", held_out(80, curves))
    body = info(client, auth)
    assert body["curves"] == curves
    assert "curves" not in body["metrics"]  # once, in its own field
    assert body["suppressed"] == []

    serve(svc, "m-2", held_out(9, kept_curves(9)))
    body = info(client, auth)
    assert body["curves"] is None and body["metrics"] is None
    assert {"field": "curves", "reason": "held-out curves cover fewer than 10 test carts"} in body[
        "suppressed"
    ]  # fmt: skip

    serve(svc, "m-3", held_out(80, None))  # trained before curves were kept
    body = info(client, auth)
    assert body["curves"] is None and body["metrics"] is not None
    assert body["suppressed"] == []


def test_under_the_pooled_model_only_the_curves_of_its_own_carts_are_shown(
    shop: tuple[TestClient, Any, dict[str, str]],
) -> None:
    client, svc, auth = shop
    patched = client.patch("/retailer/store_a", json={"pooled_learning": True}, headers=OPERATOR)
    assert patched.status_code == 200, patched.text
    mine, theirs = kept_curves(60, seed=1), kept_curves(500, seed=2)
    pooled = held_out(2000, theirs) | {"by_retailer": {"store_a": held_out(60, mine),
                                                       "other": held_out(500, theirs)}}  # fmt: skip
    serve(svc, "m-pool", pooled, scope=POOLED_SCOPE)
    body = info(client, auth)
    assert body["kind"] == "pooled" and body["curves"] == mine
    pooled["by_retailer"] = {"other": held_out(500, theirs)}
    serve(svc, "m-pool-2", pooled, scope=POOLED_SCOPE)
    body = info(client, auth)
    assert body["curves"] is None and body["metrics"] is None


def test_the_model_page_draws_the_model_against_the_rule_curve_by_curve(
    shop: tuple[TestClient, Any, dict[str, str]],
) -> None:
    client, svc, auth = shop
    sign_in(client, auth)
    assert "Curve by curve" not in page(client, "model")  # the baseline rule serves
    serve(svc, "m-1", held_out(80, kept_curves()))
    html = page(client, "model")
    assert "Curve by curve, on your held-out carts" in html
    assert "on 80 held-out carts of yours" in html
    for title in (
        "Finding the abandoners: precision against recall, the model and the rule",
        "Finding the buyers: precision against recall, the model and the rule",
        "Calibration: predicted against realised abandonment, the model and the rule",
    ):
        assert html.count(f"<title>{title}</title>") == 2, title  # a screen's and a phone's
    assert "the rule (under $20)" in html and "your target (70 %)" in html
    assert html.count('<td data-label="Who">this model</td>') >= 2  # the bins, in a table

    serve(svc, "m-2", held_out(9, kept_curves(9)))
    assert "No curves to show: held-out curves cover fewer than 10 test carts." in page(
        client, "model"
    )
    serve(svc, "m-3", held_out(80, None))
    assert "No curves to show: this model version was trained before its curves were kept" in (
        page(client, "model")
    )


def recovery(serves: str, heldout: dict[str, Any] | None, reason: str) -> dict[str, Any]:
    action = {"action": "popup_10", "channel": "onsite", "serves": serves,
              "last_training": {"reason": reason, "treated": 1213, "control": 1187}}  # fmt: skip
    if heldout is not None:
        action["last_training"]["heldout"] = heldout
    return action


QINI = {
    "qini": 0.036, "qini_prior": 0.004, "compared_with": "channel_prior",
    "qini_curve": {"shares": [i / 20 for i in range(21)],
                   "model": [0.0, 0.012, 0.021, 0.027, 0.031, 0.034, 0.036, 0.038, 0.039, 0.04,
                             0.04, 0.041, 0.041, 0.041, 0.04, 0.04, 0.039, 0.038, 0.037, 0.036,
                             0.035],
                   "prior": [i / 20 * 0.035 + (0.002 if 0 < i < 20 else 0.0) for i in range(21)]},
}  # fmt: skip


def test_the_experiments_page_draws_the_qini_curve_once_a_learnt_model_serves(
    shop: tuple[TestClient, Any, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, svc, auth = shop
    sign_in(client, auth)
    assert "Qini" not in page(client, "experiments")  # the priors serve
    found = svc.models.info("store_a")
    monkeypatch.setattr(svc.models, "info", lambda retailer_id: found)

    found["recovery"]["actions"][1] = recovery("own", QINI, "promoted")
    html = page(client, "experiments")
    assert "Who responds: your model" in html
    assert html.count("<title>Who responds to popup_10: Qini curves</title>") == 2
    assert "beside it, the channel&#39;s prior" in html and "random targeting" in html
    assert "measured on 2,400 carts" in html
    assert "(Qini coefficient +0.036, against +0.004)" in html
    assert '<th scope="row">50 %</th><td data-label="your model">+4.00</td>' in html

    # The pooled model serves: its curve is the one it was compared with, on the store's carts.
    pooled = QINI | {"compared_with": "pooled_model"}
    found["recovery"]["actions"][1] = recovery("pooled", pooled, "pooled")
    html = page(client, "experiments")
    assert "Who responds: the pooled model" in html
    assert "a model of your carts alone (not serving)" in html
    assert "(Qini coefficient +0.004, against +0.036)" in html

    found["recovery"]["actions"][1] = recovery("own", {"qini": 0.03, "qini_prior": 0.01},
                                               "promoted")  # fmt: skip
    html = page(client, "experiments")
    assert "No Qini curve to show: it was trained before its Qini curves were kept." in html
    found["recovery"]["actions"][1] = recovery("prior", QINI, "not_better")
    assert "Qini" not in page(client, "experiments")  # the prior serves: nothing ranked
