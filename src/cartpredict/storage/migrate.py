"""Bring a database to the schema this code expects (Alembic, run programmatically)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import OperationalError, ProgrammingError

from cartpredict.storage.engine import make_engine
from cartpredict.storage.tables import SCHEMA_REVISION

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
_PG_MIGRATION_LOCK = 0x63617274  # "cart": one migrator at a time per PostgreSQL database


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def upgrade(url: str, revision: str = "head") -> None:
    engine = make_engine(url)
    try:
        if revision == "head" and _current(engine) == SCHEMA_REVISION:
            return  # up to date: no need to load Alembic (it is most of a server's start-up)
        from alembic import command

        with engine.connect() as conn:
            conn.info["write"] = True
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
                cfg = _config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def _current(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except (OperationalError, ProgrammingError):
        return None
