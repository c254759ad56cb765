"""Daily aggregates and what a retailer sees of them.

Proves, with a controllable clock: outcomes are matched with the purchases that follow a
prediction (realised precision and recall at the served decision); a day is shown once final;
every aggregate endpoint shows only counts of 0 or at least 10 carts, merging or suppressing the
rest and saying so; drift (PSI) tells a stable stream from a shifted one; a running server
writes the prediction log and updates the stats on its own; an outage of the store loses no
buffered prediction. (``test_anonymity_pairs.py``: no two answers can be subtracted.)
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from cartpredict.api.app import create_app
from cartpredict.core.clock import rfc3339
from cartpredict.models.features import FeatureSpec
from cartpredict.monitoring import drift, tally
from cartpredict.monitoring.recorder import PredictionRecorder
from cartpredict.monitoring.rollup import rollup
from cartpredict.privacy.anonymity import K_ANONYMITY, merge_small
from cartpredict.serving.container import build_services
from cartpredict.serving.schemas import CartIn, EventsIn, RetailerCreate, StatsOut
from cartpredict.storage import POOLED_SCOPE, ModelVersion
from cartpredict.storage.migrate import upgrade
from tests.support.factories import OPERATOR, SettableClock, make_settings, retailer_spec
from tests.support.stats_answers import small_differences

DAY0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
FINAL_NOTE = ("a day is shown once final, 2 days after it ends (every outcome in, late events "
              "arrived): its figures never change")  # fmt: skip


@pytest.fixture
def world(database_url: str) -> Any:
    upgrade(database_url)
    clock = SettableClock(DAY0)
    settings = make_settings(database_url)
    svc = build_services(settings, clock)
    svc.retailers.create(RetailerCreate.model_validate(retailer_spec("store_1")))
    yield svc, settings, clock
    svc.close()


def score(svc: Any, carts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tenant = svc.tenants.load("store_1")
    base = {"retailer_id": "store_1", "item_count": 2, "inactivity_hours": 1.0,
            "device_type": "mobile", "shipping_speed": "standard"}  # fmt: skip
    out = [svc.predictor.predict(tenant, CartIn.model_validate({**base, **c})) for c in carts]
    svc.recorder.flush(svc.store)
    return out


def purchase(svc: Any, cart_ids: list[str], at: datetime) -> None:
    batch = EventsIn.model_validate({
        "retailer_id": "store_1",
        "events": [{"type": "purchased", "event_id": f"p-{c}-{at.timestamp()}", "cart_id": c,
                    "at": at.isoformat()} for c in cart_ids],
    })  # fmt: skip
    svc.events.ingest(svc.store.get_retailer(retailer_id="store_1"), batch.events)


def stats_over_http(svc: Any, settings: Any, clock: SettableClock, path: str = "stats") -> Any:
    with TestClient(create_app(settings, clock=clock)) as client:
        key = client.post("/retailer/store_1/keys", headers=OPERATOR).json()["api_key"]
        response = client.get(f"/retailer/store_1/{path}",
                              headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()


def not_breakdown(notes: list[dict[str, str]]) -> list[dict[str, str]]:
    """The notes but those on the bands and decisions (``test_stats_breakdown.py``)."""
    return [n for n in notes if not n["field"].startswith(("bands", "decisions"))]


def shown_groups(body: dict[str, Any]) -> list[int]:
    """The cart counts of every group the stats response shows."""
    groups = [p["carts"] for p in body["periods"]] + [b["carts"] for b in body["distribution"]]
    if body["totals"] is not None:
        groups.append(body["totals"]["carts"])
    return groups


def test_outcomes_give_realised_precision_and_recall(world: Any) -> None:
    svc, settings, clock = world
    # The baseline serves: "abandoned" below a cart value of 20.
    flagged = [{"cart_id": f"a{i}", "cart_value": 10.0} for i in range(40)]
    passed = [{"cart_id": f"b{i}", "cart_value": 50.0} for i in range(20)]
    without_id = [{"cart_value": 5.0}] * 10  # flagged, no outcome
    decisions = score(svc, flagged + passed + without_id)
    assert [d["prediction"] for d in decisions[:40]] == ["abandoned"] * 40
    assert [d["prediction"] for d in decisions[40:60]] == ["purchased"] * 20
    clock.now = DAY0 + timedelta(minutes=5)
    score(svc, [{"cart_id": "a0", "cart_value": 11.0}])  # scored twice: still one cart
    clock.now = DAY0 + timedelta(hours=8)
    purchase(svc, [f"a{i}" for i in range(12)], DAY0 + timedelta(hours=2))  # flagged, bought
    purchase(svc, [f"b{i}" for i in range(10)], DAY0 + timedelta(hours=3))  # passed, bought
    assert rollup(svc.store, as_of=clock.now) == 1
    (day,) = svc.store.daily_stats(retailer_id="store_1", start=DAY0.date(), end=DAY0.date())
    assert day.figures["outcomes"] == {"tp": 0, "fp": 12, "fn": 0, "tn": 10, "pending": 38,
                                       "without_cart_id": 10}  # fmt: skip
    assert not day.final

    # Every 24 h window has closed, but a late purchase may still arrive: nothing is shown yet,
    # so that no figure shown ever moves.
    clock.now = DAY0 + timedelta(hours=31)
    purchase(svc, ["b19"], DAY0 + timedelta(hours=30))  # too late: abandoned within 24 h
    rollup(svc.store, as_of=clock.now)
    body = stats_over_http(svc, settings, clock)
    assert (body["periods"], body["totals"]) == ([], None)
    assert {"field": "periods", "reason": FINAL_NOTE} in body["suppressed"]

    clock.now = DAY0 + timedelta(days=3)  # the day ended 2 days ago: final
    rollup(svc.store, as_of=clock.now)
    (day,) = svc.store.daily_stats(retailer_id="store_1", start=DAY0.date(), end=DAY0.date())
    assert day.final  # every outcome in, late events had their day: never computed again
    body = stats_over_http(svc, settings, clock)
    StatsOut.model_validate(body)
    (period,) = body["periods"]
    assert period["start"] == period["end"] == DAY0.date().isoformat()
    assert (period["carts"], period["predictions"], period["predicted_abandoned"]) == (70, 71, 50)
    outcomes = period["outcomes"]
    assert (outcomes["resolved"], outcomes["pending"], outcomes["without_cart_id"]) == (60, 0, 10)
    assert outcomes["precision"] == pytest.approx(28 / 40, abs=1e-4)  # a12..a39 of a0..a39
    assert outcomes["recall"] == pytest.approx(28 / 38, abs=1e-4)  # and b10..b19 missed
    assert outcomes["abandonment_rate"] == pytest.approx(38 / 60, abs=1e-4)
    assert body["totals"] == {k: v for k, v in period.items() if k not in ("start", "end", "days")}
    assert not_breakdown(body["suppressed"]) == [{"field": "periods", "reason": FINAL_NOTE}]
    assert body["computed_at"] == rfc3339(clock.now)


def test_every_aggregate_endpoint_suppresses_groups_under_10_carts(world: Any) -> None:
    svc, settings, clock = world
    # A model whose P(abandoned) falls with cart value: flagged carts near 0.8, others lower.
    spread = trained("m-spread", intercept=5.0, weights={"log_value": -1.5})
    svc.store.add_model_version(version=spread)
    svc.store.set_served(scope="store_1", version_id="m-spread", action="promote", at=DAY0)
    # Monday to Friday (DAY0 is a Monday): 3, 4, 12, 2 and 5 carts; Wednesday's are all
    # flagged, two a day on the other days. Nothing is bought: every outcome is "abandoned".
    for day, n in enumerate((3, 4, 12, 2, 5)):
        clock.now = DAY0 + timedelta(days=day)
        decisions = score(svc, [{"cart_id": f"d{day}-{i}",
                                 "cart_value": 10.0 if i < 2 or day == 2 else 40.0 + i}
                                for i in range(n)])  # fmt: skip
        flagged = [
            d["abandonment_probability"] for d in decisions if d["prediction"] != "purchased"
        ]
        assert len(flagged) == (n if day == 2 else 2)
        assert all(0.8 <= p < 0.9 for p in flagged)

    # Saturday: Wednesday (12 carts) is final and shown alone; the small days wait for the
    # week to be final.
    clock.now = DAY0 + timedelta(days=5)
    rollup(svc.store, as_of=clock.now)
    body = stats_over_http(svc, settings, clock)
    StatsOut.model_validate(body)
    assert [(p["start"], p["carts"]) for p in body["periods"]] == [("2026-03-04", 12)]
    assert any("once every day of the week is final" in s["reason"] for s in body["suppressed"])

    # Next Wednesday: Sunday is final; Mon, Tue, Thu and Fri (14 carts) are shown as one group.
    clock.now = DAY0 + timedelta(days=9)
    rollup(svc.store, as_of=clock.now)
    body = stats_over_http(svc, settings, clock)
    StatsOut.model_validate(body)
    assert all(n >= K_ANONYMITY for n in shown_groups(body)), body
    week, wednesday = body["periods"]
    assert (week["start"], week["end"], week["days"], week["carts"]) == (
        "2026-03-02", "2026-03-06", 4, 14)  # fmt: skip
    assert (wednesday["start"], wednesday["days"], wednesday["carts"]) == ("2026-03-04", 1, 12)
    assert {m["field"] for m in body["merged"]} == {"periods.0"}
    # The week: 8 flagged and 6 not, both under 10: neither is shown, nor any realised rate.
    assert (week["predicted_abandoned"], week["predicted_abandoned_share"]) == (None, None)
    assert week["outcomes"]["resolved"] == 14
    assert [week["outcomes"][r] for r in ("abandonment_rate", "precision", "recall")] == [None] * 3
    # Wednesday: 12 flagged, 0 not; 12 abandoned, 0 bought: every cell shown.
    assert (wednesday["predicted_abandoned"], wednesday["predicted_abandoned_share"]) == (12, 1.0)
    assert wednesday["outcomes"]["precision"] == wednesday["outcomes"]["recall"] == 1.0
    # Totals sum what is shown of each period, and say so.
    totals = body["totals"]
    assert (totals["carts"], totals["predicted_abandoned"], totals["outcomes"]["resolved"]) == (
        26, 12, 26)  # fmt: skip
    assert totals["predicted_abandoned_share"] == 1.0  # over Wednesday's carts
    assert totals["outcomes"]["precision"] == 1.0
    # The distribution: fixed bins, Wednesday's 12 carts near 0.8; the week's bins (8 and 6
    # carts) are left out.
    assert body["distribution"] == [{"lower": 0.8, "upper": 0.9, "carts": 12}]
    suppressed = {s["field"] for s in not_breakdown(body["suppressed"])}
    assert suppressed == {
        "periods", "periods.0.predicted_abandoned", "periods.0.predicted_abandoned_share",
        "periods.0.outcomes.abandonment_rate", "periods.0.outcomes.precision",
        "periods.0.outcomes.recall", "totals.predicted_abandoned",
        "totals.predicted_abandoned_share", "totals.outcomes",
        "distribution",
    }  # fmt: skip

    # Windows of every length show the same groups, whole: no two answers can be subtracted
    # to isolate fewer than 10 carts.
    with TestClient(create_app(settings, clock=clock)) as client:
        answers = [client.get(f"/retailer/store_1/stats?days={d}", headers=OPERATOR).json()
                   for d in range(1, 15)]  # fmt: skip
    for answer in answers:
        assert all(p in body["periods"] for p in answer["periods"])
        assert answer["totals"] is None or answer["totals"]["carts"] == sum(
            p["carts"] for p in answer["periods"])  # fmt: skip
    for smaller, larger in itertools.pairwise(answers):
        assert small_differences(smaller, larger) == []

    # Today's carts wait for the day to be final; a window with nothing else shows nothing,
    # and says why.
    clock.now = DAY0 + timedelta(days=40)
    score(svc, [{"cart_id": f"late-{i}", "cart_value": 30.0} for i in range(17)])
    rollup(svc.store, as_of=clock.now)
    with TestClient(create_app(settings, clock=clock)) as client:
        body = client.get("/retailer/store_1/stats?days=3", headers=OPERATOR).json()
    assert (body["periods"], body["totals"], body["distribution"]) == ([], None, [])
    assert not_breakdown(body["suppressed"]) == [{"field": "periods", "reason": FINAL_NOTE}]

    # The model's held-out figures: shown over 10 test carts or more, never under.
    for n_test, version_id in ((7, "m-small"), (40, "m-large")):
        svc.store.add_model_version(version=trained(version_id, n_test_carts=n_test))
        svc.store.set_served(scope="store_1", version_id=version_id, action="promote",
                             at=clock.now)  # fmt: skip
        svc.notifier.changed("store_1")
        model = stats_over_http(svc, settings, clock, path="model")
        assert model["n_train"] == 200  # its own model: its own rows
        if n_test < K_ANONYMITY:
            assert model["metrics"] is None
            reason = "held-out figures cover fewer than 10 test carts"
            assert model["suppressed"] == [{"field": "metrics", "reason": reason}]
        else:
            assert model["metrics"]["n_test_carts"] == 40
            assert model["suppressed"] == []


@given(st.lists(st.integers(min_value=0, max_value=30), max_size=40))
def test_merging_reaches_k_in_every_group_and_loses_nothing(counts: list[int]) -> None:
    groups = merge_small(counts, lambda n: n, K_ANONYMITY)
    assert all(sum(g) >= K_ANONYMITY for g in groups)
    flat = [n for g in groups for n in g]
    assert flat == (counts if sum(counts) >= K_ANONYMITY else [])


def trained(
    version_id: str,
    *,
    n_test_carts: int = 40,
    profile: dict[str, list[int]] | None = None,
    intercept: float = 0.1,
    weights: dict[str, float] | None = None,
) -> ModelVersion:
    return ModelVersion(
        version_id=version_id, scope="store_1", created_at=DAY0, train_start=DAY0,
        train_end=DAY0, n_train=200, threshold=0.5,
        metrics={"n_test_carts": n_test_carts, "candidate": {"auc_pr_purchased": 0.5}},
        model={"kind": "logistic", "features": FeatureSpec(cart=True).to_dict(),
               "intercept": intercept, "threshold": 0.5,
               "weights": {n: 0.0 for n in FeatureSpec(cart=True).names()} | (weights or {})},
        profile=profile,
    )  # fmt: skip


def carts_like(values: list[float], devices: list[str]) -> list[dict[str, Any]]:
    return [
        {"cart_id": f"x{i}", "cart_value": v, "device_type": devices[i % len(devices)]}
        for i, v in enumerate(values)
    ]


def test_drift_tells_a_stable_stream_from_a_shifted_one(world: Any) -> None:
    svc, settings, clock = world
    values = [5.0 + (i * 7.3) % 200 for i in range(400)]
    training = carts_like(values, ["mobile", "desktop"])
    profile = drift.profile_of(CartIn.model_validate({
        "retailer_id": "store_1", "item_count": 2, "inactivity_hours": 1.0,
        "shipping_speed": "standard", **c}) for c in training)  # fmt: skip
    svc.store.add_model_version(version=trained("m-1", profile=profile))
    svc.store.set_served(scope="store_1", version_id="m-1", action="promote", at=DAY0)
    svc.notifier.changed("store_1")

    body = stats_over_http(svc, settings, clock)
    assert body["drift"]["status"] == "insufficient_data"  # nothing scored yet

    score(svc, training[:250])  # the same mix as training, on Monday
    rollup(svc.store, as_of=clock.now)
    body = stats_over_http(svc, settings, clock)
    assert body["drift"]["status"] == "insufficient_data"  # today is shown once final
    assert body["drift"]["window"] == {"start": "2026-02-16", "end": "2026-02-22", "days": 7}

    clock.now = DAY0 + timedelta(days=7)  # next Monday: big carts, tablets
    score(svc, carts_like([400.0 + i for i in range(300)], ["tablet"]))
    clock.now = DAY0 + timedelta(days=9)  # Wednesday: the first week is final
    rollup(svc.store, as_of=clock.now)
    stable = stats_over_http(svc, settings, clock)["drift"]
    assert stable["status"] == "stable", stable
    assert stable["model_version"] == "m-1"
    assert stable["carts"] == 250
    assert stable["window"] == {"start": "2026-03-02", "end": "2026-03-08", "days": 7}

    clock.now = DAY0 + timedelta(days=16)  # the second week is final
    rollup(svc.store, as_of=clock.now)
    shifted = stats_over_http(svc, settings, clock)["drift"]
    assert shifted["carts"] == 300
    assert shifted["status"] == "significant"
    assert shifted["features"]["cart_value"]["status"] == "significant"
    assert shifted["features"]["device_type"]["status"] == "significant"
    assert shifted["features"]["shipping_speed"]["status"] == "stable"


def test_drift_is_unavailable_for_the_baseline(world: Any) -> None:
    svc, settings, clock = world
    body = stats_over_http(svc, settings, clock)
    assert body["drift"]["status"] == "unavailable"
    assert body["drift"]["model_version"] is None


def test_psi_is_zero_for_equal_mixes_and_grows_with_the_shift() -> None:
    assert drift.psi([10, 20, 30], [20, 40, 60]) == pytest.approx(0.0, abs=1e-3)  # smoothed
    small = drift.psi([50, 50], [55, 45])
    large = drift.psi([50, 50], [90, 10])
    assert 0 < small < drift.STABLE_BELOW < drift.MODERATE_BELOW < large


def test_a_running_server_logs_predictions_and_updates_the_stats(database_url: str) -> None:
    upgrade(database_url)
    settings = make_settings(database_url, stats_interval_s=0.2)
    with TestClient(create_app(settings)) as client:
        response = client.post("/retailer", json=retailer_spec("store_1"), headers=OPERATOR)
        auth = {"Authorization": f"Bearer {response.json()['api_key']}"}
        body = {"retailer_id": "store_1", "item_count": 1, "inactivity_hours": 2,
                "device_type": "desktop", "shipping_speed": "express"}  # fmt: skip
        for i in range(12):
            sent = {**body, "cart_id": f"c-{i}", "cart_value": 10.0 + i}
            assert client.post("/predict_cart", json=sent, headers=auth).status_code == 200
        batch = {"carts": [{**body, "cart_value": 99.0}] * 3}
        assert client.post("/predict_cart/batch", json=batch, headers=auth).status_code == 200
        store = client.app.state.services.store  # type: ignore[attr-defined]
        today = datetime.now(UTC).date()

        def aggregated() -> Any:
            rows = store.daily_stats(retailer_id="store_1", start=today, end=today)
            return rows[0].figures if rows and rows[0].figures["predictions"] == 15 else None

        deadline = time.monotonic() + 10
        while aggregated() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        figures = aggregated()
        assert figures is not None
        assert figures["carts"] == 15 and figures["outcomes"]["pending"] == 12
        stats = client.get("/retailer/store_1/stats", headers=auth).json()
        assert stats["totals"] is None  # today's figures are shown once the day is over
        exposition = client.get("/metrics").text
    # The 12 carts with an id are rows of the log; the 3 without were only counted.
    assert 'cartpredict_prediction_log_rows_total{result="written"} 12.0' in exposition


def test_the_log_keeps_predictions_through_a_store_outage() -> None:
    class FlakyStore:
        def __init__(self) -> None:
            self.down = True
            self.rows: list[Any] = []
            self.counted = 0

        def add_scored_carts(self, *, carts: Any) -> None:
            if self.down:
                raise ConnectionError("store down")
            self.rows.extend(carts)

        def add_prediction_counts(self, *, counts: Any, at: Any) -> None:
            if self.down:
                raise ConnectionError("store down")
            self.counted += sum(figures["predictions"] for _, _, _, figures in counts)

    dropped: list[int] = []
    recorder = PredictionRecorder(lambda: DAY0, max_buffered=5, on_dropped=dropped.append)
    for i in range(4):
        recorder.record("r", f"c{i}", "baseline", 0.5, True, 10.0, 1, "mobile", "standard")
    store = FlakyStore()
    with pytest.raises(ConnectionError):
        recorder.flush(store)  # type: ignore[arg-type]
    assert len(recorder) == 4  # nothing lost
    for i in range(4, 7):
        recorder.record("r", f"c{i}", "baseline", 0.5, True, 10.0, 1, "mobile", "standard")
    assert len(recorder) == 5 and sum(dropped) == 2  # bounded: the oldest went, counted
    store.down = False
    assert recorder.flush(store) == 5  # type: ignore[arg-type]
    assert [r.cart_id for r in store.rows] == ["c2", "c3", "c4", "c5", "c6"]
    # Predictions without a cart id are counted, and the counts wait out an outage too.
    for _ in range(3):
        recorder.record("r", None, "baseline", 0.5, True, 10.0, 1, "mobile", "standard")
    store.down = True
    with pytest.raises(ConnectionError):
        recorder.flush(store)  # type: ignore[arg-type]
    recorder.record("r", None, "baseline", 0.5, True, 10.0, 1, "mobile", "standard")
    store.down = False
    assert recorder.flush(store) == 0  # type: ignore[arg-type]
    assert store.counted == 4 and len(store.rows) == 5


def test_under_the_pooled_model_drift_compares_with_the_retailers_own_training_carts(
    world: Any,
) -> None:
    svc, settings, clock = world
    svc.retailers.update("store_1", {"pooled_learning": True})
    mine = [{"cart_id": f"m{i}", "cart_value": 30.0 + i % 20} for i in range(250)]
    others = [{"cart_id": f"o{i}", "cart_value": 900.0} for i in range(150)]  # unlike mine

    def profile(carts: list[dict[str, Any]]) -> dict[str, list[int]]:
        base = {"retailer_id": "store_1", "item_count": 2, "inactivity_hours": 1.0,
                "device_type": "mobile", "shipping_speed": "standard"}  # fmt: skip
        return drift.profile_of(CartIn.model_validate({**base, **c}) for c in carts)

    pooled = trained("m-pool")
    for members, version_id in (({"store_1": profile(mine), "other": profile(others)}, "m-p1"),
                                ({"other": profile(others)}, "m-p2")):  # fmt: skip
        version = replace(pooled, version_id=version_id, scope=POOLED_SCOPE,
                          profile={"by_retailer": members})  # fmt: skip
        svc.store.add_model_version(version=version)
        svc.store.set_served(scope=POOLED_SCOPE, version_id=version_id, action="promote", at=DAY0)
        svc.notifier.changed("store_1")
        if version_id == "m-p1":
            score(svc, mine)
            clock.now = DAY0 + timedelta(days=9)  # the week is final
            rollup(svc.store, as_of=clock.now)
            body = stats_over_http(svc, settings, clock)["drift"]
            assert (body["status"], body["model_version"]) == ("stable", "m-p1")  # vs its own
        else:
            body = stats_over_http(svc, settings, clock)["drift"]
            assert body["status"] == "unavailable"
            assert "trained without carts of yours" in body["reason"]


def test_what_a_deleted_retailer_scored_is_never_written_not_even_after_it_is_recreated(
    world: Any,
) -> None:
    svc, _, clock = world
    tenant = svc.tenants.load("store_1")
    base = {"retailer_id": "store_1", "item_count": 2, "inactivity_hours": 1.0,
            "device_type": "mobile", "shipping_speed": "standard", "cart_value": 30.0}  # fmt: skip
    for cart_id in ("c1", "c2", None):  # still buffered when the retailer is erased
        svc.predictor.predict(tenant, CartIn.model_validate({**base, "cart_id": cart_id}))
    svc.retailers.delete("store_1")
    clock.now = DAY0 + timedelta(minutes=1)
    svc.retailers.create(RetailerCreate.model_validate(retailer_spec("store_1")))
    svc.recorder.flush(svc.store)
    rollup(svc.store, as_of=clock.now)
    day = DAY0.date()
    assert svc.store.scored_carts(retailer_id="store_1", start=DAY0 - timedelta(days=1),
                                  end=DAY0 + timedelta(days=1)) == []  # fmt: skip
    assert svc.store.prediction_counts(retailer_id="store_1", start=day, end=day) == {}
    assert svc.store.daily_stats(retailer_id="store_1", start=day, end=day) == []


def test_a_purchase_stamped_in_the_same_second_as_the_prediction_follows_it(world: Any) -> None:
    """Event times often have whole seconds, and clocks differ: a purchase stamped a moment
    before the prediction is its outcome, not ignored."""
    svc, _, clock = world
    clock.now = DAY0 + timedelta(seconds=0.7)
    score(svc, [{"cart_id": "same-second", "cart_value": 50.0}])
    clock.now = DAY0 + timedelta(minutes=1)
    purchase(svc, ["same-second"], DAY0)  # truncated to the second: 0.7 s "before"
    rollup(svc.store, as_of=clock.now)
    (day,) = svc.store.daily_stats(retailer_id="store_1", start=DAY0.date(), end=DAY0.date())
    assert day.figures["outcomes"]["tn"] == 1  # called purchased, and purchased


CARTS = st.tuples(
    st.floats(0, 1),
    st.booleans(),
    st.floats(0, 2000),
    st.integers(0, 40),
    st.sampled_from(["mobile", "desktop", "tablet", "unknown"]),
    st.sampled_from(["standard", "express", "pickup"]),
)


@given(st.lists(CARTS, max_size=30))
def test_the_recorder_counts_as_tally_does(carts: list[tuple[Any, ...]]) -> None:
    """What the recorder counts in the background is what ``tally.count`` makes of the carts."""
    counted: list[Any] = []

    class Store:
        def add_prediction_counts(self, *, counts: Any, at: Any) -> None:
            counted.extend(counts)

    recorder = PredictionRecorder(lambda: DAY0)
    expected = tally.empty()
    for p, abandoned, value, items, device, speed in carts:
        recorder.record("r", None, "v", p, abandoned, value, items, device, speed)
        cart = CartIn.model_validate({"retailer_id": "r", "cart_value": value, "item_count": items,
                                      "inactivity_hours": 1.0, "device_type": device,
                                      "shipping_speed": speed})  # fmt: skip
        expected["predictions"] += 1
        tally.count(expected, p, abandoned, "without_cart_id", cart.cart_value, cart.item_count,
                    cart.device_type, cart.shipping_speed)  # fmt: skip
    recorder.flush(Store())  # type: ignore[arg-type]
    if not carts:
        assert counted == []
        return
    ((_, _, _, figures),) = counted
    assert figures["p_abandoned_sum"] == pytest.approx(expected["p_abandoned_sum"])
    assert {k: v for k, v in figures.items() if k != "p_abandoned_sum"} == {
        k: v for k, v in expected.items() if k != "p_abandoned_sum"}  # fmt: skip
