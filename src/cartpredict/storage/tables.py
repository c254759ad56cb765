"""The relational schema (SQLAlchemy Core). Alembic migrations create it; keep them in step."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    text,
)

from cartpredict.core.scopes import KEY_ID_LENGTH
from cartpredict.storage.base import ABANDONMENT  # the registry kinds (base.py)

# The Alembic revision this code expects; a test keeps it equal to the migrations' head.
SCHEMA_REVISION = "0015"
SPEED_LENGTH = 32  # a shipping speed is a lower-case identifier of up to 32 characters

ID_LENGTH = 64


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()


def _retailer_key(table: str) -> ForeignKey:
    """A retailer's row: it can only be written while the retailer exists, and goes with it."""
    return ForeignKey("retailers.retailer_id", ondelete="CASCADE", name=f"fk_{table}_retailer")


retailers = Table(
    "retailers",
    metadata,
    Column("retailer_id", String(ID_LENGTH), primary_key=True),
    Column("requires_account", Boolean, nullable=False),
    Column("payment_options", JSON, nullable=False),
    Column("shipping_speeds", JSON, nullable=False),
    Column("pooled_learning", Boolean, nullable=False),
    Column("precision_target", Float, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("attributes", JSON, nullable=False, default=list),
    Column("shipping_days", JSON, nullable=False, default=dict, server_default=text("'{}'")),
    Column("currency", String(3), nullable=False, server_default=text("'USD'")),
    Column("baseline_threshold", Float, nullable=False, server_default=text("20.0")),
    Column("typical_cart_value", Float, nullable=False, server_default=text("60.0")),
    Column("recovery_policy", JSON, nullable=True),  # None: the default policy
    Column("policy_version", Integer, nullable=False, server_default=text("1")),
    Column("assignment_salt", String(64), nullable=False, server_default=text("''")),
)

# The budget's least expected gain (``max_action_share``), from the last 7 days of decisions:
# an aggregate of the retailer's own decisions, recomputed at each stats rollup.
budget_cutoffs = Table(
    "budget_cutoffs",
    metadata,
    Column("retailer_id", String(ID_LENGTH), _retailer_key("budget_cutoffs"), primary_key=True),
    Column("policy_version", Integer, nullable=False),
    Column("cutoff", Float, nullable=False),
    Column("computed_at", UTCDateTime, nullable=False),
)

# Every recovery policy a retailer has had (configuration: kept while the retailer exists), so
# that an exposure event can name an action of a policy in force in the last 30 days.
policy_versions = Table(
    "policy_versions",
    metadata,
    Column("retailer_id", String(ID_LENGTH), _retailer_key("policy_versions"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("policy", JSON, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# A key: the hash of its secret, its public id, name and scopes ("predict,read": a sorted,
# comma-separated list of core.scopes names), and, once rotated, the end of its grace period.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column(
        "retailer_id",
        String(ID_LENGTH),
        ForeignKey("retailers.retailer_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", UTCDateTime, nullable=False),
    Column("key_id", String(KEY_ID_LENGTH), nullable=False),
    Column("name", String(32), nullable=False),
    Column("scopes", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Index("ux_api_keys_key_id", "key_id", unique=True),
    # one key of a name per retailer, but for rotated keys in their grace period
    Index("ux_api_keys_name", "retailer_id", "name", unique=True,
          sqlite_where=text("expires_at IS NULL"), postgresql_where=text("expires_at IS NULL")),
)  # fmt: skip

# Who changed a retailer's settings, and when: kept, like its policy versions, while the
# retailer exists. ``key_id`` NULL: the operator.
settings_changes = Table(
    "settings_changes",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("retailer_id", String(ID_LENGTH), _retailer_key("settings_changes"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("key_id", String(KEY_ID_LENGTH), nullable=True),
    Column("key_name", String(32), nullable=True),
    Column("fields", JSON, nullable=False),
    Index("ix_settings_changes_retailer_at", "retailer_id", "at"),
)

# Dashboard sessions (``serving/sessions.py``): the SHA-256 of each session's secret, its
# retailer (NULL: the operator's), the key it was opened with, and when it ends.
app_sessions = Table(
    "app_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column(
        "retailer_id", String(ID_LENGTH), _retailer_key("app_sessions"), nullable=True, index=True
    ),
    Column("key_id", String(KEY_ID_LENGTH), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

changes = Table(
    "changes",
    metadata,
    Column(
        "seq",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("retailer_id", String(ID_LENGTH), nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("retailer_id", String(ID_LENGTH), _retailer_key("events"), primary_key=True),
    Column("event_id", String(128), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("cart_id", String(128), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("cart_value", Float),
    Column("item_count", Integer),
    Column("device_type", String(16)),
    Column("shipping_speed", String(SPEED_LENGTH)),
    Column("attributes", JSON),
    # An "action" event (exposure): the action, the cart's group, whether it was delivered.
    Column("action", String(32)),
    Column("arm", String(16)),
    Column("delivered", Boolean),
    Index("ix_events_retailer_at", "retailer_id", "at"),
    Index("ix_events_received_at", "received_at"),  # retention purges by time of receipt
)

# Model registry: retailer_id is the scope, a retailer's id or "@pooled".
model_versions = Table(
    "model_versions",
    metadata,
    Column("version_id", String(64), primary_key=True),
    Column("retailer_id", String(ID_LENGTH), nullable=False, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("train_start", UTCDateTime, nullable=False),
    Column("train_end", UTCDateTime, nullable=False),
    Column("n_train", Integer, nullable=False),
    Column("threshold", Float),
    Column("metrics", JSON, nullable=False),
    Column("model", JSON, nullable=False),
    Column("profile", JSON),  # histograms of the training carts, for drift (stats.py)
    Column("kind", String(16), nullable=False, server_default=ABANDONMENT),
)

served_models = Table(
    "served_models",
    metadata,
    Column("retailer_id", String(ID_LENGTH), primary_key=True),
    Column("kind", String(16), primary_key=True, server_default=ABANDONMENT),
    Column("version_id", String(64), nullable=False),
    Column("since", UTCDateTime, nullable=False),
)

model_log = Table(
    "model_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("retailer_id", String(ID_LENGTH), nullable=False, index=True),
    Column("version_id", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(16), nullable=False, server_default=ABANDONMENT),
)

# Raw: one row per prediction, kept like events (the raw retention).
prediction_log = Table(
    "prediction_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("retailer_id", String(ID_LENGTH), _retailer_key("prediction_log"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("cart_id", String(128)),
    Column("model_version", String(64), nullable=False),
    Column("p_abandoned", Float, nullable=False),
    Column("abandoned", Boolean, nullable=False),
    Column("cart_value", Float, nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("device_type", String(16), nullable=False),
    Column("shipping_speed", String(SPEED_LENGTH), nullable=False),
    # The retention decision, when the prediction named its cart (and so had one).
    Column("policy_version", Integer, nullable=True),
    Column("arm", String(16), nullable=True),  # the decision's group: treatment | control
    Column("action", String(32), nullable=True),
    Column("held_out", String(32), nullable=True),
    Column("send_after_hours", Float, nullable=True),
    Column("expected_gain", Float, nullable=True),
    Column("reason", String(16), nullable=True),
    Column("explored", Boolean, nullable=True),  # the action and send time drawn at random
    Column("propensity", Float, nullable=True),  # P(this action at this time was chosen)
    Index("ix_prediction_log_retailer_at", "retailer_id", "at"),
    Index("ix_prediction_log_at", "at"),  # retention purges by time
)

# Raw too: predictions without a cart id, counted in memory and written at ``at`` (several
# rows per retailer and day add up; a write may hold a single prediction).
prediction_counts = Table(
    "prediction_counts",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("retailer_id", String(ID_LENGTH), _retailer_key("prediction_counts"), nullable=False),
    Column("day", Date, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("figures", JSON, nullable=False),
    Index("ix_prediction_counts_retailer_day", "retailer_id", "day"),
    Index("ix_prediction_counts_at", "at"),  # retention purges by time
)

# Aggregates: one row per retailer and day (the aggregate retention).
daily_stats = Table(
    "daily_stats",
    metadata,
    Column("retailer_id", String(ID_LENGTH), _retailer_key("daily_stats"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("computed_at", UTCDateTime, nullable=False),
    Column("final", Boolean, nullable=False),
    Column("figures", JSON, nullable=False),
)

# Every table holding a retailer's rows, children first: deleting a retailer empties each.
TENANT_TABLES: tuple[Table, ...] = (
    app_sessions,
    settings_changes,
    policy_versions,
    budget_cutoffs,
    events,
    prediction_log,
    prediction_counts,
    daily_stats,
    model_log,
    served_models,
    model_versions,
    api_keys,
    retailers,
)

# What retention deletes (retention.py): raw rows after at most 14 days, aggregates after 90.
RAW_TABLES: tuple[Table, ...] = (events, prediction_log, prediction_counts)
AGGREGATE_TABLES: tuple[Table, ...] = (daily_stats, model_versions, model_log)
