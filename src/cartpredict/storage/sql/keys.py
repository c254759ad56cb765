"""API keys: hashes only, looked up by hash; named, scoped, rotated and revoked one at a time.

Revoking a key deletes its row rather than marking it revoked. Nothing needs a revoked key: no
lookup may find it, no list shows it, and the service keeps no audit of keys (the change feed
records that the retailer's keys changed, which is all the workers need). A row that stays
would be one every read must remember to filter out, for ever; a row that goes cannot be
found by a read that forgot. A rotated key in its grace period does keep its row, with
``expires_at``: every read compares that with the time it is given, and the retailer's next
change of keys deletes the rows past it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, insert, or_, select, update

from cartpredict.storage.base import ApiKey, DuplicateKeyName, KeyAlreadyRotated, NoSuchRetailer
from cartpredict.storage.sql.session import (
    SqlSession,
    lock_retailer,
    record_change,
    retailer_exists,
)
from cartpredict.storage.tables import api_keys

_COLUMNS = (
    api_keys.c.key_id,
    api_keys.c.retailer_id,
    api_keys.c.name,
    api_keys.c.scopes,
    api_keys.c.created_at,
    api_keys.c.expires_at,
)


class KeyRows(SqlSession):
    def add_api_key(self, *, key: ApiKey, key_hash: str, replace: bool = False) -> bool:
        rid = key.retailer_id
        with self._write(rid) as conn:
            if not lock_retailer(conn, rid):
                return False
            if replace:
                conn.execute(delete(api_keys).where(api_keys.c.retailer_id == rid))
            else:
                _drop_expired(conn, rid, key.created_at)
                if _named(conn, rid, key.name):
                    raise DuplicateKeyName(key.name)
            conn.execute(insert(api_keys).values(key_row(key, key_hash)))
            record_change(conn, rid, key.created_at)
        return True

    def rotate_api_key(
        self,
        *,
        retailer_id: str,
        key_id: str,
        new_key_id: str,
        key_hash: str,
        at: datetime,
        expires_at: datetime | None,
    ) -> ApiKey | None:
        with self._write(retailer_id) as conn:
            if not lock_retailer(conn, retailer_id):
                raise NoSuchRetailer(retailer_id)
            _drop_expired(conn, retailer_id, at)
            row = conn.execute(select(*_COLUMNS).where(*_of(retailer_id, key_id))).first()
            if row is None:
                return None
            old = _key(row)
            if old.expires_at is not None:
                raise KeyAlreadyRotated(old.expires_at)
            if expires_at is None or expires_at <= at:
                conn.execute(delete(api_keys).where(*_of(retailer_id, key_id)))
            else:  # before the successor comes in: one key of a name without an expiry
                conn.execute(
                    update(api_keys).where(*_of(retailer_id, key_id)).values(expires_at=expires_at)
                )
            successor = ApiKey(new_key_id, retailer_id, old.name, old.scopes, at)
            conn.execute(insert(api_keys).values(key_row(successor, key_hash)))
            record_change(conn, retailer_id, at)
        return successor

    def revoke_api_key(self, *, retailer_id: str, key_id: str, at: datetime) -> bool:
        with self._write(retailer_id) as conn:
            if not lock_retailer(conn, retailer_id):
                raise NoSuchRetailer(retailer_id)
            _drop_expired(conn, retailer_id, at)
            gone = conn.execute(delete(api_keys).where(*_of(retailer_id, key_id))).rowcount
            if gone:
                record_change(conn, retailer_id, at)
        return bool(gone)

    def api_keys(self, *, retailer_id: str, at: datetime) -> Sequence[ApiKey] | None:
        mine = api_keys.c.retailer_id == retailer_id
        query = select(*_COLUMNS).where(mine, _live(at))
        with self._read(retailer_id) as conn:
            if not retailer_exists(conn, retailer_id):
                return None
            rows = conn.execute(query.order_by(api_keys.c.created_at, api_keys.c.key_id)).all()
        return [_key(row) for row in rows]

    def api_key(self, *, key_hash: str) -> ApiKey | None:
        with self._read() as conn:
            row = conn.execute(select(*_COLUMNS).where(api_keys.c.key_hash == key_hash)).first()
        return _key(row) if row is not None else None

    def key_live(self, *, key_id: str, at: datetime) -> bool:
        query = select(api_keys.c.key_id).where(api_keys.c.key_id == key_id, _live(at))
        with self._read() as conn:
            return conn.execute(query).first() is not None


def key_row(key: ApiKey, key_hash: str) -> dict[str, Any]:
    """The row of a key (also written by ``create_retailer``, for a retailer's first key)."""
    return {
        "key_hash": key_hash,
        "retailer_id": key.retailer_id,
        "created_at": key.created_at,
        "key_id": key.key_id,
        "name": key.name,
        "scopes": ",".join(sorted(key.scopes)),
        "expires_at": key.expires_at,
    }


def _key(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        retailer_id=row.retailer_id,
        name=row.name,
        scopes=frozenset(row.scopes.split(",")),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


def _of(retailer_id: str, key_id: str) -> tuple[ColumnElement[bool], ...]:
    return api_keys.c.retailer_id == retailer_id, api_keys.c.key_id == key_id


def _live(at: datetime) -> ColumnElement[bool]:
    return or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > at)


def _named(conn: Connection, retailer_id: str, name: str) -> bool:
    query = select(api_keys.c.key_id).where(
        api_keys.c.retailer_id == retailer_id,
        api_keys.c.name == name,
        api_keys.c.expires_at.is_(None),
    )
    return conn.execute(query).first() is not None


def _drop_expired(conn: Connection, retailer_id: str, at: datetime) -> None:
    """Delete the retailer's keys whose grace period is over (no read finds them already)."""
    conn.execute(
        delete(api_keys).where(api_keys.c.retailer_id == retailer_id, api_keys.c.expires_at <= at)
    )
