"""Snapshots as columns are the snapshots of the specification's rule, row for row, in order;
the time split and the pooled sample keep a cart whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cartpredict.learning import snapshots as reference
from cartpredict.learning.frames import (
    EventColumns,
    Snapshots,
    micros,
    sample_carts,
    snapshot_columns,
    split_by_time,
    without_treated,
)
from cartpredict.storage import EventRow, StoredEvent
from tests.learning.test_snapshots import FAR, T0, events_strategy, purchase, update


def row(event: StoredEvent) -> EventRow:
    e = event
    return (e.event_id, e.type, e.cart_id, micros(e.at), e.cart_value, e.item_count,
            e.device_type, e.shipping_speed, e.attributes)  # fmt: skip


def as_rows(frame: Snapshots) -> list[tuple[object, ...]]:
    c = frame.carts
    return [
        (str(frame.cart_ids[frame.cart[i]]), int(frame.at[i]), int(frame.last_activity[i]),
         float(c.cart_value[i]), float(c.item_count[i]), float(c.inactivity_hours[i]),
         str(c.device_type[i]), str(c.shipping_speed[i]), bool(frame.purchased[i]),
         float(c.attributes["k"][i]) if "k" in c.attributes else None)
        for i in range(len(frame))
    ]  # fmt: skip


def expected(rows: list[reference.Snapshot]) -> list[tuple[object, ...]]:
    return [
        (r.cart_id, micros(r.at), micros(r.last_activity), r.cart_value, float(r.item_count),
         r.inactivity_hours, r.device_type, r.shipping_speed, r.purchased, r.attributes.get("k"))
        for r in rows
    ]  # fmt: skip


def stored_once(events: list[StoredEvent]) -> list[StoredEvent]:
    unique: dict[str, StoredEvent] = {}
    for event in events:  # as the store keeps them: one event per id, the first
        unique.setdefault(event.event_id, event)
    return list(unique.values())


@settings(max_examples=300, deadline=None)
@given(events_strategy, st.integers(0, 4000), st.randoms(use_true_random=False))
def test_column_snapshots_are_the_rules_snapshots_row_for_row(
    events: list[StoredEvent], as_of_minutes: int, shuffle: Random
) -> None:
    as_of = T0 + timedelta(minutes=as_of_minutes)
    events = stored_once(events)
    rows = [row(e) for e in events]
    shuffle.shuffle(rows)  # the store returns them in no particular order
    frame = snapshot_columns(EventColumns.from_rows(rows, ["k"]), as_of=as_of)
    assert as_rows(frame) == expected(reference.snapshots(events, as_of=as_of))


@settings(max_examples=100, deadline=None)
@given(events_strategy)
def test_the_column_split_is_the_rules_split(events: list[StoredEvent]) -> None:
    events = stored_once(events)
    frame = snapshot_columns(EventColumns.from_rows([row(e) for e in events], ["k"]), as_of=FAR)
    parts = split_by_time(frame)
    split = reference.split_by_time(reference.snapshots(events, as_of=FAR))
    for mine, theirs in zip(
        (parts.train, parts.valid, parts.test), (split.train, split.valid, split.test), strict=True
    ):
        assert sorted(as_rows(mine)) == sorted(expected(theirs))


def test_times_are_exact_to_the_microsecond() -> None:
    at = datetime(2026, 10, 1, 12, 30, 15, 123456, tzinfo=UTC)
    assert micros(at) == int(at.timestamp()) * 1_000_000 + 123456
    assert micros(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1


def test_no_events_give_no_snapshots() -> None:
    frame = snapshot_columns(EventColumns.from_rows([], ["k"]), as_of=FAR)
    assert len(frame) == 0 and frame.n_carts() == 0
    parts = split_by_time(frame)
    assert (len(parts.train), len(parts.valid), len(parts.test)) == (0, 0, 0)


def test_the_pooled_sample_takes_whole_carts_and_the_same_ones_every_time() -> None:
    events = [update(f"c{i}", i * 7) for i in range(300)] + [purchase("c5", 60)]
    frame = snapshot_columns(EventColumns.from_rows([row(e) for e in events]), as_of=FAR)
    sample = sample_carts(frame, 40)
    assert sample.n_carts() == 40

    def per_cart(rows: Snapshots) -> dict[str, int]:
        ids, counts = np.unique(rows.cart_ids[rows.cart], return_counts=True)
        return dict(zip(ids.tolist(), counts.tolist(), strict=True))

    mine, everyone = per_cart(sample), per_cart(frame)
    assert all(everyone[cart] == n for cart, n in mine.items())  # whole carts
    assert len(sample.cart_ids) == 40  # and only their ids
    again = sample_carts(
        snapshot_columns(EventColumns.from_rows([row(e) for e in reversed(events)]), as_of=FAR),
        40,
    )
    assert as_rows(again) == as_rows(sample)
    assert sample_carts(frame, 1000) is frame


def test_a_treated_cart_leaves_training_at_its_first_action_and_control_carts_stay() -> None:
    events = [update("a", 0, 50.0), update("b", 0, 80.0), update("c", 0, 20.0)]
    frame = snapshot_columns(EventColumns.from_rows([row(e) for e in events], []), as_of=FAR)
    action = micros(T0 + timedelta(hours=2))
    kept = without_treated(frame, {"a": action, "unknown": action})
    by_cart = {cid: [int(t) for c, t in zip(kept.cart, kept.at, strict=True)
                     if kept.cart_ids[c] == cid] for cid in ("a", "b", "c")}  # fmt: skip
    assert by_cart["a"] and max(by_cart["a"]) < action  # before the action only (0 h and 1 h)
    assert len(by_cart["b"]) == len(by_cart["c"]) == len(frame) // 3  # untouched
    assert without_treated(frame, {}) is frame
