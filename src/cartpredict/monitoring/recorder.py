"""The prediction log's writer: what the daily stats need, kept in memory and written in bulk.

Scoring a cart appends one tuple here. A prediction that names its cart (``cart_id``) becomes
a row of the prediction log: its outcome is known once the retailer's purchase events arrive.
One without has no outcome to wait for, so it is only counted, into figures per retailer and
day (``tally.py``), and never stored as a row of its own (data minimisation; it also saves the
database a row per prediction).

A background task (or, on Lambda, the next invocation once ``FLUSH_EVERY_S`` has passed) writes
both in one go. If the store is down, rows wait, up to ``MAX_BUFFERED``; past that the oldest
are dropped and counted, so an outage can never exhaust memory or slow serving. Counts always
wait (a few hundred bytes per retailer and day).
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
BATCH = 5_000  # rows per insert statement
YIELD_EVERY = 500  # rows counted between two offers of the GIL to the serving thread

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
        if len(self._buffer) > self._max:
            self._buffer.popleft()
            self._on_dropped(1)

    def __len__(self) -> int:
        """Predictions waiting to be written or counted."""
        return len(self._buffer)

    def flush(self, store: PredictionStore, *, counts_every_s: float = 0.0) -> int:
        """Count what carries no cart id, write the rest, and the counts unless they were
        written less than ``counts_every_s`` ago (a server writes them every
        ``COUNTS_EVERY_S``: one small write instead of one a second); return how many rows of
        the log were written. On failure, what was not written stays (rows in order, counts
        added up) and the error is raised."""
        written = 0
        with self._flushing:  # one flush at a time; recording goes on meanwhile
            while self._buffer:
                n = min(BATCH, len(self._buffer))
                rows = [self._buffer.popleft() for _ in range(n)]
                logged = [row for row in rows if row[2] is not None]
                for i, row in enumerate(rows):
                    if row[2] is None:
                        self._count(row)
                    if i % YIELD_EVERY == YIELD_EVERY - 1:
                        time.sleep(0)  # let the event loop answer requests meanwhile
                if not logged:
                    continue
                try:
                    store.add_scored_carts(carts=[ScoredCart(*row) for row in logged])
                except Exception:
                    self._buffer.extendleft(reversed(logged))
                    self._trim()
                    raise
                written += len(logged)
                self._on_written(len(logged))
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
