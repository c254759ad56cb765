"""Training data as columns: a retailer's events become labelled snapshots and time-ordered
splits with numpy, without a Python object per event or per snapshot.

The rule is ``snapshots.py``'s, to the letter (a property test holds the two equal): a cart
contributes a snapshot per inactivity level after each ``cart_updated`` event, at ``t = update +
level``, while no later update and no purchase has happened by ``t``; its label is *purchased*
when a purchase falls in ``(t, update + 24 h]``; a snapshot whose 24-hour window has not closed
by ``as_of`` is left out. The conditions only tighten as the level grows, so each level is a
mask over the updates, and the whole set is a handful of array operations.

Times are integer microseconds since the epoch, as the store reads them out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from cartpredict.learning.columns import CartColumns
from cartpredict.learning.snapshots import INACTIVITY_LEVELS_H, LABEL_WINDOW
from cartpredict.storage import EventRow

HOUR_US = 3_600_000_000
NEVER = np.iinfo(np.int64).max
LABEL_WINDOW_US = int(LABEL_WINDOW.total_seconds()) * 1_000_000


def micros(at: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact)."""
    delta = at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class EventColumns:
    """One retailer's events, sorted by (cart id, time, event id)."""

    cart: np.ndarray  # int64 code of the cart id (codes follow the sorted cart ids)
    cart_ids: np.ndarray  # code -> cart id
    purchase: np.ndarray  # bool: a purchase (else a cart update)
    at: np.ndarray  # int64 µs
    cart_value: np.ndarray
    item_count: np.ndarray
    device_type: np.ndarray
    shipping_speed: np.ndarray
    attributes: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.at)

    @classmethod
    def from_rows(cls, rows: Iterable[EventRow], attributes: Sequence[str] = ()) -> EventColumns:
        """From the store's rows (any order); ``attributes``: the names to keep, as declared."""
        batch = list(rows)
        if not batch:
            return _no_events(attributes)
        (event_id, kind, cart_id, at, value, items, device, speed, attrs) = zip(*batch, strict=True)
        cart_ids, codes = np.unique(np.array(cart_id, dtype=str), return_inverse=True)
        times = np.array(at, dtype=np.int64)
        order = np.lexsort((times, codes))
        same = (codes[order][1:] == codes[order][:-1]) & (times[order][1:] == times[order][:-1])
        if same.any():  # events of one cart at one time: the event id decides (rarely needed)
            order = np.lexsort((np.array(event_id, dtype=str), times, codes))
        cart = codes[order]
        values = {
            name: np.array([None if a is None else a.get(name) for a in attrs], dtype=object)
            for name in attributes
        }
        return cls(
            cart=cart.astype(np.int64),
            cart_ids=cart_ids,
            purchase=(np.array(kind, dtype=str) == "purchased")[order],
            at=times[order],
            cart_value=np.array(value, dtype=float)[order],
            item_count=np.array(items, dtype=float)[order],
            device_type=np.array(device, dtype=object)[order],
            shipping_speed=np.array(speed, dtype=object)[order],
            attributes={name: column[order] for name, column in values.items()},
        )


def _no_events(attributes: Sequence[str]) -> EventColumns:
    empty_int, empty_float = np.empty(0, dtype=np.int64), np.empty(0)
    strings = np.empty(0, dtype=object)
    return EventColumns(
        empty_int, np.empty(0, dtype=str), np.empty(0, dtype=bool), empty_int, empty_float,
        empty_float, strings, strings, {name: strings for name in attributes},
    )  # fmt: skip


@dataclass(frozen=True)
class Snapshots:
    """Labelled snapshots, one row each, in order of (cart id, time)."""

    carts: CartColumns  # the cart as it was at ``at``: what the features are made of
    cart: np.ndarray  # int64 cart code (see ``cart_ids``)
    cart_ids: np.ndarray
    at: np.ndarray  # int64 µs: the moment the snapshot describes
    last_activity: np.ndarray  # int64 µs: the update it was taken after
    purchased: np.ndarray  # bool label

    def __len__(self) -> int:
        return len(self.at)

    @property
    def abandoned(self) -> np.ndarray:
        return (~self.purchased).astype(float)

    def n_carts(self) -> int:
        return len(np.unique(self.cart))

    def take(self, index: np.ndarray) -> Snapshots:
        c = self.carts
        return Snapshots(
            carts=CartColumns(
                cart_value=c.cart_value[index],
                item_count=c.item_count[index],
                inactivity_hours=c.inactivity_hours[index],
                device_type=c.device_type[index],
                shipping_speed=c.shipping_speed[index],
                attributes={name: column[index] for name, column in c.attributes.items()},
            ),
            cart=self.cart[index],
            cart_ids=self.cart_ids,
            at=self.at[index],
            last_activity=self.last_activity[index],
            purchased=self.purchased[index],
        )


def snapshot_columns(
    events: EventColumns, *, as_of: datetime, levels: Sequence[float] = INACTIVITY_LEVELS_H
) -> Snapshots:
    """Every labelled snapshot the events support, in order of (cart, time)."""
    n_carts = len(events.cart_ids)
    bought = np.full(n_carts, NEVER, dtype=np.int64)  # each cart's first purchase
    np.minimum.at(bought, events.cart[events.purchase], events.at[events.purchase])
    updates = np.flatnonzero(~events.purchase)
    cart, at = events.cart[updates], events.at[updates]
    following = np.full(len(updates), NEVER, dtype=np.int64)  # the cart's next update
    same = cart[1:] == cart[:-1]
    following[:-1][same] = at[1:][same]
    window_end = at + LABEL_WINDOW_US
    closed = window_end <= micros(as_of)
    purchase = bought[cart]
    kept_update, kept_level = [], []
    for i, level in enumerate(levels):
        t = at + round(level * HOUR_US)
        keep = np.flatnonzero(closed & (t < following) & (t < purchase))
        kept_update.append(keep)
        kept_level.append(np.full(len(keep), i))
    which = np.concatenate(kept_update)
    level_index = np.concatenate(kept_level)
    order = np.lexsort((level_index, which))  # updates are in (cart, time) order already
    which, level_index = which[order], level_index[order]
    rows = updates[which]
    hours = np.asarray(levels, dtype=float)[level_index]
    t = at[which] + np.round(hours * HOUR_US).astype(np.int64)
    p = purchase[which]
    return Snapshots(
        carts=CartColumns(
            cart_value=np.nan_to_num(events.cart_value[rows], nan=0.0),
            item_count=np.nan_to_num(events.item_count[rows], nan=0.0),
            inactivity_hours=hours,
            device_type=_or(events.device_type[rows], "unknown"),
            shipping_speed=_or(events.shipping_speed[rows], "standard"),
            attributes={name: column[rows] for name, column in events.attributes.items()},
        ),
        cart=cart[which],
        cart_ids=events.cart_ids,
        at=t,
        last_activity=at[which],
        purchased=(p > t) & (p <= window_end[which]),
    )


def _or(values: np.ndarray, default: str) -> np.ndarray:
    out = np.asarray(values, dtype=object).copy()
    out[out == None] = default  # noqa: E711  (elementwise comparison with None)
    return out.astype(str)


@dataclass(frozen=True)
class Parts:
    train: Snapshots
    valid: Snapshots
    test: Snapshots


def without_treated(rows: Snapshots, treated_at: Mapping[str, int]) -> Snapshots:
    """The snapshots a model of P(purchase | no action) may learn from: a cart in the treatment
    group is left out from the moment of its first action on (``treated_at``: cart id -> µs);
    its snapshots before, and every control cart's, stay. (Otherwise the model would learn
    that the carts we act on buy more, and act on them less.)"""
    if not treated_at or not len(rows):
        return rows
    ids = np.array(list(treated_at), dtype=str)
    times = np.fromiter(treated_at.values(), dtype=np.int64, count=len(ids))
    first = np.full(len(rows.cart_ids), np.iinfo(np.int64).max, dtype=np.int64)
    pos = np.searchsorted(rows.cart_ids, ids)
    known = pos < len(rows.cart_ids)
    known[known] = rows.cart_ids[pos[known]] == ids[known]
    first[pos[known]] = times[known]
    keep = rows.at < first[rows.cart]
    return rows if keep.all() else rows.take(np.flatnonzero(keep))


def split_by_time(
    rows: Snapshots, *, valid_fraction: float = 0.2, test_fraction: float = 0.2
) -> Parts:
    """Older carts train, newer carts validate, newest test; a cart never straddles two parts
    (``snapshots.split_by_time``'s rule, a column at a time)."""
    codes = np.unique(rows.cart)
    first_seen = np.full(len(rows.cart_ids), NEVER, dtype=np.int64)
    np.minimum.at(first_seen, rows.cart, rows.at)
    ordered = codes[np.lexsort((codes, first_seen[codes]))]  # ties: by cart id
    n = len(ordered)
    test_start = n - round(n * test_fraction)
    valid_start = test_start - round(n * valid_fraction)
    part = np.zeros(len(rows.cart_ids), dtype=np.int8)
    part[ordered[valid_start:test_start]] = 1
    part[ordered[test_start:]] = 2
    of_row = part[rows.cart]
    return Parts(*(rows.take(np.flatnonzero(of_row == i)) for i in range(3)))


def sample_carts(rows: Snapshots, most: int) -> Snapshots:
    """The snapshots of at most ``most`` carts, chosen by a hash of the cart id: the same carts
    whoever runs it, and a fair draw whatever the ids look like."""
    codes = np.unique(rows.cart)
    if len(codes) <= most:
        return rows
    keys = _fnv1a(np.asarray(rows.cart_ids, dtype=str)[codes])
    chosen = np.zeros(len(rows.cart_ids), dtype=bool)
    chosen[codes[np.argsort(keys, kind="stable")[:most]]] = True
    return compact(rows.take(np.flatnonzero(chosen[rows.cart])))


def compact(rows: Snapshots) -> Snapshots:
    """The same snapshots, keeping the ids of their own carts only (a sample of a large
    retailer should not carry every cart id it has)."""
    kept, cart = np.unique(rows.cart, return_inverse=True)
    return replace(rows, cart=cart.astype(np.int64), cart_ids=rows.cart_ids[kept])


def _fnv1a(ids: np.ndarray) -> np.ndarray:
    """64-bit FNV-1a of each string's code points, a column of characters at a time (the
    padding of a fixed-width array does not count, so a cart's key never depends on the
    others)."""
    chars = ids.view(np.uint32).reshape(len(ids), -1).astype(np.uint64)
    key = np.full(len(ids), 0xCBF29CE484222325, dtype=np.uint64)
    prime = np.uint64(0x100000001B3)
    for column in chars.T:
        key = np.where(column != 0, (key ^ column) * prime, key)
    return key
