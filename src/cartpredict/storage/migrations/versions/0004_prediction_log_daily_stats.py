"""The prediction log (raw), daily aggregates per retailer, and training profiles for drift.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from cartpredict.storage.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("profile", sa.JSON()))
    op.create_table(
        "prediction_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("retailer_id", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("cart_id", sa.String(128)),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("p_abandoned", sa.Float(), nullable=False),
        sa.Column("abandoned", sa.Boolean(), nullable=False),
        sa.Column("cart_value", sa.Float(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("device_type", sa.String(16), nullable=False),
        sa.Column("shipping_speed", sa.String(16), nullable=False),
    )
    op.create_index("ix_prediction_log_retailer_at", "prediction_log", ["retailer_id", "at"])
    op.create_index("ix_prediction_log_at", "prediction_log", ["at"])
    op.create_table(
        "daily_stats",
        sa.Column("retailer_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("daily_stats")
    op.drop_index("ix_prediction_log_at", table_name="prediction_log")
    op.drop_index("ix_prediction_log_retailer_at", table_name="prediction_log")
    op.drop_table("prediction_log")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("profile")
