"""Recovery policies (with their versions), the secret that assigns carts to control groups,
each logged prediction's retention decision, and the budget's cut-off.

Retailers onboarded before get the default policy (version 1) and a fresh random secret.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from cartpredict.storage.tables import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ROLE = "cartpredict_tenant"  # see 0005
SERVICE_ROLE = "cartpredict_service"  # see 0007
MINE = "retailer_id = current_setting('cartpredict.retailer_id', true)"

DECISION = (
    ("policy_version", sa.Integer()),
    ("arm", sa.String(16)),
    ("action", sa.String(32)),
    ("held_out", sa.String(32)),
    ("send_after_hours", sa.Float()),
    ("expected_gain", sa.Float()),
    ("reason", sa.String(16)),
)


def upgrade() -> None:
    with op.batch_alter_table("retailers") as batch:
        batch.add_column(sa.Column("recovery_policy", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("policy_version", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch.add_column(
            sa.Column("assignment_salt", sa.String(64), nullable=False,
                      server_default=sa.text("''"))
        )  # fmt: skip
    op.create_table(
        "policy_versions",
        sa.Column("retailer_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("policy", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["retailer_id"], ["retailers.retailer_id"], ondelete="CASCADE",
                                name="fk_policy_versions_retailer"),
    )  # fmt: skip
    op.create_table(
        "budget_cutoffs",
        sa.Column("retailer_id", sa.String(64), primary_key=True),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("cutoff", sa.Float(), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["retailer_id"], ["retailers.retailer_id"], ondelete="CASCADE",
                                name="fk_budget_cutoffs_retailer"),
    )  # fmt: skip
    if op.get_bind().dialect.name == "postgresql":
        for table in ("policy_versions", "budget_cutoffs"):
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY tenant_isolation ON {table} TO {ROLE} "
                f"USING ({MINE}) WITH CHECK ({MINE})"
            )
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {ROLE}")
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SERVICE_ROLE}")
            op.execute(
                f"CREATE POLICY service_access ON {table} TO {SERVICE_ROLE} "
                "USING (true) WITH CHECK (true)"
            )
    with op.batch_alter_table("prediction_log") as batch:
        for name, kind in DECISION:
            batch.add_column(sa.Column(name, kind, nullable=True))
    conn = op.get_bind()
    retailers = sa.table("retailers", sa.column("retailer_id", sa.String),
                         sa.column("assignment_salt", sa.String))  # fmt: skip
    versions = sa.table("policy_versions", sa.column("retailer_id", sa.String),
                        sa.column("version", sa.Integer),
                        sa.column("created_at", UTCDateTime()))  # fmt: skip
    now = datetime.now(UTC)
    for (retailer_id,) in conn.execute(sa.select(retailers.c.retailer_id)).all():
        conn.execute(retailers.update().where(retailers.c.retailer_id == retailer_id)
                     .values(assignment_salt=secrets.token_hex(16)))  # fmt: skip
        conn.execute(versions.insert().values(retailer_id=retailer_id, version=1,
                                              created_at=now))  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("prediction_log") as batch:
        for name, _ in reversed(DECISION):
            batch.drop_column(name)
    op.drop_table("budget_cutoffs")
    op.drop_table("policy_versions")
    with op.batch_alter_table("retailers") as batch:
        batch.drop_column("assignment_salt")
        batch.drop_column("policy_version")
        batch.drop_column("recovery_policy")
