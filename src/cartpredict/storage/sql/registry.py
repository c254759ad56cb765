"""The model registry: versions, what serves each scope, and the log of promotions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select

from cartpredict.storage.base import ABANDONMENT, ModelVersion, Promotion
from cartpredict.storage.sql.session import (
    SqlSession,
    record_change,
    record_served_change,
    tenant_of,
)
from cartpredict.storage.tables import model_log, model_versions, served_models


class RegistryRows(SqlSession):
    def add_model_version(self, *, version: ModelVersion) -> None:
        with self._write(tenant_of(version.scope)) as conn:
            conn.execute(
                insert(model_versions).values(
                    version_id=version.version_id,
                    retailer_id=version.scope,
                    created_at=version.created_at,
                    train_start=version.train_start,
                    train_end=version.train_end,
                    n_train=version.n_train,
                    threshold=version.threshold,
                    metrics=dict(version.metrics),
                    model=dict(version.model),
                    profile=dict(version.profile) if version.profile is not None else None,
                    kind=version.kind,
                )
            )

    def model_version(self, *, scope: str, version_id: str) -> ModelVersion | None:
        with self._read(tenant_of(scope)) as conn:
            row = conn.execute(
                select(model_versions).where(
                    model_versions.c.retailer_id == scope,
                    model_versions.c.version_id == version_id,
                )
            ).first()
        return _version(row) if row else None

    def model_versions(self, *, scope: str, kind: str = ABANDONMENT) -> Sequence[ModelVersion]:
        with self._read(tenant_of(scope)) as conn:
            rows = conn.execute(
                select(model_versions)
                .where(model_versions.c.retailer_id == scope, model_versions.c.kind == kind)
                .order_by(model_versions.c.created_at.desc(), model_versions.c.version_id.desc())
            ).all()
        return [_version(row) for row in rows]

    def served_version(self, *, scope: str, kind: str = ABANDONMENT) -> ModelVersion | None:
        with self._read(tenant_of(scope)) as conn:
            row = conn.execute(
                select(model_versions)
                .join(
                    served_models,
                    (served_models.c.version_id == model_versions.c.version_id)
                    & (served_models.c.retailer_id == model_versions.c.retailer_id),
                )
                .where(served_models.c.retailer_id == scope, served_models.c.kind == kind)
            ).first()
        return _version(row) if row else None

    def served_version_id(self, *, scope: str, kind: str = ABANDONMENT) -> str | None:
        with self._read(tenant_of(scope)) as conn:
            found = conn.execute(_served_id(scope, kind)).scalar()
        return None if found is None else str(found)

    def set_served(
        self, *, scope: str, version_id: str, action: str, at: datetime, kind: str = ABANDONMENT
    ) -> None:
        with self._write(tenant_of(scope)) as conn:
            conn.execute(delete(served_models).where(*served_key(scope, kind)))
            conn.execute(
                insert(served_models).values(
                    retailer_id=scope, kind=kind, version_id=version_id, since=at
                )
            )
            conn.execute(
                insert(model_log).values(
                    retailer_id=scope, kind=kind, version_id=version_id, action=action, at=at
                )
            )
            record_served_change(conn, scope, at)

    def retire_served(self, *, scope: str, at: datetime, kind: str = ABANDONMENT) -> bool:
        with self._write(tenant_of(scope)) as conn:
            version_id = conn.execute(_served_id(scope, kind)).scalar()
            if version_id is None:
                return False
            conn.execute(delete(served_models).where(*served_key(scope, kind)))
            conn.execute(
                insert(model_log).values(
                    retailer_id=scope, kind=kind, version_id=version_id, action="retire", at=at
                )
            )
            record_change(conn, scope, at)
        return True

    def promotions(self, *, scope: str, kind: str = ABANDONMENT) -> Sequence[Promotion]:
        with self._read(tenant_of(scope)) as conn:
            rows = conn.execute(
                select(model_log)
                .where(model_log.c.retailer_id == scope, model_log.c.kind == kind)
                .order_by(model_log.c.id.desc())
            ).all()
        return [Promotion(version_id=r.version_id, action=r.action, at=r.at) for r in rows]


def served_key(scope: str, kind: str) -> tuple[Any, ...]:
    """The served_models row of a scope's model of that kind."""
    return (served_models.c.retailer_id == scope, served_models.c.kind == kind)


def _served_id(scope: str, kind: str) -> Any:
    return select(served_models.c.version_id).where(*served_key(scope, kind))


def _version(row: Row[Any]) -> ModelVersion:
    return ModelVersion(
        version_id=row.version_id,
        scope=row.retailer_id,
        created_at=row.created_at,
        train_start=row.train_start,
        train_end=row.train_end,
        n_train=row.n_train,
        threshold=row.threshold,
        metrics=row.metrics,
        model=row.model,
        profile=row.profile,
        kind=row.kind,
    )
