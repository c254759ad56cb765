"""Dashboard sessions and the settings' audit, on every backend: a session is found by the hash
of its secret until it ends, goes with its retailer, and may be the operator's; every change of
a retailer's settings records who made it, in the same transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from cartpredict.storage import AppSession, SettingsChange, Store, open_store
from tests.storage.test_contract import key, make

T0 = datetime(2026, 11, 1, 10, 0, 0, tzinfo=UTC)
HOURS_8 = timedelta(hours=8)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    yield opened
    opened.close()


def test_a_session_is_found_by_its_hash_until_it_ends(store: Store) -> None:
    store.create_retailer(retailer=make("store_1"), key_hash="a" * 64)
    session = AppSession("store_1", "key_abcdefghijkl", T0, T0 + HOURS_8)
    assert store.add_app_session(session_hash="1" * 64, session=session)
    assert store.app_session(session_hash="1" * 64, at=T0 + timedelta(hours=7)) == session
    assert store.app_session(session_hash="2" * 64, at=T0) is None
    assert store.app_session(session_hash="1" * 64, at=T0 + HOURS_8) is None  # ended
    store.delete_app_session(session_hash="1" * 64)
    assert store.app_session(session_hash="1" * 64, at=T0) is None


def test_an_operator_session_has_no_retailer(store: Store) -> None:
    session = AppSession(None, "op_0123456789ab", T0, T0 + HOURS_8)
    assert store.add_app_session(session_hash="3" * 64, session=session)
    assert store.app_session(session_hash="3" * 64, at=T0) == session


def test_a_session_goes_with_its_retailer_and_cannot_outlive_it(store: Store) -> None:
    assert not store.add_app_session(
        session_hash="4" * 64, session=AppSession("nobody", "key_abcdefghijkl", T0, T0 + HOURS_8)
    )
    store.create_retailer(retailer=make("store_1"), key_hash="a" * 64)
    session = AppSession("store_1", "key_abcdefghijkl", T0, T0 + HOURS_8)
    assert store.add_app_session(session_hash="5" * 64, session=session)
    assert store.delete_retailer(retailer_id="store_1", at=T0)
    assert store.app_session(session_hash="5" * 64, at=T0) is None


def test_a_new_session_clears_those_that_have_ended(store: Store) -> None:
    old = AppSession(None, "op_0123456789ab", T0 - HOURS_8, T0)
    store.add_app_session(session_hash="6" * 64, session=old)
    store.add_app_session(session_hash="7" * 64, session=AppSession(None, "op_0123456789ab", T0,
                                                                      T0 + HOURS_8))  # fmt: skip
    assert store.app_session(session_hash="6" * 64, at=T0 - timedelta(hours=1)) is None


def test_every_change_of_settings_records_who_made_it(store: Store) -> None:
    store.create_retailer(retailer=make("store_1"), key_hash="a" * 64)
    admin = key("store_1", name="admin")
    store.add_api_key(key=admin, key_hash="b" * 64)
    later = T0 + timedelta(minutes=5)
    store.update_retailer(retailer_id="store_1", changes={"precision_target": 0.8},
                          updated_at=T0)  # fmt: skip
    store.update_retailer(retailer_id="store_1", key_id=admin.key_id, updated_at=later,
                          changes={"pooled_learning": True, "precision_target": 0.9})  # fmt: skip
    assert store.settings_changes(retailer_id="store_1") == [
        SettingsChange(later, admin.key_id, "admin", ("pooled_learning", "precision_target")),
        SettingsChange(T0, None, None, ("precision_target",)),
    ]
    assert store.settings_changes(retailer_id="store_1", limit=1)[0].at == later
    assert store.update_retailer(retailer_id="nobody", changes={"precision_target": 0.8},
                                 updated_at=T0) is None  # fmt: skip
    store.delete_retailer(retailer_id="store_1", at=later)
    assert store.settings_changes(retailer_id="store_1") == []
