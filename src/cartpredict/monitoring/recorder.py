"""The prediction log's writer: what the daily stats need, kept in memory and written in bulk.

Scoring a cart appends one tuple here. A prediction that names its cart (``cart_id``) becomes
a row of the prediction log: its outcome is known once the retailer's purchase events arrive.
One without has no outcome to wait for, so it is only counted, into figures per retailer and
day (``tally.py``), and never stored as a row of its own (data minimisation; it also saves the
database a row per prediction).

A background task (or, on Lambda, the next invocation once ``FLUSH_EVERY_S`` has passed) writes
both in one go. A write costs the store a round of work per retailer it touches (its scope, a
check that it still exists) on top of the rows: a flush takes every row waiting and writes each
retailer's rows together, so that a second of a thousand retailers' predictions costs a thousand
such rounds, not one per retailer per few thousand rows. If the store is down, rows wait, up to
``MAX_BUFFERED`` (those being written included); past that the oldest waiting are dropped and
counted, so an outage can never exhaust memory or slow serving. Counts always wait (a few
hundred bytes per retailer and day).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from cartpredict.monitoring import tally
from cartpredict.storage import Decided, PredictionStore, ScoredCart

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 1.0
COUNTS_EVERY_S = 10.0
MAX_BUFFERED = 100_000
BATCH = 5_000  # rows per write (one transaction), whole retailers' where they fit
YIELD_EVERY = 500  # rows taken between two offers of the GIL to the serving thread

Row = tuple[str, datetime, str | None, str, float, bool, float, int, str, str, Decided | None]


class PredictionRecorder:
    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        max_buffered: int = MAX_BUFFERED,
        on_written: Callable[[int], object] = lambda n: None,
        on_dropped: Callable[[int], object] = lambda n: None,
    ) -> None:
        self._clock = clock
        self._buffer: deque[Row] = deque()
        self._max = max_buffered
        self._taken = 0  # rows out of the buffer, being written by a flush
        self._on_written = on_written
        self._on_dropped = on_dropped
        self._flushing = threading.Lock()
        self._counts: dict[tuple[str, date], dict[str, Any]] = {}  # touched by flush alone
        self._first: dict[tuple[str, date], datetime] = {}  # each count's first prediction
        self._monotonic = time.monotonic
        self._counts_written = -math.inf

    def record(
        self,
        retailer_id: str,
        cart_id: str | None,
        model_version: str,
        p_abandoned: float,
        abandoned: bool,
        cart_value: float,
        item_count: int,
        device_type: str,
        shipping_speed: str,
        decision: Decided | None = None,
    ) -> None:
        """On the request path: one tuple appended; everything else happens in ``flush``."""
        self._buffer.append(
            (retailer_id, self._clock(), cart_id, model_version, p_abandoned, abandoned,
             cart_value, item_count, device_type, shipping_speed, decision)
        )  # fmt: skip
        if len(self._buffer) + self._taken > self._max:
            try:
                self._buffer.popleft()
            except IndexError:  # a flush took every row meanwhile
                return
            self._on_dropped(1)

    def __len__(self) -> int:
        """Predictions waiting to be written or counted, or being written."""
        return len(self._buffer) + self._taken

    def flush(self, store: PredictionStore, *, counts_every_s: float = 0.0) -> int:
        """Count what carries no cart id, write the rest, and the counts unless they were
        written less than ``counts_every_s`` ago (a server writes them every
        ``COUNTS_EVERY_S``: one small write instead of one a second); return how many rows of
        the log were written. On failure, what was not written stays (rows in order, counts
        added up) and the error is raised."""
        written = 0
        with self._flushing:  # one flush at a time; recording goes on meanwhile
            logged = self._take()
            batches = _by_retailer(logged)
            done = 0
            try:
                for batch in batches:
                    store.add_scored_carts(carts=[ScoredCart._make(logged[i]) for i in batch])
                    done += 1
                    self._taken -= len(batch)
                    written += len(batch)
                    self._on_written(len(batch))
            except BaseException:  # the rows not written wait, in their order, for the next
                waiting = sorted(i for batch in batches[done:] for i in batch)
                self._buffer.extendleft(reversed([logged[i] for i in waiting]))
                self._taken = 0
                self._trim()
                raise
            due = self._monotonic() - self._counts_written >= counts_every_s
            if self._counts and due:
                counts = [
                    (rid, day, self._first[(rid, day)], figures)
                    for (rid, day), figures in self._counts.items()
                ]
                store.add_prediction_counts(counts=counts, at=self._clock())
                self._counts, self._first = {}, {}
                self._counts_written = self._monotonic()
        return written

    def _take(self) -> list[Row]:
        """The rows waiting, out of the buffer: those without a cart id counted, the others
        returned in their order and counted as taken until they are written."""
        logged: list[Row] = []
        for n in range(1, len(self._buffer) + 1):
            try:  # (``record`` may drop the oldest meanwhile)
                row = self._buffer.popleft()
            except IndexError:
                break
            if row[2] is None:
                self._count(row)
            else:
                logged.append(row)
                self._taken += 1
            if n % YIELD_EVERY == 0:
                time.sleep(0)  # let the event loop answer requests meanwhile
        return logged

    def _count(self, row: Row) -> None:
        retailer_id, at, _, _, p_abandoned, abandoned, value, items, device, speed, _ = row
        key = (retailer_id, at.date())
        figures = self._counts.get(key)
        if figures is None:
            figures = self._counts[key] = tally.empty()
            self._first[key] = at
        figures["predictions"] += 1
        tally.count(figures, p_abandoned, abandoned, "without_cart_id", value, items, device, speed)

    def _trim(self) -> None:
        excess = len(self._buffer) - self._max
        for _ in range(max(0, excess)):
            self._buffer.popleft()
        if excess > 0:
            self._on_dropped(excess)


def _by_retailer(rows: list[Row]) -> list[list[int]]:
    """The rows' indices in batches of ``BATCH``, by retailer: each retailer's rows together,
    in their order, split over two batches only where a batch is full."""
    order = sorted(range(len(rows)), key=[row[0] for row in rows].__getitem__)
    return [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
