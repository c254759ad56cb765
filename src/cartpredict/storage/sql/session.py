"""The SQL store's session handling, shared by every part of it: connections, transactions
bound by a request's deadline, the tenant scope (row-level security on PostgreSQL), and the
helpers several parts use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError, ProgrammingError

from cartpredict.storage import deadline, roles
from cartpredict.storage.base import POOLED_SCOPE
from cartpredict.storage.engine import make_engine
from cartpredict.storage.tables import changes, retailers

IN_CHUNK = 500
TENANT_ROLE = "cartpredict_tenant"  # see migration 0005


class SqlSession:
    """Connections to one database (SQLite or PostgreSQL, by URL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = make_engine(url)
        self._row_level_security = self._engine.dialect.name == "postgresql"

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _read(self, tenant: str | None = None) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            self._begin(conn, tenant)
            yield conn

    @contextmanager
    def _write(self, tenant: str | None = None) -> Iterator[Connection]:
        """One transaction, committed only while the request's deadline allows (see
        ``deadline.py``); rolled back on any error."""
        with self._engine.connect() as conn:
            info = conn.info  # reachable even once a lost connection has been invalidated
            info["write"] = True
            try:
                transaction = conn.begin()
                try:
                    self._begin(conn, tenant)
                    yield conn
                    limit = deadline.current()
                    with limit.commit() if limit is not None else nullcontext():
                        transaction.commit()
                except BaseException:
                    with suppress(Exception):  # the error that got us here is the one to report
                        transaction.rollback()
                    raise
            finally:
                info.pop("write", None)

    def _begin(self, conn: Connection, tenant: str | None) -> None:
        """On PostgreSQL, for the rest of the transaction: the tenant role, whose row-level
        policies show this retailer's rows and nothing else, whatever a query's WHERE says; and
        the request's deadline as statement and lock timeouts, so the database gives up before
        the request does. One round trip for both; none when neither applies."""
        if not self._row_level_security:
            return  # SQLite: the deadline bounds the busy wait (engine.py)
        limit = deadline.current()
        settings: dict[str, str] = {}
        if tenant is not None:
            settings |= {"role": TENANT_ROLE, "cartpredict.retailer_id": tenant}
        if limit is not None:
            ms = str(limit.remaining_ms())
            settings |= {"statement_timeout": ms, "lock_timeout": ms}
        if settings:
            conn.execute(*set_config(settings))

    def _scope(self, conn: Connection, tenant: str) -> None:
        """Switch the open transaction to another retailer's scope (writes of several)."""
        if self._row_level_security:
            conn.execute(*set_config({"role": TENANT_ROLE, "cartpredict.retailer_id": tenant}))

    @contextmanager
    def tenant_session(self, retailer_id: str) -> Iterator[Connection]:
        """A connection scoped to one retailer, as every tenant query of this store is (on
        PostgreSQL; SQLite has no row-level security). Rolled back unless committed."""
        with self._read(retailer_id) as conn:
            yield conn

    def privilege_problems(self) -> list[str]:
        """Why row-level security would not hold for the role this store logs in as (on
        PostgreSQL: a superuser, BYPASSRLS, or the tables' owner); empty when it holds."""
        if not self._row_level_security:
            return []
        with self._read() as conn:
            return roles.attributes(conn).problems()

    def ping(self) -> None:
        with self._read() as conn:
            conn.exec_driver_sql("SELECT 1")

    def schema_revision(self) -> str | None:
        try:
            with self._read() as conn:
                return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except (OperationalError, ProgrammingError):
            return None  # no alembic_version table: never migrated


def set_config(settings: Mapping[str, str]) -> tuple[Any, dict[str, str]]:
    """``SELECT set_config(name, value, true), ...``: settings local to the transaction."""
    names = list(settings)
    calls = ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(len(names)))
    params = {f"n{i}": n for i, n in enumerate(names)} | {
        f"v{i}": settings[n] for i, n in enumerate(names)
    }
    return text(f"SELECT {calls}"), params


def dialect_insert(conn: Connection, table: Any) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (both SQLite and PostgreSQL do)."""
    if conn.dialect.name == "postgresql":
        return postgresql_insert(table)
    return sqlite_insert(table)


def tenant_of(scope: str) -> str | None:
    """The retailer a registry scope belongs to; the pooled model belongs to none."""
    return None if scope == POOLED_SCOPE else scope


def lock_retailer(conn: Connection, retailer_id: str) -> bool:
    """Hold the retailer's row until the transaction ends (writers of its data wait); False
    when there is none."""
    mine = retailers.c.retailer_id == retailer_id
    return (
        conn.execute(select(retailers.c.retailer_id).where(mine).with_for_update()).first()
        is not None
    )


def retailer_exists(conn: Connection, retailer_id: str) -> bool:
    query = select(retailers.c.retailer_id).where(retailers.c.retailer_id == retailer_id)
    return conn.execute(query).first() is not None


def living(conn: Connection, retailer_ids: set[str]) -> dict[str, datetime]:
    """When each of these retailers was created, for those that exist. On PostgreSQL their
    rows stay locked (FOR SHARE) until the transaction ends, so a deletion waits for what is
    being written and then erases it too; SQLite has one writer at a time anyway."""
    born: dict[str, datetime] = {}
    ids = sorted(retailer_ids)
    for start in range(0, len(ids), IN_CHUNK):
        query = (
            select(retailers.c.retailer_id, retailers.c.created_at)
            .where(retailers.c.retailer_id.in_(ids[start : start + IN_CHUNK]))
            .with_for_update(read=True)
        )
        born.update((r.retailer_id, r.created_at) for r in conn.execute(query))
    return born


def record_change(conn: Connection, retailer_id: str, at: datetime) -> None:
    conn.execute(insert(changes).values(retailer_id=retailer_id, changed_at=at))


def record_served_change(conn: Connection, scope: str, at: datetime) -> None:
    """What a scope serves changed: that retailer, or every opted-in one for the pooled model."""
    if scope == POOLED_SCOPE:
        pooled = select(retailers.c.retailer_id).where(retailers.c.pooled_learning)
        for retailer_id in conn.execute(pooled).scalars().all():
            record_change(conn, retailer_id, at)
    else:
        record_change(conn, scope, at)


def utc(value: datetime) -> datetime:
    """Aggregates (min, max) bypass the column type: SQLite returns naive UTC, or text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def count_rows(conn: Connection, table: Any, where: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())
