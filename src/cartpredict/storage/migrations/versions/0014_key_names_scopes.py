"""API keys with a public id, a name and scopes, and an expiry for a rotated key in its grace
period.

Existing keys become their retailer's "default" key with every scope, so each works as before.
A retailer has one key unless keys were added beside it; the oldest is then "default", the
others "default-2", "default-3", ... (a name is unique among a retailer's keys that do not
expire).

Row-level security: the new columns belong to ``api_keys``, whose policies (0005, 0007) and
grants are on the whole table: they cover them, and there is nothing to add.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

import secrets

import sqlalchemy as sa
from alembic import op

from cartpredict.storage.tables import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# As stored (sorted, comma-separated): a migration keeps its own copy of what it writes.
EVERY_SCOPE = "events,manage,predict,read"
COLUMNS = (("key_id", sa.String(16)), ("name", sa.String(32)), ("scopes", sa.String(64)))
NOT_EXPIRING = sa.text("expires_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
        batch.add_column(sa.Column("expires_at", UTCDateTime(), nullable=True))
    keys = sa.table("api_keys", sa.column("key_hash", sa.String), sa.column("retailer_id",
                    sa.String), sa.column("created_at", UTCDateTime()),
                    *(sa.column(name, kind) for name, kind in COLUMNS))  # fmt: skip
    conn = op.get_bind()
    order = (keys.c.retailer_id, keys.c.created_at, keys.c.key_hash)
    seen: dict[str, int] = {}
    for key_hash, retailer_id in conn.execute(
        sa.select(keys.c.key_hash, keys.c.retailer_id).order_by(*order)
    ).all():
        n = seen[retailer_id] = seen.get(retailer_id, 0) + 1
        conn.execute(keys.update().where(keys.c.key_hash == key_hash).values(
            key_id="key_" + secrets.token_urlsafe(9), name="default" if n == 1 else f"default-{n}",
            scopes=EVERY_SCOPE))  # fmt: skip
    with op.batch_alter_table("api_keys") as batch:
        for name, kind in COLUMNS:
            batch.alter_column(name, existing_type=kind, nullable=False)
    op.create_index("ux_api_keys_key_id", "api_keys", ["key_id"], unique=True)
    op.create_index("ux_api_keys_name", "api_keys", ["retailer_id", "name"], unique=True,
                    sqlite_where=NOT_EXPIRING, postgresql_where=NOT_EXPIRING)  # fmt: skip


def downgrade() -> None:
    # Without these columns a key has every scope and no end: a rotated key in its grace period,
    # or a key narrowed to some scopes, would grant more than it does now. They are revoked.
    op.execute(f"DELETE FROM api_keys WHERE expires_at IS NOT NULL OR scopes <> '{EVERY_SCOPE}'")
    op.drop_index("ux_api_keys_name", table_name="api_keys")
    op.drop_index("ux_api_keys_key_id", table_name="api_keys")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
