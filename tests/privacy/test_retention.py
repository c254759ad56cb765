"""Retention, proven with a controllable clock: raw rows go after 14 days, aggregates after 90."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from cartpredict.api.app import create_app
from cartpredict.cli import main
from cartpredict.core.settings import Settings
from cartpredict.models.registry import ModelRegistry
from cartpredict.monitoring.rollup import rollup
from cartpredict.privacy.retention import purge
from cartpredict.serving.background import purge_now
from cartpredict.serving.container import build_services
from cartpredict.serving.schemas import CartIn, EventsIn, RetailerCreate
from cartpredict.storage import POOLED_SCOPE, ModelVersion
from cartpredict.storage.migrate import upgrade
from tests.support.factories import SettableClock, make_settings, retailer_spec

DAY0 = datetime(2026, 1, 1, 9, tzinfo=UTC)


def version(scope: str, version_id: str, created_at: datetime) -> ModelVersion:
    return ModelVersion(
        version_id=version_id, scope=scope, created_at=created_at, train_start=created_at,
        train_end=created_at, n_train=100, threshold=0.5, metrics={"auc_pr": 0.4},
        model={"kind": "logistic", "features": {"cart": True, "site": False, "numeric": [],
               "categorical": {}, "interactions": [], "centers": {}},
               "intercept": 0.1, "weights": {}, "threshold": 0.5},
    )  # fmt: skip


def events(n: int, start: int = 0) -> Any:
    return EventsIn.model_validate({
        "retailer_id": "store_1",
        "events": [
            {"type": "cart_updated", "event_id": f"e{i}", "cart_id": f"c{i}",
             "at": "2026-01-01T08:00:00Z", "cart_value": 20.0, "item_count": 1,
             "device_type": "mobile", "shipping_speed": "standard"}
            for i in range(start, start + n)
        ],
    }).events  # fmt: skip


@pytest.fixture
def world(database_url: str) -> Any:
    upgrade(database_url)
    clock = SettableClock(DAY0)
    settings = make_settings(database_url)
    svc = build_services(settings, clock)
    spec = retailer_spec("store_1", pooled_learning=True)
    svc.retailers.create(RetailerCreate.model_validate(spec))
    yield svc, settings, clock
    svc.close()


def score(svc: Any, n: int, start: int = 0, anonymous: int = 0) -> None:
    """Predictions for ``n`` carts with ids (rows of the log) and ``anonymous`` without (only
    counted), recorded as the service records them."""
    tenant = svc.tenants.load("store_1")
    for i in range(start, start + n + anonymous):
        cart = CartIn.model_validate({
            "retailer_id": "store_1", "cart_value": 20.0 + i,
            "item_count": 1, "inactivity_hours": 1.0, "device_type": "mobile",
            "shipping_speed": "standard", **({"cart_id": f"c{i}"} if i < start + n else {}),
        })  # fmt: skip
        svc.predictor.predict(tenant, cart)
    svc.recorder.flush(svc.store)


def logged(svc: Any) -> list[str | None]:
    carts = svc.store.scored_carts(retailer_id="store_1", start=DAY0 - timedelta(days=1),
                                   end=DAY0 + timedelta(days=400))  # fmt: skip
    return sorted(c.cart_id or "" for c in carts)


def days_aggregated(svc: Any) -> list[int]:
    rows = svc.store.daily_stats(retailer_id="store_1", start=DAY0.date(),
                                 end=(DAY0 + timedelta(days=400)).date())  # fmt: skip
    return [(r.day - DAY0.date()).days for r in rows]


def test_raw_rows_go_after_14_days_and_aggregates_after_90(world: Any, database_url: str) -> None:
    svc, settings, clock = world
    retailer = svc.store.get_retailer(retailer_id="store_1")
    svc.events.ingest(retailer, events(5))  # received on day 0
    score(svc, 12, anonymous=3)  # scored on day 0
    svc.store.add_model_version(version=version("store_1", "m-day0", DAY0))
    svc.store.set_served(scope="store_1", version_id="m-day0", action="promote", at=DAY0)
    clock.now = DAY0 + timedelta(days=10)
    svc.events.ingest(retailer, events(3, start=5))  # received on day 10
    score(svc, 2, start=100)  # scored on day 10
    assert rollup(svc.store, as_of=clock.now) == 2  # day 0 and day 10 aggregated
    assert days_aggregated(svc) == [0, 10]

    day15 = DAY0 + timedelta(days=15)
    dry = purge(svc.store, settings, as_of=day15, dry_run=True)
    assert dry.removed["events"] == 5
    assert dry.removed["prediction_log"] == 12
    assert dry.removed["prediction_counts"] == 1  # day 0's three, counted in one write
    assert len(svc.store.events(retailer_id="store_1")) == 8  # a dry run removes nothing
    assert len(logged(svc)) == 14

    report = purge(svc.store, settings, as_of=day15)
    assert report.removed == {"events": 5, "prediction_log": 12, "prediction_counts": 1,
                              "daily_stats": 0, "model_versions": 0, "served_models": 0,
                              "model_log": 0}  # fmt: skip
    left = svc.store.events(retailer_id="store_1")
    assert sorted(e.event_id for e in left) == ["e5", "e6", "e7"]  # day 10's, none of day 0's
    assert logged(svc) == ["c100", "c101"]  # day 10's predictions, none of day 0's
    assert svc.store.served_version(scope="store_1").version_id == "m-day0"
    assert days_aggregated(svc) == [0, 10]  # the aggregates outlive the raw rows

    purge(svc.store, settings, as_of=DAY0 + timedelta(days=89, hours=23))
    assert svc.store.served_version(scope="store_1").version_id == "m-day0"  # still day 89
    assert svc.store.promotions(scope="store_1")
    assert days_aggregated(svc) == [0, 10]

    day91 = DAY0 + timedelta(days=91)
    report = purge(svc.store, settings, as_of=day91)
    assert report.removed["model_versions"] == 1
    assert report.removed["served_models"] == 1
    assert svc.store.served_version(scope="store_1") is None
    assert svc.store.model_versions(scope="store_1") == []
    # Its log keeps one line: the expiry (the earlier lines were as old as the model).
    assert [p.action for p in svc.store.promotions(scope="store_1")] == ["expire"]
    assert svc.store.events(retailer_id="store_1") == []  # day 10's are long gone too
    assert logged(svc) == []
    assert report.removed["daily_stats"] == 1
    assert days_aggregated(svc) == [10]  # day 0's aggregate is gone, day 10's has days left
    # With its own model expired, the opted-in retailer is served by the pooled one or the rule.
    assert ModelRegistry(svc.store).served_version(retailer) is None
    # Every worker hears of it: the change feed names the retailer.
    assert "store_1" in {c.retailer_id for c in svc.store.changes_after(seq=0)}


def test_an_expired_pooled_model_stops_serving_every_opted_in_retailer(world: Any) -> None:
    svc, settings, _ = world
    svc.store.add_model_version(version=version(POOLED_SCOPE, "m-pool", DAY0))
    svc.store.set_served(scope=POOLED_SCOPE, version_id="m-pool", action="promote", at=DAY0)
    retailer = svc.store.get_retailer(retailer_id="store_1")
    assert ModelRegistry(svc.store).served_version(retailer).version_id == "m-pool"
    before = svc.store.last_change_seq()
    purge(svc.store, settings, as_of=DAY0 + timedelta(days=91))
    assert ModelRegistry(svc.store).served_version(retailer) is None
    assert "store_1" in {c.retailer_id for c in svc.store.changes_after(seq=before)}


@pytest.mark.parametrize(("variable", "value"), [("RAW", "15"), ("AGGREGATE", "91")])
def test_retention_may_be_lowered_never_raised(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"CARTPREDICT_{variable}_RETENTION_DAYS", value)
    with pytest.raises(ValueError, match="never raised past"):
        Settings()
    result = CliRunner().invoke(main, ["purge", "--dry-run"])
    assert result.exit_code == 1
    assert "never raised past" in result.output
    monkeypatch.setenv(f"CARTPREDICT_{variable}_RETENTION_DAYS", "7")
    assert Settings()


def test_lowered_retention_purges_sooner(world: Any) -> None:
    svc, settings, _ = world
    retailer = svc.store.get_retailer(retailer_id="store_1")
    svc.events.ingest(retailer, events(2))
    week = settings.model_copy(update={"raw_retention_days": 7})
    assert purge(svc.store, week, as_of=DAY0 + timedelta(days=8)).removed["events"] == 2


def test_purge_command_reports_and_refuses_the_future(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARTPREDICT_DATABASE_URL", sqlite_url)
    runner = CliRunner()
    dry = runner.invoke(main, ["purge", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert '"dry_run": true' in dry.output
    assert '"stats_days_updated": 0' in dry.output  # a dry run changes nothing, stats included
    done = runner.invoke(main, ["purge"])
    assert done.exit_code == 0, done.output
    assert "removed" in done.output and "events" in done.output
    future = runner.invoke(main, ["purge", "--as-of", "2999-01-01T00:00:00Z"])
    assert future.exit_code == 2
    assert "delete data early" in future.output


def test_a_running_server_purges_on_its_own(world: Any) -> None:
    svc, settings, clock = world
    retailer = svc.store.get_retailer(retailer_id="store_1")
    svc.events.ingest(retailer, events(4))
    score(svc, 3, anonymous=2)  # day 0's predictions, never rolled up so far
    assert days_aggregated(svc) == []
    clock.now = DAY0 + timedelta(days=15)
    app = create_app(settings, clock=clock)
    with TestClient(app):
        deadline = time.monotonic() + 5
        while svc.store.events(retailer_id="store_1") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert svc.store.events(retailer_id="store_1") == []
        assert logged(svc) == []
        # No prediction expired uncounted: the purge rolled day 0 up before deleting it.
        (day0,) = svc.store.daily_stats(retailer_id="store_1", start=DAY0.date(),
                                        end=DAY0.date())  # fmt: skip
        assert (day0.figures["carts"], day0.figures["predictions"]) == (5, 5)
        exposition = app.state.services.metrics.exposition().decode()
        assert 'cartpredict_purged_rows_total{table="events"} 4.0' in exposition


def test_the_purge_rolls_up_the_days_that_are_final_and_leaves_open_ones_to_the_stats(
    world: Any,
) -> None:
    """Before it deletes, the purge counts every day whose figures are final (they are never
    computed again); a day still open is the periodic rollup's, not the purge's: a worker that
    starts (and purges at once) does not read the whole day's log again."""
    svc, settings, clock = world
    score(svc, 3)  # day 0
    clock.now = DAY0 + timedelta(days=1)
    score(svc, 2, start=10)  # day 1
    clock.now = DAY0 + timedelta(days=1, hours=2)
    purge_now(svc.store, settings, clock=clock, metrics=svc.metrics, recorder=svc.recorder)
    assert days_aggregated(svc) == []  # day 0 is still open: outcomes may yet arrive
    clock.now = DAY0 + timedelta(days=3)  # day 0 ended 24 h + 24 h of late events ago
    purge_now(svc.store, settings, clock=clock, metrics=svc.metrics, recorder=svc.recorder)
    (day0,) = svc.store.daily_stats(retailer_id="store_1", start=DAY0.date(), end=DAY0.date())
    assert day0.final and day0.figures["carts"] == 3
    assert days_aggregated(svc) == [0]  # day 1 waits for the stats' rollup
    rollup(svc.store, as_of=clock.now)
    assert days_aggregated(svc) == [0, 1]
