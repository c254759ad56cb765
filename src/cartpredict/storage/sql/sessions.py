"""Dashboard sessions: looked up by the hash of their secret, before their retailer is known
(operator-level, as a key is); a session of a retailer goes with it (ON DELETE CASCADE)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from cartpredict.storage.base import AppSession
from cartpredict.storage.sql.session import SqlSession
from cartpredict.storage.tables import app_sessions


class SessionRows(SqlSession):
    def add_app_session(self, *, session_hash: str, session: AppSession) -> bool:
        try:
            with self._write() as conn:
                conn.execute(
                    delete(app_sessions).where(app_sessions.c.expires_at <= session.created_at)
                )
                conn.execute(
                    insert(app_sessions).values(
                        session_hash=session_hash,
                        retailer_id=session.retailer_id,
                        key_id=session.key_id,
                        created_at=session.created_at,
                        expires_at=session.expires_at,
                    )
                )
        except IntegrityError:  # the retailer is gone (or, never in practice, the hash is taken)
            return False
        return True

    def app_session(self, *, session_hash: str, at: datetime) -> AppSession | None:
        table = app_sessions
        with self._read() as conn:
            row = conn.execute(
                select(
                    table.c.retailer_id, table.c.key_id, table.c.created_at, table.c.expires_at
                ).where(table.c.session_hash == session_hash, table.c.expires_at > at)
            ).first()
        if row is None:
            return None
        return AppSession(row.retailer_id, row.key_id, row.created_at, row.expires_at)

    def delete_app_session(self, *, session_hash: str) -> None:
        with self._write() as conn:
            conn.execute(delete(app_sessions).where(app_sessions.c.session_hash == session_hash))
