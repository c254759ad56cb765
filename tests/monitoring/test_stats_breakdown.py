"""The stats' bands of P(abandoned) and decisions by action (``monitoring/breakdown.py``).

Proves, on every backend, with the carts a test sends through the predictor and purchases
through the events: each band's carts, realised purchases within 24 h and most common decision,
and each action's decided carts and reasons, are what the carts make of them; a band with an
outcome or a bin of 1 to 9 carts is left out, with the band that would give it away; no count
shown, nor any difference of two answers (other windows) or of two figures of one answer (a band
against its bins or the totals, the reasons against their action), is 1 to 9 carts.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartpredict.api.app import create_app
from cartpredict.monitoring import breakdown, tally
from cartpredict.monitoring.rollup import rollup
from cartpredict.privacy.anonymity import K_ANONYMITY, suppress_small
from cartpredict.serving.schemas import StatsOut
from cartpredict.storage import DailyStats
from tests.monitoring.test_stats import DAY0, purchase, score, stats_over_http, trained
from tests.monitoring.test_stats import world as world  # the fixture
from tests.support.factories import OPERATOR
from tests.support.stats_answers import count_figures, small_differences, small_figures

# Per band: (cart value, named carts, bought within 24 h). The model scores a cart by its
# value alone: 50 -> 0.29, 20 -> 0.61, 12 -> 0.76, 7 -> 0.87, 3 -> 0.95.
MONDAY = {0: (50.0, 40, 12), 1: (20.0, 25, 10), 2: (12.0, 30, 0), 3: (7.0, 20, 10), 4: (3.0, 4, 0)}
TUESDAY = {0: (50.0, 40, 20), 1: (20.0, 12, 0), 2: (12.0, 30, 10), 3: (7.0, 20, 15)}


def serve_by_value(svc: Any) -> None:
    """A model whose P(abandoned) falls with cart value (``MONDAY``'s values)."""
    spread = trained("m-spread", intercept=5.0, weights={"log_value": -1.5})
    svc.store.add_model_version(version=spread)
    svc.store.set_served(scope="store_1", version_id="m-spread", action="promote", at=DAY0)
    svc.notifier.changed("store_1")


def send_day(svc: Any, clock: Any, day: int, bands: dict[int, tuple[float, int, int]]) -> list[Any]:
    """Score the day's carts (every other one contactable) and send the purchases of the first
    ones of each band 2 h later; the decisions' answers, latest per cart."""
    start = DAY0 + timedelta(days=day)
    clock.now = start
    carts, bought = [], []
    for band, (value, n, n_bought) in bands.items():
        ids = [f"d{day}-b{band}-{i}" for i in range(n)]
        carts += [{"cart_id": c, "cart_value": value, "contactable": i % 2 == 0}
                  for i, c in enumerate(ids)]  # fmt: skip
        bought += ids[:n_bought]
    answers = score(svc, carts)
    for cart, answer in zip(carts, answers, strict=True):
        value = cart["cart_value"]
        intended = next(b for b, (v, _, _) in bands.items() if v == value)
        assert breakdown.band_of(answer["abandonment_probability"]) == intended, answer
    clock.now = start + timedelta(hours=3)
    purchase(svc, bought, start + timedelta(hours=2))
    return [(cart["cart_id"], answer) for cart, answer in zip(carts, answers, strict=True)]


def decisions_of(days: list[list[tuple[str, Any]]]) -> dict[str, dict[str, Any]]:
    """What the stats should show of the decisions: each day one group, split by the rule of
    ``breakdown.py`` (parts of the named carts, the reasons parts of a treatment count)."""
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"treatment": None, "control": None, "reasons": {}}
    )

    def plus(into: dict[str, Any], key: str, n: int | None) -> None:
        if n is not None:
            into[key] = (into.get(key) or 0) + n
        else:
            into.setdefault(key, None)

    for day in days:
        treated: dict[str, Counter[str]] = defaultdict(Counter)
        held: Counter[str] = Counter()
        for _, answer in day:
            d = answer["decision"]
            if d["group"] == "control":
                held[d["held_out"]] += 1
            else:
                treated[d["action"]][d["reason"]] += 1
        actions = sorted(set(treated) | set(held))
        totals = [sum(treated[a].values()) for a in actions]
        parts = suppress_small([*totals, *(held[a] for a in actions), 0], K_ANONYMITY)
        for i, action in enumerate(actions):
            plus(out[action], "treatment", parts[i])
            plus(out[action], "control", parts[len(actions) + i])
            names = sorted(treated[action], key=breakdown._reason_order)
            counts = [treated[action][r] for r in names]
            split = suppress_small(counts, K_ANONYMITY) if parts[i] else [None] * len(names)
            for reason, n in zip(names, split, strict=True):
                plus(out[action]["reasons"], reason, n)
    return dict(out)


def test_bands_and_decisions_are_what_the_carts_sent_make_of_them(world: Any) -> None:
    svc, settings, clock = world
    serve_by_value(svc)
    # Monday: a cart first scored at 3 (0.95) counts once, in the band of its latest score.
    score(svc, [{"cart_id": "d0-b0-0", "cart_value": 3.0}])
    monday = send_day(svc, clock, 0, MONDAY)
    score(svc, [{"cart_value": 50.0}] * 10)  # without an id: in its band, without an outcome
    tuesday = send_day(svc, clock, 1, TUESDAY)
    clock.now = DAY0 + timedelta(hours=31)
    late = [f"d0-b0-{i}" for i in range(12, 15)]
    purchase(svc, late, DAY0 + timedelta(hours=30))  # after 24 h: abandoned
    clock.now = DAY0 + timedelta(days=4)  # both days final
    rollup(svc.store, as_of=clock.now)
    body = stats_over_http(svc, settings, clock)
    StatsOut.model_validate(body)
    assert [(p["start"], p["carts"]) for p in body["periods"]] == [
        ("2026-03-02", 129), ("2026-03-03", 102)]  # fmt: skip

    # Monday: 4 carts above 0.9 leave their bin out of the distribution, with the 20 carts of
    # 0.8-0.9 (the smallest other bin): both bands are left out. Tuesday: the 5 unbought carts
    # of 0.8-0.9 leave it out, and the 12 carts of 0.5-0.7 with it (the smallest other band),
    # so that the day's abandoned carts, less the bands shown, are not 5.
    bands = {(b["lower"], b["upper"]): b for b in body["bands"]}
    assert list(bands) == [(0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0)]
    figures = {k: (b["carts"], b["resolved"], b["purchased"], b["purchase_rate"])
               for k, b in bands.items()}  # fmt: skip
    assert figures == {
        (0.0, 0.5): (40 + 10 + 40, 40 + 40, 12 + 20, pytest.approx(32 / 80)),
        (0.5, 0.7): (25, 25, 10, pytest.approx(10 / 25)),  # Monday's alone
        (0.7, 0.8): (60, 60, 10, pytest.approx(10 / 60, abs=1e-4)),
        (0.8, 0.9): (None, None, None, None),
        (0.9, 1.0): (0, 0, 0, None),  # Tuesday has none; Monday's 4 are left out
    }
    suppressed = {s["field"] for s in body["suppressed"]}
    assert {"bands.1", "bands.3", "bands.4"} <= suppressed  # partial sums, or none
    assert "bands.4.purchase_rate" not in suppressed  # no carts, no rate: nothing left out
    # The decision most carts of a band got, over the days where it is shown.
    shown_days = {0: [monday, tuesday], 1: [monday], 2: [monday, tuesday]}
    for band, days in shown_days.items():
        got = Counter(
            f"{a['decision']['group']}:{a['decision']['action']}"
            for day in days for cart_id, a in day if f"-b{band}-" in cart_id
        )  # fmt: skip
        key, n = max(got.items(), key=lambda item: (item[1], item[0]))
        group, _, action = key.partition(":")
        expected = {"group": group, "action": action} if n >= K_ANONYMITY else None
        lower, upper = breakdown.BANDS[band]
        assert bands[(lower / 10, upper / 10)]["decision"] == expected

    # Decisions by action: each day's split as the rule makes it, summed.
    assert body["decisions"] == decisions_of([monday, tuesday])
    assert set(body["decisions"]) >= {"none"}
    assert body["decisions"]["none"]["reasons"]  # why no action, for carts that got none

    # Nothing shown, nor any difference within an answer or between windows, is 1 to 9 carts.
    with TestClient(create_app(settings, clock=clock)) as client:
        answers = [client.get(f"/retailer/store_1/stats?days={d}", headers=OPERATOR).json()
                   for d in range(1, 8)]  # fmt: skip
    for answer in answers:
        assert small_figures(answer) == {}, answer
    for one, other in itertools.combinations(answers, 2):
        assert small_differences(one, other) == []
    assert "bands[0, 0.5).rest_of_its_bins" in count_figures(body)


def test_days_rolled_up_before_the_breakdown_are_left_out_of_it(world: Any) -> None:
    svc, settings, clock = world
    serve_by_value(svc)
    send_day(svc, clock, 0, {0: (50.0, 30, 10)})
    clock.now = DAY0 + timedelta(days=3)
    rollup(svc.store, as_of=clock.now)
    old = tally.empty() | {"carts": 12, "predictions": 12, "distribution": [0] * 9 + [12]}
    old["outcomes"] = {**old["outcomes"], "tp": 12}
    day = (DAY0 - timedelta(days=1)).date()  # Sunday, as an older version kept it
    svc.store.put_daily_stats(retailer_id="store_1", days=[
        DailyStats("store_1", day, datetime.combine(day, DAY0.timetz()), True, old)])  # fmt: skip
    body = stats_over_http(svc, settings, clock)
    assert [p["carts"] for p in body["periods"]] == [12, 30]
    band = body["bands"][0]
    assert (band["carts"], band["resolved"], band["purchased"]) == (30, 30, 10)
    assert body["bands"][4]["carts"] == 0  # Monday's: Sunday's 12 are not in the sum
    assert "bands.4" in {s["field"] for s in body["suppressed"]}  # and it says so
    reason = "left out of some periods: days rolled up before these figures were kept"
    assert {"field": "bands", "reason": reason} in body["suppressed"]
    assert {"field": "decisions", "reason": reason} in body["suppressed"]
