"""Retailers: their configuration, created with a first key, erased with every row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from cartpredict.core.scopes import ALL_SCOPES, DEFAULT_KEY_NAME, new_key_id
from cartpredict.storage.base import ApiKey, DuplicateRetailer, Retailer, SettingsChange
from cartpredict.storage.sql.keys import key_row
from cartpredict.storage.sql.session import SqlSession, lock_retailer, record_change
from cartpredict.storage.tables import (
    TENANT_TABLES,
    api_keys,
    policy_versions,
    retailers,
    settings_changes,
)

_RETAILER_COLUMNS = (
    "requires_account",
    "payment_options",
    "shipping_speeds",
    "pooled_learning",
    "precision_target",
    "attributes",
    "shipping_days",
    "currency",
    "baseline_threshold",
    "typical_cart_value",
    "recovery_policy",  # a change makes a new policy version
)


class RetailerRows(SqlSession):
    def create_retailer(self, *, retailer: Retailer, key_hash: str) -> None:
        values = _retailer_values({c: getattr(retailer, c) for c in _RETAILER_COLUMNS})
        try:
            with self._write(retailer.retailer_id) as conn:
                conn.execute(
                    insert(retailers).values(
                        retailer_id=retailer.retailer_id,
                        created_at=retailer.created_at,
                        updated_at=retailer.last_updated,
                        policy_version=retailer.policy_version,
                        assignment_salt=retailer.assignment_salt,
                        **values,
                    )
                )
                conn.execute(
                    insert(policy_versions).values(
                        retailer_id=retailer.retailer_id,
                        version=retailer.policy_version,
                        policy=retailer.recovery_policy,
                        created_at=retailer.created_at,
                    )
                )
                first = ApiKey(new_key_id(), retailer.retailer_id, DEFAULT_KEY_NAME, ALL_SCOPES,
                               retailer.created_at)  # fmt: skip
                conn.execute(insert(api_keys).values(key_row(first, key_hash)))
                record_change(conn, retailer.retailer_id, retailer.created_at)
        except IntegrityError:
            raise DuplicateRetailer(retailer.retailer_id) from None

    def get_retailer(self, *, retailer_id: str) -> Retailer | None:
        with self._read(retailer_id) as conn:
            row = conn.execute(
                select(retailers).where(retailers.c.retailer_id == retailer_id)
            ).first()
        return _retailer(row) if row else None

    def update_retailer(
        self,
        *,
        retailer_id: str,
        changes: Mapping[str, Any],
        updated_at: datetime,
        key_id: str | None = None,
    ) -> Retailer | None:
        unknown = set(changes) - set(_RETAILER_COLUMNS)
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        values = _retailer_values(changes)
        new_policy = "recovery_policy" in changes
        if new_policy:
            values["policy_version"] = retailers.c.policy_version + 1
        with self._write(retailer_id) as conn:
            row = conn.execute(
                update(retailers)
                .where(retailers.c.retailer_id == retailer_id)
                .values(updated_at=updated_at, **values)
                .returning(*retailers.c)
            ).first()
            if row is None:
                return None
            if new_policy:
                conn.execute(
                    insert(policy_versions).values(
                        retailer_id=retailer_id, version=row.policy_version,
                        policy=row.recovery_policy, created_at=updated_at,
                    )
                )  # fmt: skip
            name = None if key_id is None else conn.execute(
                select(api_keys.c.name).where(api_keys.c.retailer_id == retailer_id,
                                              api_keys.c.key_id == key_id)
            ).scalar()  # fmt: skip
            conn.execute(insert(settings_changes).values(
                retailer_id=retailer_id, at=updated_at, key_id=key_id, key_name=name,
                fields=sorted(changes)))  # fmt: skip
            record_change(conn, retailer_id, updated_at)
        return _retailer(row)

    def settings_changes(self, *, retailer_id: str, limit: int = 20) -> Sequence[SettingsChange]:
        table = settings_changes
        with self._read(retailer_id) as conn:
            rows = conn.execute(
                select(table.c.at, table.c.key_id, table.c.key_name, table.c.fields)
                .where(table.c.retailer_id == retailer_id)
                .order_by(table.c.at.desc(), table.c.id.desc())
                .limit(limit)
            ).all()
        return [SettingsChange(r.at, r.key_id, r.key_name, tuple(r.fields)) for r in rows]

    def delete_retailer(self, *, retailer_id: str, at: datetime) -> bool:
        with self._write(retailer_id) as conn:
            if not lock_retailer(conn, retailer_id):
                return False
            for table in TENANT_TABLES:
                conn.execute(delete(table).where(table.c.retailer_id == retailer_id))
            record_change(conn, retailer_id, at)
        return True

    def list_retailers(self) -> Sequence[Retailer]:
        with self._read() as conn:
            rows = conn.execute(select(retailers).order_by(retailers.c.retailer_id)).all()
        return [_retailer(row) for row in rows]

    def policy_versions(
        self, *, retailer_id: str, since: datetime
    ) -> Sequence[tuple[int, Mapping[str, Any] | None, datetime]]:
        table = policy_versions
        mine = table.c.retailer_id == retailer_id
        with self._read(retailer_id) as conn:
            in_force = conn.execute(
                select(func.max(table.c.version)).where(mine, table.c.created_at <= since)
            ).scalar()
            rows = conn.execute(
                select(table.c.version, table.c.policy, table.c.created_at)
                .where(mine, table.c.version >= (in_force or 0))
                .order_by(table.c.version)
            ).all()
        return [(int(r.version), r.policy, r.created_at) for r in rows]


def _retailer_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Record values as the columns hold them (JSON lists; attributes as name/kind objects)."""
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    if "attributes" in out:
        out["attributes"] = [
            {"name": a["name"], "kind": a["kind"]}
            if isinstance(a, Mapping)
            else {"name": a[0], "kind": a[1]}
            for a in out["attributes"]
        ]
    if "shipping_days" in out:
        out["shipping_days"] = dict(out["shipping_days"])
    return out


def _retailer(row: Row[Any]) -> Retailer:
    return Retailer(
        retailer_id=row.retailer_id,
        requires_account=bool(row.requires_account),
        payment_options=tuple(row.payment_options),
        shipping_speeds=tuple(row.shipping_speeds),
        pooled_learning=bool(row.pooled_learning),
        precision_target=float(row.precision_target),
        created_at=row.created_at,
        last_updated=row.updated_at,
        attributes=tuple((a["name"], a["kind"]) for a in row.attributes or ()),
        shipping_days=tuple((s, float(d)) for s, d in (row.shipping_days or {}).items()),
        currency=row.currency,
        baseline_threshold=float(row.baseline_threshold),
        typical_cart_value=float(row.typical_cart_value),
        recovery_policy=row.recovery_policy,
        policy_version=int(row.policy_version),
        assignment_salt=row.assignment_salt,
    )
