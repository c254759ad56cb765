"""Periodic work inside a server process: the change feed's upkeep, retention's purge (which
the Lambda handler's scheduled event runs too)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from starlette.concurrency import run_in_threadpool

from cartpredict.core.clock import Clock
from cartpredict.core.settings import Settings
from cartpredict.monitoring.metrics import Metrics
from cartpredict.monitoring.recorder import PredictionRecorder
from cartpredict.monitoring.rollup import RollupStore, rollup
from cartpredict.privacy.retention import purge
from cartpredict.storage import RetentionStore
from cartpredict.storage.engine import describe

log = logging.getLogger(__name__)

REMIND_EVERY_S = 300.0  # while work keeps failing, a reminder this often


async def repeat(
    work: Callable[[], object], *, every_s: float, stop: asyncio.Event, what: str, at_once: bool
) -> None:
    """Run blocking ``work`` in a thread every ``every_s`` until ``stop`` is set (first at
    once, or after one interval). A failure is retried next time, never fatal. While the
    failures last (the store is down, say) the log gets a warning at the first, a reminder
    every ``REMIND_EVERY_S``, and one line when the work succeeds again, not a line per
    attempt. Stopping waits for a run in flight, so nothing still holds a connection when the
    store closes."""
    if not at_once and await _stopped(stop, every_s):
        return
    failures = 0
    warned_at = 0.0
    while not stop.is_set():
        try:
            await run_in_threadpool(work)
        except Exception as exc:
            failures += 1
            now = time.monotonic()
            if failures == 1:
                log.warning("%s failed: %s; retrying every %gs", what, describe(exc), every_s)
                warned_at = now
            elif now - warned_at >= REMIND_EVERY_S:
                log.warning("%s still failing (%d attempts): %s", what, failures, describe(exc))
                warned_at = now
        else:
            if failures:
                log.info("%s recovered after %d failed attempts", what, failures)
                failures = 0
        if await _stopped(stop, every_s):
            return


async def _stopped(stop: asyncio.Event, timeout_s: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=timeout_s)
        return True
    return False


class PurgingStore(RetentionStore, RollupStore, Protocol):
    """A running server's purge rolls the daily stats up first."""


def purge_now(
    store: PurgingStore,
    settings: Settings,
    *,
    clock: Clock,
    metrics: Metrics,
    recorder: PredictionRecorder | None = None,
) -> None:
    """A running server's purge: as of now, counted in the metrics. The days whose figures
    are final are rolled up first (what this process has buffered written before), so no
    prediction expires before it is counted. Only those: a day still open is the periodic
    rollup's, which recomputes it every time anyway. (Rolling up every open day here made
    each start of a worker, where the purge runs at once, read the whole day's log again:
    20 s of CPU on a busy store, taken from the requests a new worker is meant to serve.)"""
    as_of = clock()
    if recorder is not None:
        recorder.flush(store)
        rollup(store, as_of=as_of, final_only=True)
    report = purge(store, settings, as_of=as_of)
    for table, rows in report.removed.items():
        metrics.purged(table, rows)
    if any(report.removed.values()):
        log.info("purged expired data: %s", report.removed)
