"""API keys: hashes only, looked up by hash, replaced all at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select

from cartpredict.storage.sql.session import (
    SqlSession,
    lock_retailer,
    record_change,
    retailer_exists,
)
from cartpredict.storage.tables import api_keys


class KeyRows(SqlSession):
    def add_api_key(self, *, retailer_id: str, key_hash: str, created_at: datetime) -> bool:
        with self._write(retailer_id) as conn:
            if not retailer_exists(conn, retailer_id):
                return False
            conn.execute(
                insert(api_keys).values(
                    key_hash=key_hash, retailer_id=retailer_id, created_at=created_at
                )
            )
            record_change(conn, retailer_id, created_at)
        return True

    def replace_api_keys(self, *, retailer_id: str, key_hash: str, at: datetime) -> bool:
        """Revoke every key of the retailer and add this one, in one transaction that holds the
        retailer's row: concurrent replacements run one after the other, and the last one's
        key is the only one left."""
        with self._write(retailer_id) as conn:
            if not lock_retailer(conn, retailer_id):
                return False
            conn.execute(delete(api_keys).where(api_keys.c.retailer_id == retailer_id))
            conn.execute(
                insert(api_keys).values(key_hash=key_hash, retailer_id=retailer_id, created_at=at)
            )
            record_change(conn, retailer_id, at)
        return True

    def retailer_for_key(self, *, key_hash: str) -> str | None:
        with self._read() as conn:
            return conn.execute(
                select(api_keys.c.retailer_id).where(api_keys.c.key_hash == key_hash)
            ).scalar()
