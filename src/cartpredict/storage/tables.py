"""The relational schema (SQLAlchemy Core). Alembic migrations create it; keep them in step."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
)

# The Alembic revision this code expects; a test keeps it equal to the migrations' head.
SCHEMA_REVISION = "0001"

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
)

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

# Every table holding a retailer's rows, children first: deleting a retailer empties each.
TENANT_TABLES: tuple[Table, ...] = (api_keys, retailers)
