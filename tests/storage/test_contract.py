"""The storage contract: every backend behaves the same."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from cartpredict.core.scopes import ALL_SCOPES, new_key_id
from cartpredict.storage import ApiKey, DuplicateRetailer, Retailer, Store, open_store
from cartpredict.storage.migrate import head_revision
from cartpredict.storage.tables import SCHEMA_REVISION

T0 = datetime(2026, 11, 1, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    yield opened
    opened.close()


def make(retailer_id: str, **changes: object) -> Retailer:
    values: dict[str, object] = {
        "retailer_id": retailer_id,
        "requires_account": True,
        "payment_options": ("credit_card", "paypal"),
        "shipping_speeds": ("standard", "express"),
        "pooled_learning": False,
        "precision_target": 0.7,
        "created_at": T0,
        "last_updated": T0,
    }
    values.update(changes)
    return Retailer(**values)  # type: ignore[arg-type]


def key(retailer_id: str, name: str = "default", scopes: frozenset[str] = ALL_SCOPES) -> ApiKey:
    return ApiKey(new_key_id(), retailer_id, name, scopes, T0)


def owner(store: Store, key_hash: str) -> str | None:
    """The retailer whose key has this hash, if any."""
    found = store.api_key(key_hash=key_hash)
    return found.retailer_id if found is not None else None


def test_schema_is_at_the_revision_the_code_expects(store: Store) -> None:
    assert head_revision() == SCHEMA_REVISION
    assert store.schema_revision() == SCHEMA_REVISION


def test_create_then_get_round_trips_every_field(store: Store) -> None:
    original = make("store_1", payment_options=("klarna",), shipping_speeds=("pickup",))
    store.create_retailer(retailer=original, key_hash="a" * 64)
    assert store.get_retailer(retailer_id="store_1") == original


def test_datetimes_come_back_aware_utc(store: Store) -> None:
    store.create_retailer(retailer=make("store_1"), key_hash="a" * 64)
    got = store.get_retailer(retailer_id="store_1")
    assert got is not None
    assert got.last_updated.tzinfo is not None
    assert got.last_updated == T0


def test_duplicate_id_is_refused_and_writes_nothing(store: Store) -> None:
    store.create_retailer(retailer=make("store_1"), key_hash="a" * 64)
    seq = store.last_change_seq()
    with pytest.raises(DuplicateRetailer):
        store.create_retailer(retailer=make("store_1", requires_account=False), key_hash="b" * 64)
    assert owner(store, "b" * 64) is None
    assert store.get_retailer(retailer_id="store_1") == make("store_1")
    assert store.last_change_seq() == seq


def test_get_missing_is_none(store: Store) -> None:
    assert store.get_retailer(retailer_id="nobody") is None


def test_update_changes_only_that_retailer(store: Store) -> None:
    store.create_retailer(retailer=make("a"), key_hash="a" * 64)
    store.create_retailer(retailer=make("b"), key_hash="b" * 64)
    later = T0 + timedelta(hours=1)
    updated = store.update_retailer(
        retailer_id="a", changes={"shipping_speeds": ["overnight"]}, updated_at=later
    )
    assert updated == make("a", shipping_speeds=("overnight",), last_updated=later)
    assert store.get_retailer(retailer_id="a") == updated
    assert store.get_retailer(retailer_id="b") == make("b")


def test_update_missing_is_none(store: Store) -> None:
    assert (
        store.update_retailer(retailer_id="x", changes={"pooled_learning": True}, updated_at=T0)
        is None
    )


def test_update_refuses_columns_that_are_not_settable(store: Store) -> None:
    store.create_retailer(retailer=make("a"), key_hash="a" * 64)
    with pytest.raises(ValueError, match="not updatable"):
        store.update_retailer(retailer_id="a", changes={"created_at": T0}, updated_at=T0)


def test_delete_erases_the_retailer_and_its_keys_only(store: Store) -> None:
    store.create_retailer(retailer=make("a"), key_hash="a" * 64)
    store.create_retailer(retailer=make("b"), key_hash="b" * 64)
    assert store.delete_retailer(retailer_id="a", at=T0) is True
    assert store.get_retailer(retailer_id="a") is None
    assert owner(store, "a" * 64) is None
    assert owner(store, "b" * 64) == "b"
    assert store.delete_retailer(retailer_id="a", at=T0) is False


def test_keys_are_added_looked_up_and_replaced_per_retailer(store: Store) -> None:
    store.create_retailer(retailer=make("a"), key_hash="1" * 64)
    store.create_retailer(retailer=make("b"), key_hash="3" * 64)
    assert store.add_api_key(key=key("a", "second"), key_hash="2" * 64) is True
    assert store.add_api_key(key=key("nobody"), key_hash="4" * 64) is False
    assert owner(store, "2" * 64) == "a"
    assert store.add_api_key(key=key("a"), key_hash="5" * 64, replace=True) is True
    assert owner(store, "1" * 64) is None
    assert owner(store, "2" * 64) is None
    assert owner(store, "5" * 64) == "a"
    assert owner(store, "3" * 64) == "b"
    assert store.add_api_key(key=key("nobody"), key_hash="6" * 64, replace=True) is False
    assert owner(store, "6" * 64) is None


def test_every_write_appends_to_the_change_feed(store: Store) -> None:
    start = store.last_change_seq()
    store.create_retailer(retailer=make("a"), key_hash="1" * 64)
    store.update_retailer(retailer_id="a", changes={"pooled_learning": True}, updated_at=T0)
    store.add_api_key(key=key("a", "second"), key_hash="2" * 64)
    store.add_api_key(key=key("a"), key_hash="3" * 64, replace=True)
    store.delete_retailer(retailer_id="a", at=T0)
    feed = store.changes_after(seq=start)
    assert [c.retailer_id for c in feed] == ["a"] * 5
    assert [c.seq for c in feed] == sorted(c.seq for c in feed)
    assert store.last_change_seq() == feed[-1].seq
    assert store.changes_after(seq=feed[-1].seq) == []


def test_old_changes_are_pruned(store: Store) -> None:
    store.create_retailer(retailer=make("a"), key_hash="1" * 64)
    store.update_retailer(
        retailer_id="a", changes={"pooled_learning": True}, updated_at=T0 + timedelta(hours=2)
    )
    assert store.prune_changes(before=T0 + timedelta(hours=1)) == 1
    assert len(store.changes_after(seq=0)) == 1


def test_serving_a_version_retiring_it_and_the_log(store: Store) -> None:
    from cartpredict.storage import ModelVersion

    store.create_retailer(retailer=make("a"), key_hash="1" * 64)
    version = ModelVersion("m-1", "a", T0, T0, T0, 10, 0.5, {"x": 1}, {"kind": "logistic"})
    store.add_model_version(version=version)
    assert store.model_version(scope="b", version_id="m-1") is None  # scoped by retailer
    assert store.retire_served(scope="a", at=T0) is False
    seq = store.last_change_seq()
    store.set_served(scope="a", version_id="m-1", action="promote", at=T0)
    assert store.served_version(scope="a") == version
    assert [c.retailer_id for c in store.changes_after(seq=seq)] == ["a"]
    assert store.retire_served(scope="a", at=T0) is True
    assert store.served_version(scope="a") is None
    assert [p.action for p in store.promotions(scope="a")] == ["retire", "promote"]
    assert store.delete_retailer(retailer_id="a", at=T0)
    assert store.model_versions(scope="a") == []
    assert store.promotions(scope="a") == []


def test_event_rows_are_the_events_with_times_exact_to_the_microsecond(store: Store) -> None:
    from cartpredict.storage import StoredEvent

    store.create_retailer(retailer=make("store_1"), key_hash="a" * 64)
    store.create_retailer(retailer=make("store_2"), key_hash="b" * 64)
    times = [T0 + timedelta(microseconds=1), T0 + timedelta(days=400, microseconds=999_999),
             datetime(2001, 2, 3, 4, 5, 6, 7, tzinfo=UTC), T0]  # fmt: skip
    attributes = {"tier": "gold", "score": 1.5}
    events = [
        StoredEvent(
            f"e-{i}", "cart_updated", f"c-{i}", at, T0, 12.5 * i, i, "mobile", "express", attributes
        )
        for i, at in enumerate(times)
    ] + [StoredEvent("p-1", "purchased", "c-1", T0 + timedelta(hours=1), T0)]
    store.add_events(retailer_id="store_1", events=events)
    store.add_events(retailer_id="store_2", events=[events[0]])
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def micros(at: datetime) -> int:
        return (at - epoch) // timedelta(microseconds=1)

    expected = {
        (e.event_id, e.type, e.cart_id, micros(e.at), e.cart_value, e.item_count,
         e.device_type, e.shipping_speed)
        for e in events
    }  # fmt: skip
    rows = list(store.event_rows(retailer_id="store_1"))
    assert {r[:8] for r in rows} == expected
    assert all(r[8] is None for r in rows)
    with_attributes = {r[0]: r[8] for r in store.event_rows(retailer_id="store_1", attributes=True)}
    assert with_attributes["e-2"] == {"tier": "gold", "score": 1.5}
    assert with_attributes["p-1"] is None
    assert list(store.event_rows(retailer_id="nobody")) == []


@pytest.mark.parametrize("n", [1, 3, 256, 300, 777])
def test_a_batch_of_the_log_is_written_whole_and_read_back_in_order(store: Store, n: int) -> None:
    """Whatever a batch's size, every row comes back, exactly, in the order written, each
    under its retailer, the decision with it."""
    from cartpredict.storage import Decided, ScoredCart

    store.create_retailer(retailer=make("store_1"), key_hash="a" * 64)
    store.create_retailer(retailer=make("store_2"), key_hash="b" * 64)
    decided = Decided(3, "treatment", "reminder_email", "none", 2.0, 0.75, "best_gain", True, 0.05)

    def cart(i: int) -> ScoredCart:
        return ScoredCart(f"store_{1 + i % 2}", T0 + timedelta(microseconds=i), f"c-{i}", "m-1",
                          i / (n + 1), i % 3 == 0, 10.0 + i, 1 + i % 4, "mobile", "express",
                          decided if i % 2 else None)  # fmt: skip

    carts = [cart(i) for i in range(n)]
    store.add_scored_carts(carts=carts)
    end = T0 + timedelta(days=1)
    for retailer_id in ("store_1", "store_2"):
        back = store.scored_carts(retailer_id=retailer_id, start=T0, end=end)
        assert list(back) == [c for c in carts if c.retailer_id == retailer_id]
