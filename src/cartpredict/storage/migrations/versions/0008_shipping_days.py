"""Retailers' delivery days per shipping speed (speeds may now be any identifier).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("retailers") as batch:
        batch.add_column(
            sa.Column("shipping_days", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("retailers") as batch:
        batch.drop_column("shipping_days")
