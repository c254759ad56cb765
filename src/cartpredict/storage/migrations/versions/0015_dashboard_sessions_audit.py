"""The dashboard's sessions, and who changed a retailer's settings when.

* ``app_sessions``: the SHA-256 of each session's secret, its retailer (NULL: the operator's),
  the key it was opened with and when it ends; deleted with its retailer.
* ``settings_changes``: per change of a retailer's configuration or recovery policy, when, the
  key that made it (NULL: the operator) and its name then, and the fields changed; deleted with
  its retailer.

Row-level security (PostgreSQL): both are tenant tables, with the policies and grants of the
others (0005, 0007); an operator session's row, with no retailer, is seen by no tenant. Sessions
are looked up by hash before their retailer is known, under the service's own role, as keys are.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from cartpredict.storage.tables import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TENANT_ROLE = "cartpredict_tenant"  # see 0005
SERVICE_ROLE = "cartpredict_service"  # see 0007
MINE = "retailer_id = current_setting('cartpredict.retailer_id', true)"
TABLES = ("app_sessions", "settings_changes")
SEQUENCE = "settings_changes_id_seq"


def _retailer(table: str, *, nullable: bool) -> sa.Column[str]:
    return sa.Column(
        "retailer_id",
        sa.String(64),
        sa.ForeignKey("retailers.retailer_id", ondelete="CASCADE", name=f"fk_{table}_retailer"),
        nullable=nullable,
    )


def upgrade() -> None:
    op.create_table(
        "app_sessions",
        sa.Column("session_hash", sa.String(64), primary_key=True),
        _retailer("app_sessions", nullable=True),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_app_sessions_retailer_id", "app_sessions", ["retailer_id"])
    op.create_index("ix_app_sessions_expires_at", "app_sessions", ["expires_at"])
    op.create_table(
        "settings_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        _retailer("settings_changes", nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.Column("key_name", sa.String(32), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
    )
    op.create_index("ix_settings_changes_retailer_at", "settings_changes", ["retailer_id", "at"])
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} TO {TENANT_ROLE} "
                       f"USING ({MINE}) WITH CHECK ({MINE})")  # fmt: skip
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {TENANT_ROLE}")
            op.execute(f"CREATE POLICY service_access ON {table} TO {SERVICE_ROLE} "
                       "USING (true) WITH CHECK (true)")  # fmt: skip
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SERVICE_ROLE}")
        for role in (TENANT_ROLE, SERVICE_ROLE):
            op.execute(f"GRANT USAGE ON SEQUENCE {SEQUENCE} TO {role}")


def downgrade() -> None:
    op.drop_index("ix_settings_changes_retailer_at", table_name="settings_changes")
    op.drop_table("settings_changes")
    op.drop_index("ix_app_sessions_expires_at", table_name="app_sessions")
    op.drop_index("ix_app_sessions_retailer_id", table_name="app_sessions")
    op.drop_table("app_sessions")
