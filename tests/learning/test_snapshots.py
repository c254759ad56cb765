"""Snapshots and labels: no feature from after the snapshot time, labels on exactly 24 h."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from cartpredict.learning.snapshots import INACTIVITY_LEVELS_H, snapshots, split_by_time
from cartpredict.storage import StoredEvent

T0 = datetime(2026, 10, 1, tzinfo=UTC)
FAR = T0 + timedelta(days=30)


def update(cart: str, minutes: int, value: float = 10.0, n: int = 0) -> StoredEvent:
    at = T0 + timedelta(minutes=minutes)
    return StoredEvent(f"u-{cart}-{minutes}-{n}", "cart_updated", cart, at, at, value, 1,
                       "mobile", "standard", {"k": float(minutes)})  # fmt: skip


def purchase(cart: str, minutes: float) -> StoredEvent:
    at = T0 + timedelta(minutes=minutes)
    return StoredEvent(f"p-{cart}-{minutes}", "purchased", cart, at, at)


def test_one_cart_gives_a_snapshot_per_level_until_it_is_bought() -> None:
    rows = snapshots([update("c", 0), purchase("c", 4 * 60)], as_of=FAR)
    assert [r.inactivity_hours for r in rows] == [0.0, 1.0, 3.0]  # bought at 4 h
    assert all(r.purchased for r in rows)


def test_the_label_window_is_exactly_24_hours_after_the_last_activity() -> None:
    on_the_edge = snapshots([update("c", 0), purchase("c", 24 * 60)], as_of=FAR)
    just_after = snapshots([update("c", 0), purchase("c", 24 * 60 + 1 / 60)], as_of=FAR)
    assert all(r.purchased for r in on_the_edge)
    assert len(just_after) == len(INACTIVITY_LEVELS_H)
    assert not any(r.purchased for r in just_after)


def test_a_cart_whose_window_is_still_open_has_no_label_yet() -> None:
    events = [update("c", 0)]
    assert snapshots(events, as_of=T0 + timedelta(hours=23, minutes=59)) == []
    assert len(snapshots(events, as_of=T0 + timedelta(hours=24))) == len(INACTIVITY_LEVELS_H)


def test_a_later_update_ends_the_earlier_states_snapshots() -> None:
    rows = snapshots([update("c", 0, 10.0), update("c", 90, 50.0)], as_of=FAR)
    first = [r.inactivity_hours for r in rows if r.cart_value == 10.0]
    assert first == [0.0, 1.0]  # the 3 h snapshot would postdate the update at 1.5 h
    assert [r.inactivity_hours for r in rows if r.cart_value == 50.0] == list(INACTIVITY_LEVELS_H)


events_strategy = st.lists(
    st.one_of(
        st.builds(update, st.sampled_from("abc"), st.integers(0, 3000),
                  st.floats(0, 500), st.integers(0, 3)),
        st.builds(purchase, st.sampled_from("abc"), st.integers(0, 3000)),
    ),
    max_size=25,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(events_strategy, st.integers(0, 4000))
def test_no_snapshot_uses_anything_after_its_time_and_labels_use_exactly_the_window(
    events: list[StoredEvent], as_of_minutes: int
) -> None:
    as_of = T0 + timedelta(minutes=as_of_minutes)
    unique: dict[str, StoredEvent] = {}
    for event in events:  # as the store keeps them: one event per id, the first
        unique.setdefault(event.event_id, event)
    events = list(unique.values())
    for row in snapshots(events, as_of=as_of):
        mine = [e for e in events if e.cart_id == row.cart_id]
        known = [e for e in mine if e.at <= row.at]
        # features: the newest update at or before t, and nothing newer
        state = max(
            (e for e in known if e.type == "cart_updated"), key=lambda e: (e.at, e.event_id)
        )
        assert (row.cart_value, row.last_activity, row.attributes) == (
            state.cart_value,
            state.at,
            state.attributes,
        )
        assert row.at - row.last_activity == timedelta(hours=row.inactivity_hours)
        assert not any(e.type == "purchased" for e in known)
        # the label: a purchase in (t, last activity + 24 h], and that window has closed
        window_end = row.last_activity + timedelta(hours=24)
        assert window_end <= as_of
        bought = [e.at for e in mine if e.type == "purchased"]
        assert row.purchased == any(row.at < p <= window_end for p in bought)
        # and the same snapshot comes out of the events known at t plus the label's window
        horizon = [
            e for e in events if e.at <= row.at or (e.type == "purchased" and e.at <= window_end)
        ]
        assert row in snapshots(horizon, as_of=as_of)


def test_the_time_split_keeps_every_cart_on_one_side_and_orders_them() -> None:
    events = [update(f"c{i}", i * 30) for i in range(50)]
    split = split_by_time(snapshots(events, as_of=FAR))
    carts = [{r.cart_id for r in part} for part in (split.train, split.valid, split.test)]
    assert not (carts[0] & carts[1] or carts[1] & carts[2] or carts[0] & carts[2])
    assert (len(carts[0]), len(carts[1]), len(carts[2])) == (30, 10, 10)
    starts = [[r.last_activity for r in part] for part in (split.train, split.valid, split.test)]
    assert max(starts[0]) < min(starts[1]) and max(starts[1]) < min(starts[2])
