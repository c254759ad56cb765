"""Runtime settings, read from ``CARTPREDICT_*`` environment variables.

A ``Settings`` object is built by whoever starts the service (``create_app``, the CLI),
never at import time, so tests can pass their own.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./cartpredict.db"
MAX_RAW_RETENTION_DAYS = 14  # the privacy promise: raw, row-level data at most 14 days
MAX_AGGREGATE_RETENTION_DAYS = 90  # aggregates (model versions, daily stats) at most 90 days
RATE_LIMIT_PER_S = 5000.0  # per retailer: far above a retailer's traffic and the benchmark's
RATE_LIMIT_BURST = 10000
MIN_OPERATOR_KEY_LENGTH = 32  # the operator key administers every tenant: no guessable one


class Settings(BaseSettings):
    # An error never echoes the value it refuses: it may be a key or a URL with a password.
    model_config = SettingsConfigDict(
        env_prefix="CARTPREDICT_", extra="forbid", hide_input_in_errors=True
    )

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
    raw_retention_days: int = Field(
        MAX_RAW_RETENTION_DAYS,
        ge=1,
        description="Days raw, row-level data (events) is kept after it was received",
    )
    aggregate_retention_days: int = Field(
        MAX_AGGREGATE_RETENTION_DAYS,
        ge=1,
        description="Days aggregates (model versions and their history) are kept",
    )
    purge_interval_s: float = Field(
        3600.0, gt=0, description="How often a running server purges what has expired"
    )
    store_timeout_s: float = Field(
        10.0,
        gt=0,
        description="How long a request waits for the store before answering 503 (a store "
        "that stops answering, e.g. frozen or cut off, must not hang requests)",
    )
    stats_interval_s: float = Field(
        300.0, gt=0, description="How often a running server updates the daily stats"
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="How long a client has to send a request's head (request line and "
        "headers), from its connection or its first byte; 408 and the connection closed after",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="How long a client has to send a request's body once its head is in; 408 "
        "and the connection closed after",
    )
    rate_limit_per_s: float = Field(
        RATE_LIMIT_PER_S,
        ge=0,
        description="Requests a second each retailer's key may make (all its keys together; "
        "the operator key is exempt); 429 with Retry-After beyond; 0 turns the limit off",
    )
    rate_limit_burst: int = Field(
        RATE_LIMIT_BURST,
        ge=1,
        description="Requests a retailer may make at once above its rate (the bucket's size)",
    )

    @field_validator("operator_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < MIN_OPERATOR_KEY_LENGTH:
            raise ValueError(
                f"CARTPREDICT_OPERATOR_KEY must be at least {MIN_OPERATOR_KEY_LENGTH} characters "
                f"(got {len(key.get_secret_value())}): generate one with "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return key

    @field_validator("raw_retention_days")
    @classmethod
    def _raw_at_most(cls, days: int) -> int:
        return _at_most(days, MAX_RAW_RETENTION_DAYS, "raw data")

    @field_validator("aggregate_retention_days")
    @classmethod
    def _aggregates_at_most(cls, days: int) -> int:
        return _at_most(days, MAX_AGGREGATE_RETENTION_DAYS, "aggregates")


def _at_most(days: int, limit: int, what: str) -> int:
    if days > limit:
        raise ValueError(
            f"retention of {what} may be lowered, never raised past {limit} days (got {days})"
        )
    return days
