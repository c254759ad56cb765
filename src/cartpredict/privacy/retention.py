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

from dataclasses import dataclass
from datetime import datetime, timedelta

from cartpredict.core.clock import rfc3339
from cartpredict.core.settings import Settings
from cartpredict.storage import RetentionStore


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


def purge(
    store: RetentionStore, settings: Settings, *, as_of: datetime, dry_run: bool = False
) -> PurgeReport:
    raw_before = as_of - timedelta(days=settings.raw_retention_days)
    aggregates_before = as_of - timedelta(days=settings.aggregate_retention_days)
    removed = store.purge(raw_before=raw_before, aggregates_before=aggregates_before, at=as_of,
                          dry_run=dry_run)  # fmt: skip
    return PurgeReport(as_of, raw_before, aggregates_before, removed, dry_run)
