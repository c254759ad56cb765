"""Periodic work inside a server process: the change feed's upkeep, retention's purge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from .storage.engine import describe

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
