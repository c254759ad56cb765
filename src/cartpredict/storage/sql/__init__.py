"""The SQL store: SQLite (embedded default) and PostgreSQL, through SQLAlchemy Core.

One class per concern, each implementing that concern's interface (``storage/base.py``) over
the shared session handling; ``SqlStore`` is all of them.
"""

from cartpredict.storage.sql.events import EventRows
from cartpredict.storage.sql.feed import FeedRows
from cartpredict.storage.sql.keys import KeyRows
from cartpredict.storage.sql.predictions import PredictionRows
from cartpredict.storage.sql.registry import RegistryRows
from cartpredict.storage.sql.retailers import RetailerRows
from cartpredict.storage.sql.retention import RetentionRows
from cartpredict.storage.sql.session import TENANT_ROLE, SqlSession
from cartpredict.storage.sql.sessions import SessionRows


class SqlStore(
    RetailerRows,
    KeyRows,
    EventRows,
    RegistryRows,
    PredictionRows,
    RetentionRows,
    SessionRows,
    FeedRows,
):
    """Every part of the store, on one database."""


__all__ = ["TENANT_ROLE", "SqlSession", "SqlStore"]
