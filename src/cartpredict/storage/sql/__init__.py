"""The SQL store: SQLite (embedded default) and PostgreSQL, through SQLAlchemy Core.

One class per concern, each implementing that concern's interface (``storage/base.py``) over
the shared session handling; ``SqlStore`` is all of them.
"""

from .events import EventRows
from .feed import FeedRows
from .keys import KeyRows
from .predictions import PredictionRows
from .registry import RegistryRows
from .retailers import RetailerRows
from .retention import RetentionRows
from .session import TENANT_ROLE, SqlSession


class SqlStore(
    RetailerRows, KeyRows, EventRows, RegistryRows, PredictionRows, RetentionRows, FeedRows
):
    """Every part of the store, on one database."""


__all__ = ["TENANT_ROLE", "SqlSession", "SqlStore"]
