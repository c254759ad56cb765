"""Runtime settings, read from ``CARTPREDICT_*`` environment variables.

A ``Settings`` object is built by whoever starts the service (``create_app``, the CLI),
never at import time, so tests can pass their own.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./cartpredict.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARTPREDICT_", extra="forbid")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user@host/db",
    )
    operator_key: SecretStr | None = Field(
        None, description="Key that administers retailers; unset disables operator calls"
    )
    redis_url: str | None = Field(
        None, description="redis://host:port/db; when set, changes reach other workers at once"
    )
    redis_channel: str = Field("cartpredict:changes", description="Redis pub/sub channel")
    sync_interval_s: float = Field(
        0.5,
        gt=0,
        le=1.5,
        description="How often each worker polls the store for changes made elsewhere",
    )
    max_body_bytes: int = Field(
        4_194_304, gt=0, description="Largest request body accepted (413 beyond)"
    )
