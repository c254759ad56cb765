"""Predictions without a cart id: counted in memory and stored as figures, not as rows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from cartpredict.storage.tables import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ROLE = "cartpredict_tenant"  # see 0005
MINE = "retailer_id = current_setting('cartpredict.retailer_id', true)"


def upgrade() -> None:
    op.create_table(
        "prediction_counts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("retailer_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
    )
    op.create_index(
        "ix_prediction_counts_retailer_day", "prediction_counts", ["retailer_id", "day"]
    )
    op.create_index("ix_prediction_counts_at", "prediction_counts", ["at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE prediction_counts ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON prediction_counts TO {ROLE} "
            f"USING ({MINE}) WITH CHECK ({MINE})"
        )
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON prediction_counts TO {ROLE}")
        op.execute(f"GRANT USAGE ON SEQUENCE prediction_counts_id_seq TO {ROLE}")


def downgrade() -> None:
    op.drop_table("prediction_counts")
