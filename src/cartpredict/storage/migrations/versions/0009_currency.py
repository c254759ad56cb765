"""Retailers' currency, baseline threshold and typical cart value (in that currency).

Retailers onboarded before have carts in US dollars, a $20 threshold and a $60 typical cart.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("retailers") as batch:
        batch.add_column(
            sa.Column("currency", sa.String(3), nullable=False, server_default=sa.text("'USD'"))
        )
        batch.add_column(
            sa.Column(
                "baseline_threshold", sa.Float(), nullable=False, server_default=sa.text("20.0")
            )
        )
        batch.add_column(
            sa.Column(
                "typical_cart_value", sa.Float(), nullable=False, server_default=sa.text("60.0")
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("retailers") as batch:
        batch.drop_column("typical_cart_value")
        batch.drop_column("baseline_threshold")
        batch.drop_column("currency")
