"""Shipping speed names of up to 32 characters in events and the prediction log (a store's own
speeds, such as ``international_economy``, are longer than the seed's).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = (("events", True), ("prediction_log", False))  # (table, nullable)


def upgrade() -> None:
    for table, nullable in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("shipping_speed", type_=sa.String(32), existing_type=sa.String(16),
                               existing_nullable=nullable)  # fmt: skip


def downgrade() -> None:
    for table, nullable in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("shipping_speed", type_=sa.String(16), existing_type=sa.String(32),
                               existing_nullable=nullable)  # fmt: skip
