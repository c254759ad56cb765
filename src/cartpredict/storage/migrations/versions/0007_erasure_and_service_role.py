"""Erasure enforced by the database, and a least-privilege role for the service.

* Every raw and daily row of a retailer (events, prediction log and counts, daily stats)
  references its retailer with ON DELETE CASCADE: a row can only be written for a retailer that
  exists, and deleting the retailer deletes it, whatever raced with the deletion. Rows of
  retailers already gone are removed first. (Model versions and their log are keyed by a
  registry scope, which may be the pooled model's, and are deleted with the retailer by the
  store, in the same transaction.)
* On PostgreSQL, the group role ``cartpredict_service``: what the service needs and nothing more
  (read and write the tables' rows; no DDL, no superuser, no BYPASSRLS). The service's login
  role is made a member by ``cartpredict db create-service-role``. Row-level security applies to
  it: its own queries (operator-level work across retailers: training, retention, the change
  feed, key lookup) pass the ``service_access`` policy; its tenant queries switch to
  ``cartpredict_tenant`` (a member may), where only ``tenant_isolation`` applies.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TENANT_ROLE = "cartpredict_tenant"  # see 0005
SERVICE_ROLE = "cartpredict_service"
CASCADING = ("events", "prediction_log", "prediction_counts", "daily_stats")
RLS_TABLES = (
    "retailers",
    "api_keys",
    "events",
    "prediction_log",
    "prediction_counts",
    "daily_stats",
    "model_versions",
    "served_models",
    "model_log",
    "changes",
)
SEQUENCES = (
    "changes_seq_seq",
    "model_log_id_seq",
    "prediction_log_id_seq",
    "prediction_counts_id_seq",
)


def upgrade() -> None:
    for table in CASCADING:
        op.execute(
            f"DELETE FROM {table} WHERE retailer_id NOT IN (SELECT retailer_id FROM retailers)"
        )
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(
                f"fk_{table}_retailer",
                "retailers",
                ["retailer_id"],
                ["retailer_id"],
                ondelete="CASCADE",
            )
    if op.get_bind().dialect.name == "postgresql":
        _service_role()


def _service_role() -> None:
    op.execute(
        f"""
        DO $$ BEGIN
            CREATE ROLE {SERVICE_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        EXCEPTION WHEN duplicate_object THEN NULL;
        END $$
        """
    )
    op.execute(f"GRANT {TENANT_ROLE} TO {SERVICE_ROLE}")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {SERVICE_ROLE}")
    op.execute(f"GRANT SELECT ON alembic_version TO {SERVICE_ROLE}")
    for table in RLS_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SERVICE_ROLE}")
        op.execute(
            f"CREATE POLICY service_access ON {table} TO {SERVICE_ROLE} "
            "USING (true) WITH CHECK (true)"
        )
    for sequence in SEQUENCES:
        op.execute(f"GRANT USAGE ON SEQUENCE {sequence} TO {SERVICE_ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for sequence in SEQUENCES:
            op.execute(f"REVOKE ALL ON SEQUENCE {sequence} FROM {SERVICE_ROLE}")
        for table in RLS_TABLES:
            op.execute(f"DROP POLICY service_access ON {table}")
            op.execute(f"REVOKE ALL ON {table} FROM {SERVICE_ROLE}")
        op.execute(f"REVOKE ALL ON alembic_version FROM {SERVICE_ROLE}")
        op.execute(f"REVOKE USAGE ON SCHEMA public FROM {SERVICE_ROLE}")
    for table in CASCADING:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_retailer", type_="foreignkey")
