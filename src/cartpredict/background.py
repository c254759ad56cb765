"""Periodic work inside a server process: the change feed's upkeep, retention's purge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

log = logging.getLogger(__name__)


async def repeat(
    work: Callable[[], object], *, every_s: float, stop: asyncio.Event, what: str, at_once: bool
) -> None:
    """Run blocking ``work`` in a thread every ``every_s`` until ``stop`` is set (first at
    once, or after one interval). A failure is logged and retried next time, never fatal.
    Stopping waits for a run in flight, so nothing still holds a connection when the store
    closes."""
    if not at_once and await _stopped(stop, every_s):
        return
    while not stop.is_set():
        try:
            await run_in_threadpool(work)
        except Exception as exc:
            log.warning("%s failed: %s", what, exc)
        if await _stopped(stop, every_s):
            return


async def _stopped(stop: asyncio.Event, timeout_s: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=timeout_s)
        return True
    return False
