"""The SQL store: SQLite (embedded default) and PostgreSQL, through SQLAlchemy Core."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from ..errors import RetailerExists
from .base import Change, Retailer
from .engine import make_engine
from .tables import TENANT_TABLES, api_keys, changes, retailers

_RETAILER_COLUMNS = (
    "requires_account",
    "payment_options",
    "shipping_speeds",
    "pooled_learning",
    "precision_target",
)


class SqlStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = make_engine(url)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.info["write"] = True
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info.pop("write", None)

    def ping(self) -> None:
        with self._read() as conn:
            conn.exec_driver_sql("SELECT 1")

    def schema_revision(self) -> str | None:
        try:
            with self._read() as conn:
                return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except (OperationalError, ProgrammingError):
            return None  # no alembic_version table: never migrated

    # --- retailers ---------------------------------------------------------------------------

    def create_retailer(self, *, retailer: Retailer, key_hash: str) -> None:
        values = {c: getattr(retailer, c) for c in _RETAILER_COLUMNS}
        values["payment_options"] = list(retailer.payment_options)
        values["shipping_speeds"] = list(retailer.shipping_speeds)
        try:
            with self._write() as conn:
                conn.execute(
                    insert(retailers).values(
                        retailer_id=retailer.retailer_id,
                        created_at=retailer.created_at,
                        updated_at=retailer.last_updated,
                        **values,
                    )
                )
                conn.execute(
                    insert(api_keys).values(
                        key_hash=key_hash,
                        retailer_id=retailer.retailer_id,
                        created_at=retailer.created_at,
                    )
                )
                _record_change(conn, retailer.retailer_id, retailer.created_at)
        except IntegrityError:
            raise RetailerExists() from None

    def get_retailer(self, *, retailer_id: str) -> Retailer | None:
        with self._read() as conn:
            row = conn.execute(
                select(retailers).where(retailers.c.retailer_id == retailer_id)
            ).first()
        return _retailer(row) if row else None

    def update_retailer(
        self, *, retailer_id: str, changes: Mapping[str, Any], updated_at: datetime
    ) -> Retailer | None:
        unknown = set(changes) - set(_RETAILER_COLUMNS)
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        values = {k: list(v) if isinstance(v, tuple | list) else v for k, v in changes.items()}
        with self._write() as conn:
            row = conn.execute(
                update(retailers)
                .where(retailers.c.retailer_id == retailer_id)
                .values(updated_at=updated_at, **values)
                .returning(*retailers.c)
            ).first()
            if row is None:
                return None
            _record_change(conn, retailer_id, updated_at)
        return _retailer(row)

    def delete_retailer(self, *, retailer_id: str, at: datetime) -> bool:
        with self._write() as conn:
            if not _exists(conn, retailer_id):
                return False
            for table in TENANT_TABLES:
                conn.execute(delete(table).where(table.c.retailer_id == retailer_id))
            _record_change(conn, retailer_id, at)
        return True

    # --- API keys ----------------------------------------------------------------------------

    def add_api_key(self, *, retailer_id: str, key_hash: str, created_at: datetime) -> bool:
        with self._write() as conn:
            if not _exists(conn, retailer_id):
                return False
            conn.execute(
                insert(api_keys).values(
                    key_hash=key_hash, retailer_id=retailer_id, created_at=created_at
                )
            )
            _record_change(conn, retailer_id, created_at)
        return True

    def revoke_api_keys(self, *, retailer_id: str, at: datetime) -> int:
        with self._write() as conn:
            removed = conn.execute(
                delete(api_keys).where(api_keys.c.retailer_id == retailer_id)
            ).rowcount
            if removed:
                _record_change(conn, retailer_id, at)
        return int(removed)

    def retailer_for_key(self, *, key_hash: str) -> str | None:
        with self._read() as conn:
            return conn.execute(
                select(api_keys.c.retailer_id).where(api_keys.c.key_hash == key_hash)
            ).scalar()

    # --- change feed -------------------------------------------------------------------------

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


def _exists(conn: Connection, retailer_id: str) -> bool:
    query = select(retailers.c.retailer_id).where(retailers.c.retailer_id == retailer_id)
    return conn.execute(query).first() is not None


def _record_change(conn: Connection, retailer_id: str, at: datetime) -> None:
    conn.execute(insert(changes).values(retailer_id=retailer_id, changed_at=at))


def _retailer(row: Row[Any]) -> Retailer:
    return Retailer(
        retailer_id=row.retailer_id,
        requires_account=bool(row.requires_account),
        payment_options=tuple(row.payment_options),
        shipping_speeds=tuple(row.shipping_speeds),
        pooled_learning=bool(row.pooled_learning),
        precision_target=float(row.precision_target),
        created_at=row.created_at,
        last_updated=row.updated_at,
    )
