"""The SQL store: SQLite (embedded default) and PostgreSQL, through SQLAlchemy Core."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from ..errors import RetailerExists
from . import deadline, roles
from .base import (
    POOLED_SCOPE,
    Change,
    DailyStats,
    EventConflict,
    ModelVersion,
    NoSuchRetailer,
    Promotion,
    Retailer,
    ScoredCart,
    StoredEvent,
)
from .engine import make_engine
from .tables import (
    TENANT_TABLES,
    api_keys,
    changes,
    daily_stats,
    model_log,
    model_versions,
    prediction_counts,
    prediction_log,
    retailers,
    served_models,
)
from .tables import events as events_table

_RETAILER_COLUMNS = (
    "requires_account",
    "payment_options",
    "shipping_speeds",
    "pooled_learning",
    "precision_target",
    "attributes",
)
_IN_CHUNK = 500
TENANT_ROLE = "cartpredict_tenant"  # see migration 0005


class SqlStore:
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
            conn.execute(*_set_config(settings))

    def _scope(self, conn: Connection, tenant: str) -> None:
        """Switch the open transaction to another retailer's scope (writes of several)."""
        if self._row_level_security:
            conn.execute(*_set_config({"role": TENANT_ROLE, "cartpredict.retailer_id": tenant}))

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

    # --- retailers ---------------------------------------------------------------------------

    def create_retailer(self, *, retailer: Retailer, key_hash: str) -> None:
        values = _retailer_values({c: getattr(retailer, c) for c in _RETAILER_COLUMNS})
        try:
            with self._write(retailer.retailer_id) as conn:
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
        with self._read(retailer_id) as conn:
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
        values = _retailer_values(changes)
        with self._write(retailer_id) as conn:
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
        with self._write(retailer_id) as conn:
            if not _lock(conn, retailer_id):
                return False
            for table in TENANT_TABLES:
                conn.execute(delete(table).where(table.c.retailer_id == retailer_id))
            _record_change(conn, retailer_id, at)
        return True

    def list_retailers(self) -> Sequence[Retailer]:
        with self._read() as conn:
            rows = conn.execute(select(retailers).order_by(retailers.c.retailer_id)).all()
        return [_retailer(row) for row in rows]

    # --- events ------------------------------------------------------------------------------

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
            born = _living(conn, {retailer_id}).get(retailer_id)
            if born is None or (incarnation is not None and born != incarnation):
                raise NoSuchRetailer(retailer_id)
            if not rows:
                return 0
            insert_new = (
                _insert(conn, events_table)
                .on_conflict_do_nothing(index_elements=["retailer_id", "event_id"])
                .returning(events_table.c.event_id)
            )
            new: set[str] = set()
            for start in range(0, len(rows), _IN_CHUNK):
                new.update(conn.execute(insert_new, rows[start : start + _IN_CHUNK]).scalars())
            repeated = {r["event_id"]: r for r in rows if r["event_id"] not in new}
            differing = _differing(conn, retailer_id, repeated)
            if differing:
                raise EventConflict(differing)
        return len(new)

    def events(self, *, retailer_id: str) -> Sequence[StoredEvent]:
        with self._read(retailer_id) as conn:
            rows = conn.execute(
                select(events_table)
                .where(events_table.c.retailer_id == retailer_id)
                .order_by(events_table.c.at, events_table.c.event_id)
            ).all()
        return [_event(row) for row in rows]

    # --- model registry ----------------------------------------------------------------------

    def add_model_version(self, *, version: ModelVersion) -> None:
        with self._write(_tenant(version.scope)) as conn:
            conn.execute(
                insert(model_versions).values(
                    version_id=version.version_id,
                    retailer_id=version.scope,
                    created_at=version.created_at,
                    train_start=version.train_start,
                    train_end=version.train_end,
                    n_train=version.n_train,
                    threshold=version.threshold,
                    metrics=dict(version.metrics),
                    model=dict(version.model),
                    profile=dict(version.profile) if version.profile is not None else None,
                )
            )

    def model_version(self, *, scope: str, version_id: str) -> ModelVersion | None:
        with self._read(_tenant(scope)) as conn:
            row = conn.execute(
                select(model_versions).where(
                    model_versions.c.retailer_id == scope,
                    model_versions.c.version_id == version_id,
                )
            ).first()
        return _version(row) if row else None

    def model_versions(self, *, scope: str) -> Sequence[ModelVersion]:
        with self._read(_tenant(scope)) as conn:
            rows = conn.execute(
                select(model_versions)
                .where(model_versions.c.retailer_id == scope)
                .order_by(model_versions.c.created_at.desc(), model_versions.c.version_id.desc())
            ).all()
        return [_version(row) for row in rows]

    def served_version(self, *, scope: str) -> ModelVersion | None:
        with self._read(_tenant(scope)) as conn:
            row = conn.execute(
                select(model_versions)
                .join(
                    served_models,
                    (served_models.c.version_id == model_versions.c.version_id)
                    & (served_models.c.retailer_id == model_versions.c.retailer_id),
                )
                .where(served_models.c.retailer_id == scope)
            ).first()
        return _version(row) if row else None

    def set_served(self, *, scope: str, version_id: str, action: str, at: datetime) -> None:
        with self._write(_tenant(scope)) as conn:
            conn.execute(delete(served_models).where(served_models.c.retailer_id == scope))
            conn.execute(
                insert(served_models).values(retailer_id=scope, version_id=version_id, since=at)
            )
            conn.execute(
                insert(model_log).values(
                    retailer_id=scope, version_id=version_id, action=action, at=at
                )
            )
            _record_served_change(conn, scope, at)

    def retire_served(self, *, scope: str, at: datetime) -> bool:
        with self._write(_tenant(scope)) as conn:
            version_id = conn.execute(
                select(served_models.c.version_id).where(served_models.c.retailer_id == scope)
            ).scalar()
            if version_id is None:
                return False
            conn.execute(delete(served_models).where(served_models.c.retailer_id == scope))
            conn.execute(
                insert(model_log).values(
                    retailer_id=scope, version_id=version_id, action="retire", at=at
                )
            )
            _record_change(conn, scope, at)
        return True

    def promotions(self, *, scope: str) -> Sequence[Promotion]:
        with self._read(_tenant(scope)) as conn:
            rows = conn.execute(
                select(model_log)
                .where(model_log.c.retailer_id == scope)
                .order_by(model_log.c.id.desc())
            ).all()
        return [Promotion(version_id=r.version_id, action=r.action, at=r.at) for r in rows]

    # --- predictions and daily aggregates ----------------------------------------------------

    def add_scored_carts(self, *, carts: Sequence[ScoredCart], history: bool = False) -> None:
        """One executemany at the driver per retailer, each in that retailer's scope: a busy
        server logs thousands of rows a second, and SQLAlchemy's per-row processing would more
        than double the cost. Rows of a retailer deleted meanwhile (or deleted and created
        again since) are dropped: see ``_living``."""
        if not carts:
            return
        sqlite = self._engine.dialect.name == "sqlite"
        mark = "?" if self._engine.dialect.paramstyle == "qmark" else "%s"
        statement = f"INSERT INTO prediction_log ({_LOG_COLUMNS}) VALUES ({', '.join([mark] * 10)})"
        by_retailer: dict[str, list[ScoredCart]] = {}
        for cart in carts:
            by_retailer.setdefault(cart.retailer_id, []).append(cart)
        with self._write() as conn:
            for retailer_id, mine in sorted(by_retailer.items()):
                self._scope(conn, retailer_id)
                born = _living(conn, {retailer_id}).get(retailer_id)
                if born is None:
                    continue
                rows = [
                    (c.retailer_id, _sqlite_time(c.at) if sqlite else c.at, c.cart_id,
                     c.model_version, c.p_abandoned, c.abandoned, c.cart_value, c.item_count,
                     str(c.device_type), str(c.shipping_speed))
                    for c in mine
                    if history or born <= c.at
                ]  # fmt: skip
                if rows:
                    conn.exec_driver_sql(statement, rows)

    def scored_carts(
        self, *, retailer_id: str, start: datetime, end: datetime
    ) -> Sequence[ScoredCart]:
        log = prediction_log.c
        with self._read(retailer_id) as conn:
            rows = conn.execute(
                select(prediction_log)
                .where(log.retailer_id == retailer_id, log.at >= start, log.at < end)
                .order_by(log.at, log.id)
            ).all()
        return [
            ScoredCart(
                retailer_id=r.retailer_id,
                at=r.at,
                cart_id=r.cart_id,
                model_version=r.model_version,
                p_abandoned=r.p_abandoned,
                abandoned=bool(r.abandoned),
                cart_value=r.cart_value,
                item_count=r.item_count,
                device_type=r.device_type,
                shipping_speed=r.shipping_speed,
            )
            for r in rows
        ]

    def add_prediction_counts(
        self, *, counts: Sequence[tuple[str, date, datetime, Mapping[str, Any]]], at: datetime
    ) -> None:
        if not counts:
            return
        with self._write() as conn:
            for retailer_id in sorted({r for r, _, _, _ in counts}):
                self._scope(conn, retailer_id)
                born = _living(conn, {retailer_id}).get(retailer_id)
                rows = [
                    {"retailer_id": r, "day": d, "at": at, "figures": dict(f)}
                    for r, d, first, f in counts
                    if r == retailer_id and born is not None and born <= first
                ]
                if rows:
                    conn.execute(insert(prediction_counts), rows)

    def prediction_counts(
        self, *, retailer_id: str, start: date, end: date
    ) -> Mapping[date, Sequence[Mapping[str, Any]]]:
        c = prediction_counts.c
        with self._read(retailer_id) as conn:
            rows = conn.execute(
                select(c.day, c.figures)
                .where(c.retailer_id == retailer_id, c.day >= start, c.day <= end)
                .order_by(c.id)
            ).all()
        by_day: dict[date, list[Mapping[str, Any]]] = {}
        for row in rows:
            by_day.setdefault(row.day, []).append(row.figures)
        return by_day

    def first_scored(self) -> Mapping[str, date]:
        log, counted = prediction_log.c, prediction_counts.c
        with self._read() as conn:
            logged = conn.execute(
                select(log.retailer_id, func.min(log.at)).group_by(log.retailer_id)
            ).all()
            days = conn.execute(
                select(counted.retailer_id, func.min(counted.day)).group_by(counted.retailer_id)
            ).all()
        first: dict[str, date] = {r[0]: _utc(r[1]).date() for r in logged}
        for retailer_id, day in days:
            day = date.fromisoformat(day) if isinstance(day, str) else day
            first[retailer_id] = min(day, first.get(retailer_id, day))
        return first

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

    def put_daily_stats(self, *, retailer_id: str, days: Sequence[DailyStats]) -> None:
        if not days:
            return
        with self._write(retailer_id) as conn:
            conn.execute(
                delete(daily_stats).where(
                    daily_stats.c.retailer_id == retailer_id,
                    daily_stats.c.day.in_([d.day for d in days]),
                )
            )
            conn.execute(
                insert(daily_stats),
                [
                    {
                        "retailer_id": retailer_id,
                        "day": d.day,
                        "computed_at": d.computed_at,
                        "final": d.final,
                        "figures": dict(d.figures),
                    }
                    for d in days
                ],
            )

    def daily_stats(self, *, retailer_id: str, start: date, end: date) -> Sequence[DailyStats]:
        d = daily_stats.c
        with self._read(retailer_id) as conn:
            rows = conn.execute(
                select(daily_stats)
                .where(d.retailer_id == retailer_id, d.day >= start, d.day <= end)
                .order_by(d.day)
            ).all()
        return [
            DailyStats(
                retailer_id=r.retailer_id,
                day=r.day,
                computed_at=r.computed_at,
                final=bool(r.final),
                figures=r.figures,
            )
            for r in rows
        ]

    # --- API keys ----------------------------------------------------------------------------

    def add_api_key(self, *, retailer_id: str, key_hash: str, created_at: datetime) -> bool:
        with self._write(retailer_id) as conn:
            if not _exists(conn, retailer_id):
                return False
            conn.execute(
                insert(api_keys).values(
                    key_hash=key_hash, retailer_id=retailer_id, created_at=created_at
                )
            )
            _record_change(conn, retailer_id, created_at)
        return True

    def replace_api_keys(self, *, retailer_id: str, key_hash: str, at: datetime) -> bool:
        """Revoke every key of the retailer and add this one, in one transaction that holds the
        retailer's row: concurrent replacements run one after the other, and the last one's
        key is the only one left."""
        with self._write(retailer_id) as conn:
            if not _lock(conn, retailer_id):
                return False
            conn.execute(delete(api_keys).where(api_keys.c.retailer_id == retailer_id))
            conn.execute(
                insert(api_keys).values(key_hash=key_hash, retailer_id=retailer_id, created_at=at)
            )
            _record_change(conn, retailer_id, at)
        return True

    def retailer_for_key(self, *, key_hash: str) -> str | None:
        with self._read() as conn:
            return conn.execute(
                select(api_keys.c.retailer_id).where(api_keys.c.key_hash == key_hash)
            ).scalar()

    # --- retention ---------------------------------------------------------------------------

    def purge(
        self, *, raw_before: datetime, aggregates_before: datetime, at: datetime, dry_run: bool
    ) -> dict[str, int]:
        old_events = events_table.c.received_at < raw_before
        old_versions = select(model_versions.c.version_id).where(
            model_versions.c.created_at < aggregates_before
        )
        expiring = served_models.c.version_id.in_(old_versions)
        old_log = model_log.c.at < aggregates_before
        old_predictions = prediction_log.c.at < raw_before
        old_counts = prediction_counts.c.at < raw_before
        old_days = daily_stats.c.day < aggregates_before.astimezone(UTC).date()
        with self._write() as conn:
            counts = {
                "events": _count(conn, events_table, old_events),
                "prediction_log": _count(conn, prediction_log, old_predictions),
                "prediction_counts": _count(conn, prediction_counts, old_counts),
                "daily_stats": _count(conn, daily_stats, old_days),
                "model_versions": _count(conn, model_versions,
                                         model_versions.c.created_at < aggregates_before),
                "served_models": _count(conn, served_models, expiring),
                "model_log": _count(conn, model_log, old_log),
            }  # fmt: skip
            if dry_run:
                return counts
            served = select(served_models.c.retailer_id, served_models.c.version_id)
            expired = conn.execute(served.where(expiring)).all()
            conn.execute(delete(events_table).where(old_events))
            conn.execute(delete(prediction_log).where(old_predictions))
            conn.execute(delete(prediction_counts).where(old_counts))
            conn.execute(delete(daily_stats).where(old_days))
            conn.execute(delete(model_log).where(old_log))
            for scope, version_id in expired:  # stops serving: the pooled model or the baseline
                conn.execute(delete(served_models).where(served_models.c.retailer_id == scope))
                conn.execute(insert(model_log).values(retailer_id=scope, version_id=version_id,
                                                      action="expire", at=at))  # fmt: skip
                _record_served_change(conn, scope, at)
            conn.execute(
                delete(model_versions).where(model_versions.c.created_at < aggregates_before)
            )
        return counts

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


_LOG_COLUMNS = (
    "retailer_id, at, cart_id, model_version, p_abandoned, abandoned, cart_value, item_count, "
    "device_type, shipping_speed"
)


def _sqlite_time(moment: datetime) -> str:
    """What SQLAlchemy's SQLite DateTime stores for a UTC time (``UTCDateTime`` stores UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _living(conn: Connection, retailer_ids: set[str]) -> dict[str, datetime]:
    """When each of these retailers was created, for those that exist. On PostgreSQL their
    rows stay locked (FOR SHARE) until the transaction ends, so a deletion waits for what is
    being written and then erases it too; SQLite has one writer at a time anyway."""
    born: dict[str, datetime] = {}
    ids = sorted(retailer_ids)
    for start in range(0, len(ids), _IN_CHUNK):
        query = (
            select(retailers.c.retailer_id, retailers.c.created_at)
            .where(retailers.c.retailer_id.in_(ids[start : start + _IN_CHUNK]))
            .with_for_update(read=True)
        )
        born.update((r.retailer_id, r.created_at) for r in conn.execute(query))
    return born


def _insert(conn: Connection, table: Any) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (both SQLite and PostgreSQL do)."""
    if conn.dialect.name == "postgresql":
        return postgresql_insert(table)
    return sqlite_insert(table)


_EVENT_FIELDS = (
    "type", "cart_id", "at", "cart_value", "item_count", "device_type", "shipping_speed",
    "attributes",
)  # fmt: skip


def _differing(
    conn: Connection, retailer_id: str, rows: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """The ids of these events that are stored already with another payload."""
    differing: list[str] = []
    ids = sorted(rows)
    for start in range(0, len(ids), _IN_CHUNK):
        stored = conn.execute(
            select(events_table).where(
                events_table.c.retailer_id == retailer_id,
                events_table.c.event_id.in_(ids[start : start + _IN_CHUNK]),
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


def _set_config(settings: Mapping[str, str]) -> tuple[Any, dict[str, str]]:
    """``SELECT set_config(name, value, true), ...``: settings local to the transaction."""
    names = list(settings)
    calls = ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(len(names)))
    params = {f"n{i}": n for i, n in enumerate(names)} | {
        f"v{i}": settings[n] for i, n in enumerate(names)
    }
    return text(f"SELECT {calls}"), params


def _lock(conn: Connection, retailer_id: str) -> bool:
    """Hold the retailer's row until the transaction ends (writers of its data wait); False
    when there is none."""
    mine = retailers.c.retailer_id == retailer_id
    return (
        conn.execute(select(retailers.c.retailer_id).where(mine).with_for_update()).first()
        is not None
    )


def _tenant(scope: str) -> str | None:
    """The retailer a registry scope belongs to; the pooled model belongs to none."""
    return None if scope == POOLED_SCOPE else scope


def _exists(conn: Connection, retailer_id: str) -> bool:
    query = select(retailers.c.retailer_id).where(retailers.c.retailer_id == retailer_id)
    return conn.execute(query).first() is not None


def _record_change(conn: Connection, retailer_id: str, at: datetime) -> None:
    conn.execute(insert(changes).values(retailer_id=retailer_id, changed_at=at))


def _record_served_change(conn: Connection, scope: str, at: datetime) -> None:
    """What a scope serves changed: that retailer, or every opted-in one for the pooled model."""
    if scope == POOLED_SCOPE:
        pooled = select(retailers.c.retailer_id).where(retailers.c.pooled_learning)
        for retailer_id in conn.execute(pooled).scalars().all():
            _record_change(conn, retailer_id, at)
    else:
        _record_change(conn, scope, at)


def _utc(value: datetime) -> datetime:
    """Aggregates (min, max) bypass the column type: SQLite returns naive UTC, or text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _count(conn: Connection, table: Any, where: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())


def _retailer_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Record values as the columns hold them (JSON lists; attributes as name/kind objects)."""
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    if "attributes" in out:
        out["attributes"] = [
            {"name": a["name"], "kind": a["kind"]}
            if isinstance(a, Mapping)
            else {"name": a[0], "kind": a[1]}
            for a in out["attributes"]
        ]
    return out


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
    )


def _version(row: Row[Any]) -> ModelVersion:
    return ModelVersion(
        version_id=row.version_id,
        scope=row.retailer_id,
        created_at=row.created_at,
        train_start=row.train_start,
        train_end=row.train_end,
        n_train=row.n_train,
        threshold=row.threshold,
        metrics=row.metrics,
        model=row.model,
        profile=row.profile,
    )


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
        attributes=tuple((a["name"], a["kind"]) for a in row.attributes or ()),
    )
