"""The storage contract for API keys, on every backend: names, scopes, rotation with a grace
period, revocation one at a time, and the change feed told of each."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine, func, select

from cartpredict.core.scopes import ALL_SCOPES, KEY_ID_PATTERN, new_key_id
from cartpredict.storage import (
    ApiKey,
    DuplicateKeyName,
    KeyAlreadyRotated,
    NoSuchRetailer,
    Store,
    open_store,
)
from cartpredict.storage.migrate import upgrade
from cartpredict.storage.tables import UTCDateTime, api_keys
from tests.cli.test_admin import downgrade
from tests.storage.test_contract import T0, key, make
from tests.support.databases import as_admin

HOUR = timedelta(hours=1)
READ = frozenset({"read"})


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    opened.create_retailer(retailer=make("a"), key_hash="a" * 64)
    opened.create_retailer(retailer=make("b"), key_hash="b" * 64)
    yield opened
    opened.close()


def rows(database_url: str) -> int:
    """Every key row, live or not (the service's role reads them all, outside a tenant)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(api_keys)).scalar_one())
    finally:
        engine.dispose()


def rotate(store: Store, old: ApiKey, key_hash: str, grace: timedelta) -> ApiKey | None:
    return store.rotate_api_key(retailer_id=old.retailer_id, key_id=old.key_id,
                                new_key_id=new_key_id(), key_hash=key_hash, at=T0,
                                expires_at=T0 + grace)  # fmt: skip


def test_a_retailers_first_key_is_its_default_key_with_every_scope(store: Store) -> None:
    [first] = store.api_keys(retailer_id="a", at=T0) or []
    assert (first.retailer_id, first.name, first.scopes) == ("a", "default", ALL_SCOPES)
    assert (first.created_at, first.expires_at) == (T0, None)
    assert first.key_id.startswith("key_") and len(first.key_id) == 16
    assert store.api_key(key_hash="a" * 64) == first
    assert store.key_live(key_id=first.key_id, at=T0)
    assert store.api_keys(retailer_id="nobody", at=T0) is None


def test_named_keys_keep_their_scopes_and_names_are_unique_per_retailer(store: Store) -> None:
    marketing = replace(key("a", "marketing", READ), created_at=T0 + HOUR)
    assert store.add_api_key(key=marketing, key_hash="1" * 64) is True
    assert store.api_key(key_hash="1" * 64) == marketing
    seq = store.last_change_seq()
    with pytest.raises(DuplicateKeyName):
        store.add_api_key(key=key("a", "marketing"), key_hash="2" * 64)
    assert store.api_key(key_hash="2" * 64) is None
    assert store.last_change_seq() == seq
    assert store.add_api_key(key=key("b", "marketing"), key_hash="3" * 64) is True  # b's own
    names = [k.name for k in store.api_keys(retailer_id="a", at=T0) or []]
    assert names == ["default", "marketing"]


def test_a_rotated_key_lives_until_its_grace_period_ends(store: Store, database_url: str) -> None:
    old = key("a", "checkout", frozenset({"predict"}))
    store.add_api_key(key=old, key_hash="1" * 64)
    seq = store.last_change_seq()
    new = rotate(store, old, "2" * 64, HOUR)
    assert new is not None
    assert store.last_change_seq() > seq
    assert (new.name, new.scopes, new.created_at, new.expires_at) == (
        "checkout", frozenset({"predict"}), T0, None)  # fmt: skip
    assert new.key_id != old.key_id
    assert store.api_key(key_hash="2" * 64) == new
    assert store.api_key(key_hash="1" * 64).expires_at == T0 + HOUR  # type: ignore[union-attr]
    live = store.api_keys(retailer_id="a", at=T0 + HOUR - timedelta(seconds=1)) or []
    assert {k.key_id for k in live} >= {old.key_id, new.key_id}
    assert store.key_live(key_id=old.key_id, at=T0 + HOUR - timedelta(seconds=1))
    assert not store.key_live(key_id=old.key_id, at=T0 + HOUR)
    assert old.key_id not in {k.key_id for k in store.api_keys(retailer_id="a", at=T0 + HOUR)
                              or []}  # fmt: skip
    with pytest.raises(KeyAlreadyRotated):
        rotate(store, old, "3" * 64, HOUR)
    before = rows(database_url)  # the retailer's next change of keys deletes the expired row
    store.revoke_api_key(retailer_id="a", key_id=new.key_id, at=T0 + 2 * HOUR)
    assert rows(database_url) == before - 2
    assert store.api_key(key_hash="1" * 64) is None


def test_rotating_without_grace_revokes_the_old_key_at_once(store: Store) -> None:
    [old] = store.api_keys(retailer_id="a", at=T0) or []
    new = rotate(store, old, "1" * 64, timedelta(0))
    assert new is not None and new.scopes == ALL_SCOPES
    assert store.api_key(key_hash="a" * 64) is None
    assert store.api_keys(retailer_id="a", at=T0) == [new]


def test_rotating_or_revoking_answers_only_for_the_retailers_own_keys(store: Store) -> None:
    [b_key] = store.api_keys(retailer_id="b", at=T0) or []
    assert rotate(store, b_key, "1" * 64, HOUR) is not None  # its own retailer: fine
    [b_key] = [k for k in store.api_keys(retailer_id="b", at=T0) or [] if k.expires_at is None]
    seq = store.last_change_seq()
    misdirected = store.rotate_api_key(retailer_id="a", key_id=b_key.key_id, at=T0,
                                       new_key_id=new_key_id(), key_hash="2" * 64,
                                       expires_at=T0 + HOUR)  # fmt: skip
    assert misdirected is None
    assert store.revoke_api_key(retailer_id="a", key_id=b_key.key_id, at=T0) is False
    assert store.revoke_api_key(retailer_id="a", key_id="key_nonexistent1", at=T0) is False
    assert store.last_change_seq() == seq
    assert store.key_live(key_id=b_key.key_id, at=T0)
    with pytest.raises(NoSuchRetailer):
        store.revoke_api_key(retailer_id="nobody", key_id=b_key.key_id, at=T0)
    with pytest.raises(NoSuchRetailer):
        store.rotate_api_key(retailer_id="nobody", key_id=b_key.key_id, at=T0,
                             new_key_id=new_key_id(), key_hash="3" * 64,
                             expires_at=None)  # fmt: skip


def test_revoking_one_key_leaves_the_others(store: Store) -> None:
    marketing = key("a", "marketing", READ)
    store.add_api_key(key=marketing, key_hash="1" * 64)
    seq = store.last_change_seq()
    assert store.revoke_api_key(retailer_id="a", key_id=marketing.key_id, at=T0) is True
    assert [c.retailer_id for c in store.changes_after(seq=seq)] == ["a"]
    assert store.api_key(key_hash="1" * 64) is None
    assert not store.key_live(key_id=marketing.key_id, at=T0)
    assert [k.name for k in store.api_keys(retailer_id="a", at=T0) or []] == ["default"]
    assert store.api_key(key_hash="b" * 64) is not None
    again = key("a", "marketing")  # the name is free again
    assert store.add_api_key(key=again, key_hash="2" * 64) is True


def test_replacing_revokes_every_key_in_grace_or_not(store: Store) -> None:
    old = key("a", "checkout")
    store.add_api_key(key=old, key_hash="1" * 64)
    rotate(store, old, "2" * 64, HOUR)
    only = key("a")
    assert store.add_api_key(key=only, key_hash="3" * 64, replace=True) is True
    assert store.api_keys(retailer_id="a", at=T0) == [only]
    for gone in ("a", "1", "2"):
        assert store.api_key(key_hash=gone * 64) is None
    assert len(store.api_keys(retailer_id="b", at=T0) or []) == 1


def test_the_migration_makes_existing_keys_default_keys_with_every_scope(
    database_url: str,
) -> None:
    """Down to 0013 (which revokes what it cannot represent: narrowed keys, keys in grace), a
    key added there in the old shape, and up again: every key works as before."""
    admin = as_admin(database_url) if database_url.startswith("postgresql") else database_url
    store = open_store(database_url)
    try:
        store.create_retailer(retailer=make("a"), key_hash="a" * 64)
        store.add_api_key(key=key("a", "reader", READ), key_hash="1" * 64)
        old = key("a", "checkout")
        store.add_api_key(key=old, key_hash="2" * 64)
        rotate(store, old, "3" * 64, HOUR)
    finally:
        store.close()
    downgrade(admin, "0013")
    engine = create_engine(admin)
    before = sa.table("api_keys", sa.column("key_hash", sa.String), sa.column("retailer_id",
                      sa.String), sa.column("created_at", UTCDateTime()))  # fmt: skip
    try:
        with engine.begin() as conn:
            kept = set(conn.execute(select(before.c.key_hash)).scalars())
            assert kept == {"a" * 64, "3" * 64}
            conn.execute(before.insert().values(key_hash="4" * 64, retailer_id="a",
                                                created_at=T0 + HOUR))  # fmt: skip
    finally:
        engine.dispose()
    upgrade(admin)
    store = open_store(database_url)
    try:
        found = [store.api_key(key_hash=h * 64) for h in "a34"]
        assert all(k is not None and k.retailer_id == "a" for k in found)
        live = store.api_keys(retailer_id="a", at=T0 + HOUR) or []
        assert sorted(k.name for k in live) == ["default", "default-2", "default-3"]
        assert {k.scopes for k in live} == {ALL_SCOPES}
        assert {k.expires_at for k in live} == {None}
        assert len({k.key_id for k in live}) == 3
        assert all(re.fullmatch(KEY_ID_PATTERN, k.key_id) for k in live)
    finally:
        store.close()
