"""SQLAlchemy engines with the per-backend settings that make them behave."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cartpredict.storage import deadline

CONNECT_TIMEOUT_S = 5
BUSY_TIMEOUT_MS = 10_000  # SQLite: how long a writer waits for another's lock, outside requests


def unavailable(exc: BaseException) -> bool:
    """Whether a database error means the store did not answer, so the same call may
    succeed later: the server refused or dropped the connection (OperationalError,
    InterfaceError), a connection died mid-statement (``connection_invalidated``), or every
    pooled connection stayed busy (the pool's TimeoutError). Other errors are bugs."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def describe(exc: BaseException) -> str:
    """One line for a log: the error's type and, for a database error, the driver's first
    line only; never the statement or its parameters, which may carry request data."""
    if isinstance(exc, DBAPIError):
        reason = str(exc.orig).strip().splitlines()
        return f"{type(exc).__name__}: {reason[0] if reason else type(exc.orig).__name__}"
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    connect_args = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S  # an unreachable server fails fast
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args=connect_args,
        hide_parameters=True,  # an error's text never carries request data into a log
    )


def _sqlite_engine(url: str) -> Engine:
    """One writer at a time (BEGIN IMMEDIATE for writes), WAL so readers never wait."""
    engine = create_engine(url, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.info.get("write", False)
        if immediate:  # only a writer waits for the lock: at most until the request's deadline
            limit = deadline.current()
            busy = BUSY_TIMEOUT_MS if limit is None else limit.remaining_ms()
            if connection.info.get("busy_timeout_ms") != busy:
                connection.exec_driver_sql(f"PRAGMA busy_timeout = {busy}")
                connection.info["busy_timeout_ms"] = busy
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
