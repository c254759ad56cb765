"""Retailers, their hashed API keys, and the change feed workers poll.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from cartpredict.storage.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retailers",
        sa.Column("retailer_id", sa.String(64), primary_key=True),
        sa.Column("requires_account", sa.Boolean, nullable=False),
        sa.Column("payment_options", sa.JSON, nullable=False),
        sa.Column("shipping_speeds", sa.JSON, nullable=False),
        sa.Column("pooled_learning", sa.Boolean, nullable=False),
        sa.Column("precision_target", sa.Float, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column(
            "retailer_id",
            sa.String(64),
            sa.ForeignKey("retailers.retailer_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_api_keys_retailer_id", "api_keys", ["retailer_id"])
    op.create_table(
        "changes",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("retailer_id", sa.String(64), nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("changes")
    op.drop_index("ix_api_keys_retailer_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("retailers")
