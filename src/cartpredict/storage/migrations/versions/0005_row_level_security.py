"""Row-level security on PostgreSQL: a tenant session sees its own retailer's rows only.

A session that has switched to the ``cartpredict_tenant`` role (as the store does for every
query on one retailer's data) passes each tenant table's policy only for rows whose
``retailer_id`` equals the session's ``cartpredict.retailer_id`` setting; without that setting
it sees nothing. The role is cluster-wide and created once (it cannot log in); the connecting
user is made a member so it may switch to it. SQLite has no such mechanism: nothing to do.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ROLE = "cartpredict_tenant"
TABLES = (
    "retailers",
    "api_keys",
    "events",
    "prediction_log",
    "daily_stats",
    "model_versions",
    "served_models",
    "model_log",
    "changes",
)
SEQUENCES = ("changes_seq_seq", "model_log_id_seq", "prediction_log_id_seq")
MINE = "retailer_id = current_setting('cartpredict.retailer_id', true)"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        DO $$ BEGIN
            CREATE ROLE {ROLE} NOLOGIN;
        EXCEPTION WHEN duplicate_object THEN NULL;
        END $$
        """
    )
    op.execute(f"GRANT {ROLE} TO CURRENT_USER")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {ROLE} "
            f"USING ({MINE}) WITH CHECK ({MINE})"
        )
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {ROLE}")
    for sequence in SEQUENCES:
        op.execute(f"GRANT USAGE ON SEQUENCE {sequence} TO {ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for sequence in SEQUENCES:
        op.execute(f"REVOKE ALL ON SEQUENCE {sequence} FROM {ROLE}")
    for table in TABLES:
        op.execute(f"REVOKE ALL ON {table} FROM {ROLE}")
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {ROLE}")
