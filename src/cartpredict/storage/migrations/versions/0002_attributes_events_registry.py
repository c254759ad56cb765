"""Custom attributes on retailers; events; the model registry.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from cartpredict.storage.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("retailers") as batch:
        batch.add_column(sa.Column("attributes", sa.JSON, nullable=False, server_default="[]"))
    op.create_table(
        "events",
        sa.Column("retailer_id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("cart_id", sa.String(128), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("cart_value", sa.Float),
        sa.Column("item_count", sa.Integer),
        sa.Column("device_type", sa.String(16)),
        sa.Column("shipping_speed", sa.String(16)),
        sa.Column("attributes", sa.JSON),
    )
    op.create_index("ix_events_retailer_at", "events", ["retailer_id", "at"])
    op.create_table(
        "model_versions",
        sa.Column("version_id", sa.String(64), primary_key=True),
        sa.Column("retailer_id", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("train_start", UTCDateTime, nullable=False),
        sa.Column("train_end", UTCDateTime, nullable=False),
        sa.Column("n_train", sa.Integer, nullable=False),
        sa.Column("threshold", sa.Float),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("model", sa.JSON, nullable=False),
    )
    op.create_index("ix_model_versions_retailer_id", "model_versions", ["retailer_id"])
    op.create_table(
        "served_models",
        sa.Column("retailer_id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("since", UTCDateTime, nullable=False),
    )
    op.create_table(
        "model_log",
        sa.Column("id", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("retailer_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_model_log_retailer_id", "model_log", ["retailer_id"])


def downgrade() -> None:
    op.drop_table("model_log")
    op.drop_table("served_models")
    op.drop_table("model_versions")
    op.drop_table("events")
    with op.batch_alter_table("retailers") as batch:
        batch.drop_column("attributes")
