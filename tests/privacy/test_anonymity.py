"""k-anonymity that survives subtraction: no two answers single out fewer than 10 carts.

A client may ask for the stats as often as it likes, with any window, before and after its own
predictions and purchases, and subtract one answer from another. Proves, through the HTTP API on
every backend: one more prediction, or a purchase, moves no figure shown (drift included); two
windows never differ by 1 to 9 carts in any bin of the distribution; a retailer served by the
pooled model sees none of its figures over other retailers' carts; and, over random histories,
windows and moments, every count shown is 0 or at least 10, and so is every difference between
two answers over nested sets of periods.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartpredict.api.app import create_app
from cartpredict.models.features import FeatureSpec
from cartpredict.monitoring import breakdown, drift, tally
from cartpredict.monitoring.outcome import FINAL_AFTER
from cartpredict.monitoring.rollup import rollup_now
from cartpredict.monitoring.stats import MAX_DAYS, StatsService
from cartpredict.privacy.anonymity import K_ANONYMITY, kept, suppress_small
from cartpredict.storage import POOLED_SCOPE, DailyStats, Decided, ModelVersion
from tests.support.factories import OPERATOR, SettableClock, make_settings, retailer_spec
from tests.support.stats_answers import count_figures, nested, small_differences, small_figures

DAY0 = datetime(2026, 3, 2, 10, tzinfo=UTC)  # a Monday
CART = {"item_count": 2, "inactivity_hours": 1.0, "device_type": "mobile",
        "shipping_speed": "standard"}  # fmt: skip


@dataclass
class Shop:
    client: TestClient
    clock: SettableClock
    auth: dict[str, str]
    svc: Any

    def predict(self, carts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for cart in carts:
            body = {"retailer_id": "store_1", **CART, **cart}
            response = self.client.post("/predict_cart", json=body, headers=self.auth)
            assert response.status_code == 200, response.text
            out.append(response.json())
        return out

    def purchase(self, cart_ids: list[str], at: datetime) -> None:
        events = [{"type": "purchased", "event_id": f"p-{c}-{at.timestamp()}", "cart_id": c,
                   "at": at.isoformat()} for c in cart_ids]  # fmt: skip
        response = self.client.post(
            "/events", json={"retailer_id": "store_1", "events": events}, headers=self.auth
        )
        assert response.status_code == 200, response.text

    def rollup(self) -> None:
        """What a running server does every few minutes."""
        rollup_now(self.svc.store, self.svc.recorder, clock=self.clock)

    def stats(self, days: int = 30) -> dict[str, Any]:
        response = self.client.get(f"/retailer/store_1/stats?days={days}", headers=self.auth)
        assert response.status_code == 200, response.text
        return response.json()

    def serve(self, version: ModelVersion) -> None:
        self.svc.store.add_model_version(version=version)
        self.svc.store.set_served(
            scope=version.scope, version_id=version.version_id, action="promote", at=DAY0
        )
        self.svc.notifier.changed("store_1")


@pytest.fixture
def shop(database_url: str) -> Iterator[Shop]:
    clock = SettableClock(DAY0)
    with TestClient(create_app(make_settings(database_url), clock=clock)) as client:
        response = client.post("/retailer", json=retailer_spec("store_1"), headers=OPERATOR)
        assert response.status_code == 201, response.text
        auth = {"Authorization": f"Bearer {response.json()['api_key']}"}
        yield Shop(client, clock, auth, client.app.state.services)  # type: ignore[attr-defined]


def model(
    version_id: str,
    *,
    scope: str = "store_1",
    profile: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    n_train: int = 200,
) -> ModelVersion:
    """A logistic model whose P(abandoned) falls with cart value: about 0.87 at 7, 0.32 at 45."""
    return ModelVersion(
        version_id=version_id, scope=scope, created_at=DAY0, train_start=DAY0,
        train_end=DAY0, n_train=n_train, threshold=0.5,
        metrics={"n_test_carts": 40, "candidate": {"auc_pr_purchased": 0.5}}
        if metrics is None else metrics,
        model={"kind": "logistic", "features": FeatureSpec(cart=True).to_dict(),
               "intercept": 5.0, "threshold": 0.5,
               "weights": {n: 0.0 for n in FeatureSpec(cart=True).names()} | {"log_value": -1.5}},
        profile=profile,
    )  # fmt: skip


def profile_of(carts: list[dict[str, Any]]) -> drift.Profile:
    profile = drift.empty()
    for cart in carts:
        c = {**CART, **cart}
        drift.add_values(profile, c["cart_value"], c["item_count"], c["device_type"],
                         c["shipping_speed"])  # fmt: skip
    return profile


# --- the subtractions that isolated carts ------------------------------------------------------


def test_one_more_prediction_or_purchase_moves_no_figure_shown(shop: Shop) -> None:
    """Drift used to cover the last 7 days, today included: ``drift.carts`` went 262 -> 263
    after one prediction, and its PSI moved with that one cart. A day's pending outcomes moved
    its figures as they resolved."""
    carts = [{"cart_id": f"m{i}", "cart_value": 20.0 + i % 150,
              "device_type": ("mobile", "desktop")[i % 2]} for i in range(250)]  # fmt: skip
    shop.serve(model("m-1", profile=profile_of(carts)))
    shop.clock.now = DAY0 + timedelta(days=6)  # Sunday
    shop.predict(carts)
    shop.clock.now = DAY0 + timedelta(days=8)  # Tuesday: 12 carts, not final until Friday
    shop.predict([{"cart_id": f"t{i}", "cart_value": 30.0} for i in range(12)])
    shop.clock.now = DAY0 + timedelta(days=9)  # Wednesday: Sunday, and its week, are final
    shop.rollup()
    before = shop.stats(days=7)

    shop.clock.now += timedelta(minutes=1)
    shop.predict([{"cart_id": "one-more", "cart_value": 5000.0, "device_type": "tablet"}])
    shop.purchase(["t0", "m0", "one-more"], shop.clock.now)  # Tuesday's, Sunday's, today's
    shop.clock.now += timedelta(seconds=5)
    shop.rollup()
    after = shop.stats(days=7)
    assert after == before
    assert before["drift"]["carts"] == 250 and before["drift"]["features"], before["drift"]
    assert before["drift"]["window"] == {"start": "2026-03-02", "end": "2026-03-08", "days": 7}
    assert [p["start"] for p in before["periods"]] == ["2026-03-08"]


def test_two_windows_never_differ_by_a_few_carts_in_a_bin(shop: Shop) -> None:
    """The distribution used to be merged per answer: days=4 and days=5 differed by the older
    day's 3 carts in the bin [0.3, 0.4)."""
    shop.serve(model("m-1"))
    monday = [{"cart_id": f"a{i}", "cart_value": 7.0} for i in range(12)]
    monday += [{"cart_id": f"b{i}", "cart_value": 45.0} for i in range(3)]
    tuesday = [{"cart_id": f"c{i}", "cart_value": 7.0} for i in range(12)]
    tuesday += [{"cart_id": f"d{i}", "cart_value": 45.0} for i in range(15)]
    for day, carts in enumerate((monday, tuesday)):
        shop.clock.now = DAY0 + timedelta(days=day)
        scored = shop.predict(carts)
        bins = [int(s["abandonment_probability"] * 10) for s in scored]
        assert bins == [8 if c["cart_value"] == 7.0 else 3 for c in carts]  # as designed
    shop.clock.now = DAY0 + timedelta(days=4)  # Friday: Monday and Tuesday are final
    shop.rollup()
    answers = {days: shop.stats(days=days) for days in range(1, 8)}
    assert [p["start"] for p in answers[4]["periods"]] == ["2026-03-03"]
    assert [p["start"] for p in answers[5]["periods"]] == ["2026-03-02", "2026-03-03"]
    for days in range(1, 7):
        assert small_differences(answers[days], answers[days + 1]) == []
    # Monday's 3 carts near 0.3 are left out, and so is its bin of 12 that would give them away.
    assert answers[5]["distribution"] == [
        {"lower": 0.3, "upper": 0.4, "carts": 15},
        {"lower": 0.8, "upper": 0.9, "carts": 12},
    ]
    reason = "bins holding 1 to 9 carts of a period (or giving such a bin away) are left out"
    assert {"field": "distribution", "reason": reason + " of the sums"} in answers[5]["suppressed"]


def test_under_the_pooled_model_a_retailer_sees_no_figure_over_other_retailers_carts(
    shop: Shop,
) -> None:
    """It used to see the pooled model's n_train, n_train_carts, n_test_carts and AUCs."""
    update = shop.client.patch(
        "/retailer/store_1", json={"pooled_learning": True}, headers=OPERATOR
    )
    assert update.status_code == 200, update.text
    mine = profile_of([{"cart_value": 30.0}] * 240)
    others = profile_of([{"cart_value": 900.0}] * 5000)
    pooled_metrics = {"n_test_carts": 2000, "n_train_carts": 5000,
                      "candidate": {"auc_pr_purchased": 0.61, "roc_auc": 0.7}}  # fmt: skip
    pooled = model("m-pool", scope=POOLED_SCOPE, profile={"by_retailer": {"store_1": mine,
                   "other": others}}, metrics=pooled_metrics, n_train=5240)  # fmt: skip

    def info(version: ModelVersion) -> dict[str, Any]:
        shop.serve(version)
        response = shop.client.get("/retailer/store_1/model", headers=shop.auth)
        assert response.status_code == 200, response.text
        return response.json()

    others_note = "pooled model: figures over other retailers' carts are not shown"
    body = info(pooled)
    assert (body["kind"], body["model_version"]) == ("pooled", "m-pool")
    assert body["weights"]["log_value"] == -1.5 and body["intercept"] == 5.0  # weights cross
    assert body["threshold"] == 0.5 and body["training_window"] is not None
    assert body["metrics"] is None
    assert body["n_train"] == 240  # its own rows, from its share of the training profile
    assert body["suppressed"] == [
        {"field": "metrics", "reason": others_note},
        {"field": "n_train", "reason": "pooled model: counts the training rows of your carts only"},
    ]
    assert "5240" not in str(body) and "2000" not in str(body) and "0.61" not in str(body)

    # Held-out figures on its own test carts, where the version holds them per member.
    own = {"n_test_carts": 60, "candidate": {"auc_pr_purchased": 0.55}}
    body = info(replace(pooled, version_id="m-pool-2",
                        metrics={**pooled_metrics, "by_retailer": {"store_1": own}}))  # fmt: skip
    assert body["metrics"] == own
    few = {**own, "n_test_carts": 9}
    body = info(replace(pooled, version_id="m-pool-3",
                        metrics={**pooled_metrics, "by_retailer": {"store_1": few}}))  # fmt: skip
    assert body["metrics"] is None
    assert body["suppressed"][0] == {
        "field": "metrics",
        "reason": f"{others_note}; yours cover fewer than 10 test carts",
    }
    # Its own share under k, or not known: no count at all.
    small = {"by_retailer": {"store_1": profile_of([{"cart_value": 30.0}] * 4), "other": others}}
    for version_id, profile in (("m-pool-4", small), ("m-pool-5", None)):
        body = info(replace(pooled, version_id=version_id, profile=profile))
        assert body["n_train"] is None
        assert body["suppressed"][1]["field"] == "n_train"


def test_a_week_cut_short_by_retention_is_not_shown_shrunk(shop: Shop) -> None:
    """The small days of a week are shown together only while the whole week is held: once its
    Monday is past the 90 days held, Wednesday and Friday alone would give Monday's 4 carts
    away (15 carts, then 11)."""
    monday = date(2026, 3, 2)
    rows = [
        DailyStats("store_1", monday + timedelta(days=i), DAY0, True,
                   day_figures(random.Random(i), carts, final=True))
        for i, carts in ((0, 4), (2, 5), (4, 6))
    ]  # fmt: skip
    shop.svc.store.put_daily_stats(retailer_id="store_1", days=rows)
    held = timedelta(days=MAX_DAYS - 1)  # today and the 89 days before it
    shop.clock.now = datetime.combine(monday + held, time(12), UTC)
    (week,) = shop.stats(days=MAX_DAYS)["periods"]
    assert (week["start"], week["end"], week["carts"]) == ("2026-03-02", "2026-03-06", 15)
    shop.clock.now += timedelta(days=2)  # Monday and Tuesday are no longer held
    body = shop.stats(days=MAX_DAYS)
    assert body["periods"] == []
    reason = "the week of 2026-03-02: days with fewer than 10 carts each, no longer held whole"
    assert {"field": "periods", "reason": reason} in body["suppressed"]


def test_days_past_a_shorter_retention_are_never_shown(shop: Shop) -> None:
    """With aggregates kept 30 days, a day 30 days back may be purged at any moment: it is
    not shown, so that its purge moves no figure."""
    today = DAY0.date()
    rows = [
        DailyStats("store_1", today - timedelta(days=back), DAY0, True,
                   day_figures(random.Random(back), 20, final=True))
        for back in (29, 30)
    ]  # fmt: skip
    shop.svc.store.put_daily_stats(retailer_id="store_1", days=rows)
    svc = shop.svc
    stats = StatsService(
        store=svc.store,
        retailer=lambda rid: svc.tenants.load(rid).retailer,
        registry=svc.registry,
        clock=shop.clock,
        held_days=30,
    )
    body = stats.report("store_1", days=MAX_DAYS)
    assert [p["start"] for p in body["periods"]] == [(today - timedelta(days=29)).isoformat()]
    assert len(shop.stats(days=MAX_DAYS)["periods"]) == 2  # held 90 days (the default)


def test_drift_shows_a_week_once_every_day_of_it_is_final(shop: Shop) -> None:
    """Drift is taken over one calendar week, whole: while a day of it waits for its last
    rollup, the week before is shown, never the week without that day."""
    carts = [{"cart_value": v} for v in (15.0, 60.0, 120.0) * 100]
    shop.serve(model("m-1", profile=profile_of(carts)))
    monday = date(2026, 3, 2)
    wednesday = datetime.combine(monday + timedelta(days=9), time(), UTC)

    def week(sunday_final: bool) -> list[DailyStats]:
        return [
            DailyStats("store_1", monday + timedelta(days=i), wednesday, i < 6 or sunday_final,
                       day_figures(random.Random(i), 300, final=True))
            for i in range(7)
        ]  # fmt: skip

    shop.clock.now = wednesday + timedelta(minutes=2)  # Sunday's final rollup has not run yet
    shop.svc.store.put_daily_stats(retailer_id="store_1", days=week(sunday_final=False))
    waiting = shop.stats()["drift"]
    assert waiting["window"] == {"start": "2026-02-23", "end": "2026-03-01", "days": 7}
    assert waiting["status"] == "insufficient_data"  # nothing scored that week
    shop.svc.store.put_daily_stats(retailer_id="store_1", days=week(sunday_final=True))
    final = shop.stats()["drift"]
    assert final["window"] == {"start": "2026-03-02", "end": "2026-03-08", "days": 7}
    assert final["carts"] == 2100 and final["features"]


# --- pairs of answers over random histories ----------------------------------------------------

BINS_SHIFT = (0.0, 0.2, 0.45, 0.7)  # where a day's P(abandoned) is centred
LEVELS = (0.0, 0.03, 0.5, 0.97, 1.0)  # shares that make cells of 0, a few, or most carts


def day_figures(rng: random.Random, carts: int, final: bool) -> dict[str, Any]:
    """One day of a random retailer: P(abandoned), decisions, outcomes, retention decisions and
    profile drawn with shares that often leave 1 to 9 carts in a bin or a cell."""
    figures = tally.empty()
    figures[breakdown.KEY] = broken = breakdown.empty()
    centre, flag_share = rng.choice(BINS_SHIFT), rng.choice(LEVELS)
    bought, without_id = rng.choice(LEVELS), rng.choice(LEVELS[:3])
    held, undecided, acted = rng.choice(LEVELS), rng.choice(LEVELS[:3]), rng.choice(LEVELS)
    for _ in range(carts):
        p = min(max(rng.gauss(centre + 0.3, 0.15), 0.0), 1.0)
        abandoned = rng.random() < flag_share
        if rng.random() < without_id:
            outcome = "without_cart_id"
        elif not final and rng.random() < 0.5:
            outcome = "pending"
        elif rng.random() < bought:
            outcome = "fp" if abandoned else "tn"
        else:
            outcome = "tp" if abandoned else "fn"
        value = rng.choice((5.0, 15.0, 40.0, 60.0, 120.0, 300.0, 800.0))
        device = rng.choice(("mobile", "mobile", "desktop", "tablet"))
        speed = rng.choice(("standard", "standard", "express"))
        tally.count(figures, p, abandoned, outcome, value, rng.randint(1, 12), device, speed)
        decision = None if rng.random() < undecided else random_decision(rng, held, acted)
        breakdown.count(broken, p, outcome, decision)
    figures["predictions"] = carts + rng.randint(0, 3)
    return figures


def random_decision(rng: random.Random, held: float, acted: float) -> Decided:
    """A decision drawn with shares that often leave 1 to 9 carts of an action or a reason."""
    action = rng.choice(("reminder_email", "popup_10")) if rng.random() < acted else "none"
    reason = rng.choice(("gain", "gain", "no_gain")) if action != "none" else rng.choice(
        ("no_gain", "no_gain", "not_contactable", "budget"))  # fmt: skip
    if rng.random() < held:
        return Decided(1, "control", "none", action, 1.0, 0.0, "control")
    return Decided(1, "treatment", action, "none", 1.0, 0.0, reason)


@dataclass(frozen=True)
class History:
    """Carts per day up to ``last``; each day final from ``day end + FINAL_AFTER + lag``."""

    last: date
    carts: tuple[int, ...]
    lags_h: tuple[int, ...]
    seed: int

    def rows(self, retailer_id: str, now: datetime) -> list[DailyStats]:
        """The daily aggregates a rollup at ``now`` would have left: final days as they will
        stay, the others with figures of the moment (drawn anew: they must never show)."""
        rows = []
        first = self.last - timedelta(days=len(self.carts) - 1)
        for i, (carts, lag) in enumerate(zip(self.carts, self.lags_h, strict=True)):
            day = first + timedelta(days=i)
            final_at = datetime.combine(day + timedelta(days=1), time(), UTC) + FINAL_AFTER
            final_at += timedelta(hours=lag)
            if day > now.date() or not carts:
                continue
            final = now >= final_at
            rng = random.Random(f"{self.seed}-{day}" if final else f"{self.seed}-{day}-{now}")
            figures = day_figures(rng, carts if final else rng.randint(1, carts), final)
            at = final_at if final else now
            rows.append(DailyStats(retailer_id, day, at, final, figures))
        return rows


@st.composite
def histories(draw: st.DrawFn, last: date) -> History:
    days = draw(st.one_of(st.integers(1, 110), st.integers(85, 110)))  # often past retention
    size = st.one_of(st.just(0), st.integers(1, 9), st.integers(10, 40), st.integers(200, 400))
    return History(
        last=last,
        carts=tuple(draw(st.lists(size, min_size=days, max_size=days))),
        lags_h=tuple(draw(st.lists(st.integers(0, 3), min_size=days, max_size=days))),
        seed=draw(st.integers(0, 2**31)),
    )


LAST = date(2026, 6, 10)
RETAILER_IDS = itertools.count()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=histories(LAST),
    later=st.one_of(st.integers(0, 4 * 60), st.integers(0, 23 * 60)),  # into the last day
    earlier=st.one_of(st.integers(0, 180), st.integers(0, 12 * 24 * 60)),  # minutes before
    windows=st.lists(st.integers(1, MAX_DAYS), min_size=1, max_size=5, unique=True),
)
def test_no_two_answers_differ_by_1_to_9_carts(
    shop: Shop, history: History, later: int, earlier: int, windows: list[int]
) -> None:
    """Every count an answer shows is 0 or at least 10. Two answers over nested sets of
    periods (two windows at one moment, or one window at two moments when nothing left it)
    differ by 0 or at least 10 carts in every figure; a period shown twice is shown alike
    (nor does another period share its first or last day); drift over one week never moves.
    (Answers over sets that are not nested differ by whole periods on both
    sides: 12 carts one day, 10 another, is no cart singled out.)"""
    rid = f"r{next(RETAILER_IDS)}"
    created = shop.client.post("/retailer", json=retailer_spec(rid), headers=OPERATOR)
    assert created.status_code == 201, created.text
    store = shop.svc.store
    profile = profile_of([{"cart_value": v} for v in (15.0, 60.0, 120.0) * 100])
    shop.serve(model(f"m-{rid}", scope=rid, profile=profile))
    windows = sorted({*windows, MAX_DAYS})
    t2 = datetime.combine(LAST, time(), UTC) + timedelta(minutes=later)
    answers: list[tuple[datetime, int, dict[str, Any]]] = []
    for now in (t2 - timedelta(minutes=earlier), t2):
        shop.clock.now = now
        store.put_daily_stats(retailer_id=rid, days=history.rows(rid, now))
        for days in windows:
            response = shop.client.get(f"/retailer/{rid}/stats?days={days}", headers=OPERATOR)
            assert response.status_code == 200, response.text
            answers.append((now, days, response.json()))

    for _, _, answer in answers:
        assert small_figures(answer) == {}
        if answer["totals"] is not None:
            assert answer["totals"]["carts"] == sum(p["carts"] for p in answer["periods"])
    for (t_a, _, a), (t_b, _, b) in itertools.combinations(answers, 2):
        if t_a == t_b:
            assert nested(a, b)  # every window ends today: they differ by whole periods
        if nested(a, b):
            assert small_differences(a, b) == [], (t_a, t_b)
        for period, other in itertools.product(a["periods"], b["periods"]):
            if period["start"] == other["start"] or period["end"] == other["end"]:
                assert period == other  # a day is in one group, final: it never moves
        if a["drift"]["window"] == b["drift"]["window"]:  # one final week: never moves
            assert a["drift"] == b["drift"]
    assert all(isinstance(n, int | None) for _, _, x in answers for n in count_figures(x).values())


# --- the rule itself ---------------------------------------------------------------------------


@given(st.lists(st.one_of(st.integers(0, 12), st.integers(0, 400)), max_size=12))
def test_what_a_split_leaves_out_is_never_1_to_9_carts(parts: list[int]) -> None:
    shown = suppress_small(parts, K_ANONYMITY)
    assert all(s is None or s == n for s, n in zip(shown, parts, strict=True))
    assert all(kept(s, K_ANONYMITY) for s in shown if s is not None)
    hidden = sum(n for s, n in zip(shown, parts, strict=True) if s is None)
    assert kept(hidden, K_ANONYMITY) or sum(parts) < K_ANONYMITY
    # Nothing more than needed: a part kept and not needed to cover a remainder stays shown.
    if all(kept(n, K_ANONYMITY) for n in parts):
        assert shown == parts
