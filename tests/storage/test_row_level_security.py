"""Isolation in depth on PostgreSQL: row-level security keyed on the session's retailer.

Every query the store makes for one retailer runs in a session scoped to that retailer (the
``cartpredict_tenant`` role and the ``cartpredict.retailer_id`` setting). These tests issue
queries with no tenant filter at all, as a forgotten ``WHERE`` would, in retailer A's session,
and find none of retailer B's rows in any table; writes without a filter touch A's rows only,
a row for B cannot be written, and a session that names no retailer sees nothing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, event, func, insert, select, text, update
from sqlalchemy.exc import ProgrammingError

from cartpredict.api.app import check_store
from cartpredict.core.scopes import new_key_id
from cartpredict.monitoring.rollup import rollup
from cartpredict.serving.container import build_services
from cartpredict.serving.principal import Principal
from cartpredict.serving.schemas import CartIn, EventsIn, RetailerCreate
from cartpredict.storage import ApiKey, AppSession, ModelVersion, ScoredCart, StoredEvent
from cartpredict.storage.migrate import upgrade
from cartpredict.storage.sql import TENANT_ROLE
from cartpredict.storage.tables import TENANT_TABLES, changes, events, prediction_log
from tests.support.databases import as_admin
from tests.support.factories import make_settings, retailer_spec

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 5, 4, 12, tzinfo=UTC)
TABLES = (*TENANT_TABLES, changes)


def populate(svc: Any, retailer_id: str) -> None:
    """A retailer with a row in every tenant table."""
    svc.retailers.create(RetailerCreate.model_validate(retailer_spec(retailer_id)))
    retailer = svc.store.get_retailer(retailer_id=retailer_id)
    batch = EventsIn.model_validate({"retailer_id": retailer_id, "events": [
        {"type": "cart_updated", "event_id": f"{retailer_id}-e{i}", "cart_id": f"c{i}",
         "at": "2026-05-04T08:00:00Z", "cart_value": 30.0 + i, "item_count": 1,
         "device_type": "mobile", "shipping_speed": "standard"} for i in range(3)
    ]})  # fmt: skip
    svc.events.ingest(retailer, batch.events)
    tenant = svc.tenants.load(retailer_id)
    for i in range(6):  # four logged with their cart ids, two only counted
        cart = CartIn.model_validate({"retailer_id": retailer_id, "cart_value": 12.0,
            "item_count": 1, "inactivity_hours": 1.0, "device_type": "desktop",
            "shipping_speed": "standard", **({"cart_id": f"c{i}"} if i < 4 else {})})  # fmt: skip
        svc.predictor.predict(tenant, cart)
    svc.recorder.flush(svc.store)
    version = ModelVersion(
        version_id=f"m-{retailer_id}", scope=retailer_id, created_at=NOW, train_start=NOW,
        train_end=NOW, n_train=10, threshold=0.5, metrics={}, model={"weights": {}},
    )  # fmt: skip
    svc.store.add_model_version(version=version)
    svc.store.set_served(scope=retailer_id, version_id=version.version_id, action="promote",
                         at=NOW)  # fmt: skip
    svc.store.set_budget_cutoff(retailer_id=retailer_id, policy_version=1, cutoff=0.5, at=NOW)
    key = svc.store.api_keys(retailer_id=retailer_id, at=NOW)[0]
    svc.retailers.update(retailer_id, {"precision_target": 0.8}, by=Principal.of(key))  # audited
    session = AppSession(retailer_id, key.key_id, NOW, NOW + timedelta(hours=8))
    svc.store.add_app_session(session_hash=retailer_id.ljust(64, "0"), session=session)


@pytest.fixture
def two_tenants(postgres_url: str) -> Any:
    upgrade(postgres_url)
    svc = build_services(make_settings(postgres_url), lambda: NOW)
    populate(svc, "alpha")
    populate(svc, "beta")
    rollup(svc.store, as_of=NOW)
    yield svc
    svc.close()


def owners(conn: Any, table: Any) -> list[str]:
    return sorted(conn.execute(select(table.c.retailer_id)).scalars())


def test_a_query_without_the_tenant_filter_returns_none_of_another_retailers_rows(
    two_tenants: Any, postgres_url: str
) -> None:
    with two_tenants.store.tenant_session("alpha") as conn:
        for table in TABLES:
            seen = owners(conn, table)  # SELECT retailer_id FROM <table>: no WHERE at all
            assert seen, f"alpha has rows in {table.name}"
            assert set(seen) == {"alpha"}, f"{table.name}: {seen}"
        # Writes without a filter reach alpha's rows alone.
        assert conn.execute(update(events).values(cart_value=0.0)).rowcount == 3
        assert conn.execute(delete(prediction_log)).rowcount == 4
    # Outside the session (the operator's view) both tenants are there, untouched: the
    # session was rolled back.
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            for table in TABLES:
                assert set(owners(conn, table)) == {"alpha", "beta"}, table.name
            assert conn.execute(select(func.min(events.c.cart_value))).scalar() == 30.0
    finally:
        engine.dispose()


def test_a_tenant_session_cannot_write_another_retailers_row(two_tenants: Any) -> None:
    row = {"retailer_id": "beta", "event_id": "planted", "type": "purchased", "cart_id": "c1",
           "at": NOW, "received_at": NOW}  # fmt: skip
    with (
        two_tenants.store.tenant_session("alpha") as conn,
        pytest.raises(ProgrammingError, match="row-level security"),
    ):
        conn.execute(insert(events).values(**row))
    assert "planted" not in {e.event_id for e in two_tenants.store.events(retailer_id="beta")}


def test_a_session_that_names_no_retailer_sees_nothing(two_tenants: Any, postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            conn.execute(text(f"SET ROLE {TENANT_ROLE}"))
            for table in TABLES:
                assert owners(conn, table) == [], table.name
    finally:
        engine.dispose()


def test_the_store_reads_each_tenant_through_its_own_session(two_tenants: Any) -> None:
    """The store's own methods work under the policies (what every PostgreSQL test relies
    on), and each sees its retailer's rows."""
    store = two_tenants.store
    assert {e.retailer_id for e in [store.get_retailer(retailer_id="alpha")]} == {"alpha"}
    assert len(store.events(retailer_id="beta")) == 3
    assert store.served_version(scope="beta").version_id == "m-beta"
    day = NOW.date()
    assert len(store.daily_stats(retailer_id="alpha", start=day, end=day)) == 1


def test_the_service_logs_in_with_least_privilege(
    two_tenants: Any, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a superuser, no BYPASSRLS, owner of nothing: row-level security binds it, and no
    SET ROLE or RESET ROLE leads anywhere more privileged than itself."""
    assert two_tenants.store.privilege_problems() == []
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            me, superuser, bypass = conn.execute(
                text(
                    "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles "
                    "WHERE rolname = current_user"
                )
            ).one()
            assert (superuser, bypass) == (False, False)
            privileged = (
                conn.execute(text("SELECT rolname FROM pg_roles WHERE rolsuper OR rolbypassrls"))
                .scalars()
                .all()
            )
            for role in privileged:
                with pytest.raises(ProgrammingError, match="permission"), conn.begin_nested():
                    conn.execute(text(f'SET ROLE "{role}"'))
            conn.execute(text(f"SET ROLE {TENANT_ROLE}"))
            conn.execute(text("RESET ROLE"))
            assert conn.execute(text("SELECT current_user")).scalar() == me
            with pytest.raises(ProgrammingError, match="permission"), conn.begin_nested():
                conn.execute(text("CREATE TABLE planted (x int)"))
            with pytest.raises(ProgrammingError), conn.begin_nested():
                conn.execute(text("ALTER TABLE events DISABLE ROW LEVEL SECURITY"))
    finally:
        engine.dispose()
    admin = build_services(make_settings(as_admin(postgres_url)), lambda: NOW)
    try:  # a service that logs in as a superuser says so at start-up
        with caplog.at_level(logging.WARNING):
            check_store(admin)
        assert "is a superuser: row-level security does not apply" in caplog.text
    finally:
        admin.close()


# Store methods that work across retailers by design (the operator's work): training lists,
# key lookup by hash, retention, the rollup's schedule, the change feed, dashboard sessions
# (looked up by hash before their retailer is known). Everything else that touches a tenant
# table runs as the tenant.
OPERATOR_LEVEL = (
    "list_retailers", "api_key", "key_live", "purge", "first_scored", "changes_after",
    "last_change_seq", "prune_changes", "add_app_session", "app_session", "delete_app_session",
)  # fmt: skip
_TENANT_TABLE = re.compile(
    r"\b(?:FROM|INTO|UPDATE|JOIN)\s+(" + "|".join(t.name for t in TENANT_TABLES) + r")\b"
)


def test_every_tenant_query_of_the_store_runs_under_row_level_security(
    two_tenants: Any,
) -> None:
    """Each statement the store sends about one retailer's rows is checked, as it is sent, for
    the role and the retailer in force: a method that skipped the tenant scope (and relied on
    its WHERE alone) fails here."""
    store = two_tenants.store
    seen: list[tuple[str, str, str | None]] = []

    def audit(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if _TENANT_TABLE.search(statement):
            with conn.connection.dbapi_connection.cursor() as cursor:
                cursor.execute(
                    "SELECT current_user, current_setting('cartpredict.retailer_id', true)"
                )
                role, tenant = cursor.fetchone()
            seen.append((statement.split("\n")[0][:60], role, tenant))

    engine = store._engine
    event.listen(engine, "before_cursor_execute", audit)
    try:
        exercise_tenant_methods(two_tenants, "alpha")
    finally:
        event.remove(engine, "before_cursor_execute", audit)
    assert len(seen) > 30
    wrong = [s for s in seen if s[1:] != (TENANT_ROLE, "alpha")]
    assert not wrong, wrong


def exercise_tenant_methods(svc: Any, rid: str) -> None:
    """Every tenant-level method of the store, once, for one retailer."""
    store = svc.store
    later = datetime(2026, 5, 5, tzinfo=UTC)
    store.get_retailer(retailer_id=rid)
    store.update_retailer(retailer_id=rid, changes={"pooled_learning": True}, updated_at=later)
    store.update_retailer(retailer_id=rid, changes={"pooled_learning": False}, updated_at=later,
                          key_id=store.api_keys(retailer_id=rid, at=later)[0].key_id)  # fmt: skip
    store.settings_changes(retailer_id=rid)
    store.events(retailer_id=rid)
    store.add_events(retailer_id=rid, events=[StoredEvent("x1", "purchased", "c1", NOW, NOW)])
    store.model_versions(scope=rid)
    store.model_version(scope=rid, version_id=f"m-{rid}")
    store.served_version(scope=rid)
    store.promotions(scope=rid)
    store.retire_served(scope=rid, at=later)
    store.set_served(scope=rid, version_id=f"m-{rid}", action="rollback", at=later)
    store.scored_carts(retailer_id=rid, start=NOW.replace(hour=0), end=later)
    store.add_scored_carts(carts=[ScoredCart(rid, later, "c9", "m", 0.5, True, 10.0, 1,
                                             "mobile", "standard")])  # fmt: skip
    store.prediction_counts(retailer_id=rid, start=NOW.date(), end=later.date())
    store.add_prediction_counts(counts=[(rid, later.date(), later, {"carts": 1})], at=later)
    store.purchases(retailer_id=rid, start=NOW.replace(hour=0), end=later)
    store.budget_cutoff(retailer_id=rid)
    store.set_budget_cutoff(retailer_id=rid, policy_version=1, cutoff=0.7, at=later)
    store.policy_versions(retailer_id=rid, since=NOW)
    rows = store.daily_stats(retailer_id=rid, start=NOW.date(), end=later.date())
    store.put_daily_stats(retailer_id=rid, days=rows)
    named = ApiKey(new_key_id(), rid, "named", frozenset({"read"}), later)
    store.add_api_key(key=named, key_hash="f" * 64)
    store.rotate_api_key(retailer_id=rid, key_id=named.key_id, new_key_id=new_key_id(),
                         key_hash="d" * 64, at=later, expires_at=later.replace(hour=1))  # fmt: skip
    store.api_keys(retailer_id=rid, at=later)
    store.revoke_api_key(retailer_id=rid, key_id=named.key_id, at=later)
    store.add_api_key(key=replace(named, key_id=new_key_id()), key_hash="e" * 64, replace=True)
    store.delete_retailer(retailer_id=rid, at=later)
    svc.retailers.create(RetailerCreate.model_validate(retailer_spec(rid)))
