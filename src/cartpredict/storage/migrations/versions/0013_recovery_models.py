"""Recovery models beside abandonment models in the registry (a ``kind`` per version, per
served entry and per log line), and what exploration chose: each decision's ``explored``
flag and the probability with which its action and send time were chosen.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from cartpredict.storage.tables import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _kind(*, key: bool = False) -> sa.Column[str]:
    return sa.Column(
        "kind", sa.String(16), nullable=False, server_default="abandonment", primary_key=key
    )


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(_kind())
    with op.batch_alter_table("model_log") as batch:
        batch.add_column(_kind())
    # one served version per (scope, kind)
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("served_models", _kind())
        op.drop_constraint("served_models_pkey", "served_models", type_="primary")
        op.create_primary_key("served_models_pkey", "served_models", ["retailer_id", "kind"])
    else:  # SQLite cannot alter a primary key: a new table, its rows copied over
        _rebuild_served(["retailer_id", "kind"], "'abandonment'")
    with op.batch_alter_table("prediction_log") as batch:
        batch.add_column(sa.Column("explored", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("propensity", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prediction_log") as batch:
        batch.drop_column("propensity")
        batch.drop_column("explored")
    op.execute("DELETE FROM served_models WHERE kind <> 'abandonment'")
    op.execute("DELETE FROM model_log WHERE kind <> 'abandonment'")
    op.execute("DELETE FROM model_versions WHERE kind <> 'abandonment'")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("served_models_pkey", "served_models", type_="primary")
        op.drop_column("served_models", "kind")
        op.create_primary_key("served_models_pkey", "served_models", ["retailer_id"])
    else:
        _rebuild_served(["retailer_id"], None)
    with op.batch_alter_table("model_log") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("kind")


def _rebuild_served(key: list[str], kind: str | None) -> None:
    columns: list[sa.Column[object]] = [
        sa.Column("retailer_id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("since", UTCDateTime, nullable=False),
    ]
    if "kind" in key:
        columns.insert(1, _kind(key=True))  # type: ignore[arg-type]
    op.create_table("served_models_new", *columns)
    select = "retailer_id, version_id, since" + ("" if kind is None else f", {kind}")
    into = "retailer_id, version_id, since" + ("" if kind is None else ", kind")
    op.execute(f"INSERT INTO served_models_new ({into}) SELECT {select} FROM served_models")
    op.drop_table("served_models")
    op.rename_table("served_models_new", "served_models")
