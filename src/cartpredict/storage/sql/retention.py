"""Retention: what has expired, deleted across retailers (operator-level)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, insert, select

from cartpredict.storage.sql.registry import served_key
from cartpredict.storage.sql.session import SqlSession, count_rows, record_served_change
from cartpredict.storage.tables import (
    daily_stats,
    model_log,
    model_versions,
    prediction_counts,
    prediction_log,
    served_models,
)
from cartpredict.storage.tables import events as events_table


class RetentionRows(SqlSession):
    def purge(
        self, *, raw_before: datetime, aggregates_before: datetime, at: datetime, dry_run: bool
    ) -> dict[str, int]:
        old_events = events_table.c.received_at < raw_before
        old_versions = select(model_versions.c.version_id).where(
            model_versions.c.created_at < aggregates_before
        )
        expiring = served_models.c.version_id.in_(old_versions)
        old_log = model_log.c.at < aggregates_before
        old_predictions = prediction_log.c.at < raw_before
        old_counts = prediction_counts.c.at < raw_before
        old_days = daily_stats.c.day < aggregates_before.astimezone(UTC).date()
        with self._write() as conn:
            counts = {
                "events": count_rows(conn, events_table, old_events),
                "prediction_log": count_rows(conn, prediction_log, old_predictions),
                "prediction_counts": count_rows(conn, prediction_counts, old_counts),
                "daily_stats": count_rows(conn, daily_stats, old_days),
                "model_versions": count_rows(conn, model_versions,
                                         model_versions.c.created_at < aggregates_before),
                "served_models": count_rows(conn, served_models, expiring),
                "model_log": count_rows(conn, model_log, old_log),
            }  # fmt: skip
            if dry_run:
                return counts
            served = select(
                served_models.c.retailer_id, served_models.c.kind, served_models.c.version_id
            )
            expired = conn.execute(served.where(expiring)).all()
            conn.execute(delete(events_table).where(old_events))
            conn.execute(delete(prediction_log).where(old_predictions))
            conn.execute(delete(prediction_counts).where(old_counts))
            conn.execute(delete(daily_stats).where(old_days))
            conn.execute(delete(model_log).where(old_log))
            for scope, kind, version_id in expired:  # stops serving: the pooled model or
                # the baseline (a recovery model: the pooled one or the priors)
                conn.execute(delete(served_models).where(*served_key(scope, kind)))
                conn.execute(insert(model_log).values(retailer_id=scope, kind=kind,
                                                      version_id=version_id, action="expire",
                                                      at=at))  # fmt: skip
                record_served_change(conn, scope, at)
            conn.execute(
                delete(model_versions).where(model_versions.c.created_at < aggregates_before)
            )
        return counts
