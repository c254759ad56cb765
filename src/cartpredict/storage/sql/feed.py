"""The change feed: what every worker must forget, in order (operator-level)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select

from cartpredict.storage.base import Change
from cartpredict.storage.sql.session import SqlSession
from cartpredict.storage.tables import changes


class FeedRows(SqlSession):
    def changes_after(self, *, seq: int) -> Sequence[Change]:
        with self._read() as conn:
            rows = conn.execute(
                select(changes.c.seq, changes.c.retailer_id)
                .where(changes.c.seq > seq)
                .order_by(changes.c.seq)
            ).all()
        return [Change(seq=r.seq, retailer_id=r.retailer_id) for r in rows]

    def last_change_seq(self) -> int:
        with self._read() as conn:
            return int(conn.execute(select(func.coalesce(func.max(changes.c.seq), 0))).scalar_one())

    def prune_changes(self, *, before: datetime) -> int:
        with self._write() as conn:
            return int(conn.execute(delete(changes).where(changes.c.changed_at < before)).rowcount)
