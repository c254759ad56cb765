"""Events (raw, row-level): stored once per id, against a retailer that exists."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, Row, cast, extract, func, null, select

from cartpredict.storage.base import (
    EventConflict,
    EventRow,
    Exposure,
    NoSuchRetailer,
    StoredEvent,
)
from cartpredict.storage.sql.session import IN_CHUNK, SqlSession, dialect_insert, living
from cartpredict.storage.tables import events as events_table

ROWS_PER_BATCH = 20_000  # training reads this many events at a time
_EVENT_FIELDS = (
    "type", "cart_id", "at", "cart_value", "item_count", "device_type", "shipping_speed",
    "attributes", "action", "arm", "delivered",
)  # fmt: skip
ACTIVITY = ("cart_updated", "purchased")  # what training and the reference read


class EventRows(SqlSession):
    def add_events(
        self,
        *,
        retailer_id: str,
        events: Sequence[StoredEvent],
        incarnation: datetime | None = None,
    ) -> int:
        """The retailer's row is locked (shared) first, so an erasure either waits for these
        events and erases them too, or has happened and they are refused. Concurrent senders
        of the same events never collide: each row is inserted unless its id is there already,
        and an id already there must hold the same event."""
        unique: dict[str, dict[str, Any]] = {}
        for event in events:  # a batch may repeat an event; the first one stands for it
            unique.setdefault(event.event_id, _event_row(retailer_id, event))
        rows = list(unique.values())
        with self._write(retailer_id) as conn:
            born = living(conn, {retailer_id}).get(retailer_id)
            if born is None or (incarnation is not None and born != incarnation):
                raise NoSuchRetailer(retailer_id)
            if not rows:
                return 0
            insert_new = (
                dialect_insert(conn, events_table)
                .on_conflict_do_nothing(index_elements=["retailer_id", "event_id"])
                .returning(events_table.c.event_id)
            )
            new: set[str] = set()
            for start in range(0, len(rows), IN_CHUNK):
                new.update(conn.execute(insert_new, rows[start : start + IN_CHUNK]).scalars())
            repeated = {r["event_id"]: r for r in rows if r["event_id"] not in new}
            differing = _differing(conn, retailer_id, repeated)
            if differing:
                raise EventConflict(differing)
        return len(new)

    def events(self, *, retailer_id: str) -> Sequence[StoredEvent]:
        with self._read(retailer_id) as conn:
            rows = conn.execute(
                select(events_table)
                .where(events_table.c.retailer_id == retailer_id,
                       events_table.c.type.in_(ACTIVITY))
                .order_by(events_table.c.at, events_table.c.event_id)
            ).all()  # fmt: skip
        return [_event(row) for row in rows]

    def exposures(
        self, *, retailer_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> Sequence[Exposure]:
        e = events_table.c
        query = select(e.cart_id, e.at, e.action, e.arm, e.delivered).where(
            e.retailer_id == retailer_id, e.type == "action"
        )
        if start is not None:
            query = query.where(e.at >= start)
        if end is not None:
            query = query.where(e.at < end)
        with self._read(retailer_id) as conn:
            rows = conn.execute(query.order_by(e.at, e.event_id)).all()
        return [Exposure(r.cart_id, r.at, r.action, r.arm, r.delivered) for r in rows]

    def event_rows(self, *, retailer_id: str, attributes: bool = False) -> Iterator[EventRow]:
        e = events_table.c
        query = select(
            e.event_id, e.type, e.cart_id, _micros(e.at, self._engine.dialect.name), e.cart_value,
            e.item_count, e.device_type, e.shipping_speed, e.attributes if attributes else null(),
        ).where(e.retailer_id == retailer_id, e.type.in_(ACTIVITY))  # fmt: skip
        with self._read(retailer_id) as conn:
            # the driver's own cursor: plain tuples, no result row object per event
            cursor = conn.execute(query).cursor
            while batch := cursor.fetchmany(ROWS_PER_BATCH):
                yield from (
                    row if row[8] is None or not isinstance(row[8], str)
                    else (*row[:8], json.loads(row[8]))  # SQLite hands JSON over as text
                    for row in batch
                )  # fmt: skip

    def purchases(
        self, *, retailer_id: str, start: datetime, end: datetime
    ) -> Sequence[tuple[str, datetime]]:
        e = events_table.c
        with self._read(retailer_id) as conn:
            rows = conn.execute(
                select(e.cart_id, e.at).where(
                    e.retailer_id == retailer_id, e.type == "purchased", e.at >= start, e.at < end
                )
            ).all()
        return [(r.cart_id, r.at) for r in rows]

    def cart_values(
        self, *, retailer_id: str, start: datetime, end: datetime
    ) -> Sequence[tuple[str, datetime, float]]:
        e = events_table.c
        with self._read(retailer_id) as conn:
            rows = conn.execute(
                select(e.cart_id, e.at, e.cart_value)
                .where(e.retailer_id == retailer_id, e.type == "cart_updated",
                       e.at >= start, e.at < end)
                .order_by(e.at, e.event_id)
            ).all()  # fmt: skip
        return [(r.cart_id, r.at, float(r.cart_value)) for r in rows]


def _micros(at: Any, dialect: str) -> ColumnElement[int]:
    """A timestamp as integer microseconds since the epoch, computed by the database (exact:
    SQLite holds ``YYYY-MM-DD HH:MM:SS.ffffff`` text, PostgreSQL microseconds)."""
    if dialect == "sqlite":
        seconds = cast(func.strftime("%s", func.substr(at, 1, 19)), BigInteger)  # whole seconds
        return seconds * 1_000_000 + cast(func.substr(at, 21, 6), BigInteger)
    return cast(func.round(extract("epoch", at) * 1_000_000), BigInteger)


def _differing(
    conn: Connection, retailer_id: str, rows: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """The ids of these events that are stored already with another payload."""
    differing: list[str] = []
    ids = sorted(rows)
    for start in range(0, len(ids), IN_CHUNK):
        stored = conn.execute(
            select(events_table).where(
                events_table.c.retailer_id == retailer_id,
                events_table.c.event_id.in_(ids[start : start + IN_CHUNK]),
            )
        ).all()
        for row in stored:
            sent = rows[row.event_id]
            if any(_stored_value(row, f) != _sent_value(sent, f) for f in _EVENT_FIELDS):
                differing.append(row.event_id)
    return sorted(differing)


def _stored_value(row: Row[Any], field: str) -> Any:
    value = getattr(row, field)
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _sent_value(row: Mapping[str, Any], field: str) -> Any:
    value = row[field]
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _event_row(retailer_id: str, event: StoredEvent) -> dict[str, Any]:
    return {
        "retailer_id": retailer_id,
        "event_id": event.event_id,
        "type": event.type,
        "cart_id": event.cart_id,
        "at": event.at,
        "received_at": event.received_at,
        "cart_value": event.cart_value,
        "item_count": event.item_count,
        "device_type": event.device_type,
        "shipping_speed": event.shipping_speed,
        "attributes": dict(event.attributes) if event.attributes is not None else None,
        "action": event.action,
        "arm": event.group,
        "delivered": event.delivered,
    }


def _event(row: Row[Any]) -> StoredEvent:
    return StoredEvent(
        event_id=row.event_id,
        type=row.type,
        cart_id=row.cart_id,
        at=row.at,
        received_at=row.received_at,
        cart_value=row.cart_value,
        item_count=row.item_count,
        device_type=row.device_type,
        shipping_speed=row.shipping_speed,
        attributes=row.attributes,
        action=row.action,
        group=row.arm,
        delivered=row.delivered,
    )
