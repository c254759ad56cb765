"""Retention: raw data and aggregates are deleted when their time is up, by code.

Raw, row-level data (the events retailers send, the prediction log) goes ``raw_retention_days``
(at most 14) after it was received; aggregates (model versions, with their metrics and weights,
the log of promotions, the daily stats) ``aggregate_retention_days`` (at most 90) after they
were made (daily stats: after the day they describe). Training snapshots are derived from
events when training runs and never stored, so they cannot outlive them. A
served model that expires stops serving: the pooled model or the baseline takes over until the
retailer's next training. ``cartpredict purge`` runs it on demand; ``cartpredict serve`` runs it
every ``purge_interval_s``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from .clock import Clock, rfc3339
from .metrics import Metrics
from .recorder import PredictionRecorder
from .settings import Settings
from .stats import RollupStore, rollup_now
from .storage import RetentionStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeReport:
    as_of: datetime
    raw_before: datetime
    aggregates_before: datetime
    removed: dict[str, int]
    dry_run: bool

    def summary(self) -> dict[str, object]:
        return {
            "as_of": rfc3339(self.as_of),
            "raw_received_before": rfc3339(self.raw_before),
            "aggregates_made_before": rfc3339(self.aggregates_before),
            "dry_run": self.dry_run,
            "rows": dict(self.removed),
        }


class PurgingStore(RetentionStore, RollupStore, Protocol):
    """A running server's purge rolls the daily stats up first."""


def purge(
    store: RetentionStore, settings: Settings, *, as_of: datetime, dry_run: bool = False
) -> PurgeReport:
    raw_before = as_of - timedelta(days=settings.raw_retention_days)
    aggregates_before = as_of - timedelta(days=settings.aggregate_retention_days)
    removed = store.purge(raw_before=raw_before, aggregates_before=aggregates_before, at=as_of,
                          dry_run=dry_run)  # fmt: skip
    return PurgeReport(as_of, raw_before, aggregates_before, removed, dry_run)


def purge_now(
    store: PurgingStore,
    settings: Settings,
    *,
    clock: Clock,
    metrics: Metrics,
    recorder: PredictionRecorder | None = None,
) -> None:
    """A running server's purge: as of now, counted in the metrics. The daily stats are
    brought up to date first, so no prediction expires before it is counted."""
    if recorder is not None:
        rollup_now(store, recorder, clock=clock)
    report = purge(store, settings, as_of=clock())
    for table, rows in report.removed.items():
        metrics.purged(table, rows)
    if any(report.removed.values()):
        log.info("purged expired data: %s", report.removed)
