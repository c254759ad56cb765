"""Labelled cart snapshots from events, exactly as the specification defines them.

A cart contributes one snapshot per inactivity level (0, 1, 3, 6, 12 hours) after each of its
``cart_updated`` events, taken at ``t = update + level`` and kept only while nothing newer has
happened: no later update at or before ``t`` (the state at ``t`` is that update's) and no
purchase at or before ``t``. Its label is *purchased* when a purchase falls in
``(t, update + 24 h]``. Features come only from the update, so from events at or before ``t``.
A snapshot whose 24-hour window has not closed by ``as_of`` has no label yet and is left out.

This is the rule written as it reads, one snapshot object at a time: the reference that
training's column-at-a-time version (``frames.py``) is held equal to, row for row, and what the
evaluation against the simulator's oracle walks through.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cartpredict.storage import StoredEvent

INACTIVITY_LEVELS_H: tuple[float, ...] = (0.0, 1.0, 3.0, 6.0, 12.0)
LABEL_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Snapshot:
    cart_id: str
    at: datetime  # the moment t the snapshot describes
    last_activity: datetime
    cart_value: float
    item_count: int
    inactivity_hours: float
    device_type: str
    shipping_speed: str
    purchased: bool
    attributes: Mapping[str, float | str] = field(default_factory=dict)

    @property
    def window_end(self) -> datetime:
        return self.last_activity + LABEL_WINDOW


def snapshots(
    events: Iterable[StoredEvent],
    *,
    as_of: datetime,
    levels: Sequence[float] = INACTIVITY_LEVELS_H,
) -> list[Snapshot]:
    """Every labelled snapshot the events support, in order of (cart, time)."""
    updates: dict[str, list[StoredEvent]] = defaultdict(list)
    purchases: dict[str, datetime] = {}
    for event in events:
        if event.type == "cart_updated":
            updates[event.cart_id].append(event)
        elif event.type == "purchased":
            first = purchases.get(event.cart_id)
            purchases[event.cart_id] = event.at if first is None else min(first, event.at)
    out: list[Snapshot] = []
    for cart_id in sorted(updates):
        history = sorted(updates[cart_id], key=lambda e: (e.at, e.event_id))
        out.extend(_cart_snapshots(history, purchases.get(cart_id), as_of, levels))
    return out


def _cart_snapshots(
    history: list[StoredEvent],
    purchased_at: datetime | None,
    as_of: datetime,
    levels: Sequence[float],
) -> Iterator[Snapshot]:
    for i, update in enumerate(history):
        window_end = update.at + LABEL_WINDOW
        if window_end > as_of:
            continue  # censored: the outcome is not known yet
        next_update = history[i + 1].at if i + 1 < len(history) else None
        for level in levels:
            t = update.at + timedelta(hours=level)
            if next_update is not None and t >= next_update:
                break  # the cart had changed by t
            if purchased_at is not None and purchased_at <= t:
                break  # already purchased: nothing to predict
            yield Snapshot(
                cart_id=update.cart_id,
                at=t,
                last_activity=update.at,
                cart_value=float(update.cart_value or 0.0),
                item_count=int(update.item_count or 0),
                inactivity_hours=float(level),
                device_type=update.device_type or "unknown",
                shipping_speed=update.shipping_speed or "standard",
                purchased=purchased_at is not None and t < purchased_at <= window_end,
                attributes=dict(update.attributes or {}),
            )


@dataclass(frozen=True)
class Split:
    train: list[Snapshot]
    valid: list[Snapshot]
    test: list[Snapshot]


def split_by_time(
    rows: Sequence[Snapshot], *, valid_fraction: float = 0.2, test_fraction: float = 0.2
) -> Split:
    """Older carts train, newer carts validate, newest test; a cart never straddles two parts.

    Carts are ordered by their first snapshot's time; the parts take the oldest
    ``1 - valid - test``, the next ``valid`` and the newest ``test`` share of carts.
    """
    first_seen: dict[str, datetime] = {}
    for row in rows:
        seen = first_seen.get(row.cart_id)
        first_seen[row.cart_id] = row.at if seen is None else min(seen, row.at)
    ordered = sorted(first_seen, key=lambda c: (first_seen[c], c))
    n = len(ordered)
    test_start = n - round(n * test_fraction)
    valid_start = test_start - round(n * valid_fraction)
    part = {c: 0 if i < valid_start else 1 if i < test_start else 2 for i, c in enumerate(ordered)}
    buckets: tuple[list[Snapshot], list[Snapshot], list[Snapshot]] = ([], [], [])
    for row in rows:
        buckets[part[row.cart_id]].append(row)
    return Split(*buckets)
