"""The Overview's actions recommended by type and the Targeting page's realised purchase rate
per band: the figures ``GET /retailer/{id}/stats`` shows, in words and charts, on every backend;
what the stats leave out is not shown on the page either."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from cartpredict.api.app import create_app
from cartpredict.api.pages import bands
from cartpredict.monitoring.rollup import rollup
from tests.api.test_pages import secret, signed_in
from tests.support.factories import SettableClock, create_retailer, make_settings

MONDAY = datetime(2026, 11, 2, 10, tzinfo=UTC)
CART = {"retailer_id": "store_a", "item_count": 2, "inactivity_hours": 1.0,
        "device_type": "mobile", "shipping_speed": "standard"}  # fmt: skip


def cells(page: str, row: str) -> list[str]:
    """The text of a table row's cells, the row named by its header."""
    found = re.search(rf"<th scope=\"row\">(?:<code>)?{re.escape(row)}(?:</code>)?</th>(.*?)</tr>",
                      page, re.S)  # fmt: skip
    assert found, row
    return [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", found[1], re.S)]  # fmt: skip


def test_the_pages_show_the_bands_and_decisions_the_stats_show(database_url: str) -> None:
    clock = SettableClock(MONDAY)
    with TestClient(create_app(make_settings(database_url), clock=clock)) as client:
        auth = create_retailer(client, "store_a")
        # Under the baseline rule: carts under $20 score alike, the others alike.
        carts = [{**CART, "cart_id": f"low-{i}", "cart_value": 10.0, "contactable": i % 2 == 0}
                 for i in range(30)] + [
                {**CART, "cart_id": f"high-{i}", "cart_value": 50.0, "contactable": i % 2 == 0}
                 for i in range(40)]  # fmt: skip
        sent = client.post("/predict_cart/batch", json={"carts": carts}, headers=auth)
        assert sent.status_code == 200, sent.text
        clock.now = MONDAY + timedelta(hours=3)
        bought = [{"type": "purchased", "event_id": f"p-{i}", "cart_id": f"high-{i}",
                   "at": (MONDAY + timedelta(hours=2)).isoformat()} for i in range(20)]  # fmt: skip
        events = client.post("/events", json={"retailer_id": "store_a", "events": bought},
                             headers=auth)  # fmt: skip
        assert events.status_code == 200, events.text
        svc = client.app.state.services  # type: ignore[attr-defined]
        svc.recorder.flush(svc.store)
        clock.now = MONDAY + timedelta(days=3)  # Monday is final
        rollup(svc.store, as_of=clock.now)
        stats = client.get("/retailer/store_a/stats", headers=auth).json()
        signed_in(client, secret(auth))
        overview = client.get("/app/store_a/").text
        targeting = client.get("/app/store_a/targeting").text

    shown = [b for b in stats["bands"] if b["carts"]]
    assert sum(b["carts"] for b in shown) == 70  # both bands whole
    assert "What became of each band" in targeting
    for band in shown:
        row = cells(targeting, f"{band['lower'] * 100:.0f}–{band['upper'] * 100:.0f} %")
        figures = [band["carts"], band["resolved"], band["purchased"]]
        assert row[:4] == [f"{n:,}" for n in figures] + [f"{band['purchase_rate'] * 100:.1f} %"]
        assert row[4] == bands.decision_words(band["decision"])
    assert "Bought within 24 h, per band of P(abandoned)" in targeting  # the chart

    assert "Actions recommended by type" in overview
    for action, found in stats["decisions"].items():
        row = cells(overview, "no action" if action == "none" else action)
        assert row[0] == ("not shown" if found["treatment"] is None else f"{found['treatment']:,}")
        assert row[1] == ("not shown" if found["control"] is None else f"{found['control']:,}")
        for reason, n in found["reasons"].items():
            assert f"{bands.REASONS[reason]}: {'not shown' if n is None else n}" in row[2]


def test_figures_the_stats_leave_out_are_not_shown(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the report holds is drawn as it is: a count left out is "not shown", one summed
    over some of the periods only is "at least" that many, a band without carts has no rate,
    and the decision most of a band's carts got is named in words."""
    auth = create_retailer(client, "store_a")
    svc = client.app.state.services  # type: ignore[attr-defined]
    report = svc.stats.report("store_a", days=30)
    empty = dict.fromkeys(("carts", "resolved", "purchased", "purchase_rate", "decision"))
    report |= {
        "bands": [
            {"lower": 0.0, "upper": 0.5, **empty, "carts": 0, "resolved": 0, "purchased": 0},
            {"lower": 0.5, "upper": 0.7, "carts": 120, "resolved": 110, "purchased": 44,
             "purchase_rate": 0.4, "decision": {"group": "treatment", "action": "none"}},
            {"lower": 0.7, "upper": 0.8, "carts": 300, "resolved": 300, "purchased": 60,
             "purchase_rate": 0.2, "decision": {"group": "treatment", "action": "popup_10"}},
            {"lower": 0.8, "upper": 0.9, "carts": 40, "resolved": 40, "purchased": 12,
             "purchase_rate": 0.3, "decision": {"group": "control", "action": "none"}},
            {"lower": 0.9, "upper": 1.0, **empty},
        ],
        "decisions": {
            "popup_10": {"treatment": 250, "control": None,
                         "reasons": {"gain": 240, "no_gain": None}},
            "reminder_email": {"treatment": None, "control": 0, "reasons": {"gain": None}},
            "none": {"treatment": 130, "control": 30,
                     "reasons": {"no_gain": 100, "not_contactable": 30}},
        },
    }  # fmt: skip
    partial = "sums the periods where it is shown"  # the others left it out
    report["suppressed"] = [*report["suppressed"], *({"field": f, "reason": partial} for f in (
        "bands.3", "decisions.none.control", "decisions.reminder_email.control"))]  # fmt: skip
    monkeypatch.setattr(svc.stats, "report", lambda retailer_id, days: report)
    signed_in(client, secret(auth))
    targeting = client.get("/app/store_a/targeting").text
    assert cells(targeting, "70–80 %") == ["300", "300", "60", "20.0 %", "popup_10"]
    assert cells(targeting, "50–70 %")[4] == "no action"
    some = ["at least 40", "at least 40", "at least 12"]  # its other periods left out
    assert cells(targeting, "80–90 %") == [*some, "30.0 %", "held out (control group)"]
    assert cells(targeting, "90–100 %") == ["not shown"] * 5
    assert cells(targeting, "0–50 %") == ["0", "0", "0", "no carts", "no carts"]
    overview = client.get("/app/store_a/").text
    assert cells(overview, "popup_10") == [
        "250", "not shown", "expected to pay: 240; no action pays: not shown"]  # fmt: skip
    assert cells(overview, "reminder_email")[:2] == ["not shown", "not shown"]  # 0, and more
    assert cells(overview, "no action")[:2] == ["130", "at least 30"]
    # The chart: a bar per action, the one not shown a dash, no action last and in grey.
    chart = overview[overview.index("<title>Actions recommended by type</title>") :]
    chart = chart[: chart.index("</svg>")]
    assert chart.index("popup_10: 250") < chart.index("no action: 130")
    assert "reminder_email: not shown" in chart
