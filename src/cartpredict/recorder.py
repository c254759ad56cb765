"""The prediction log's writer: predictions are buffered in memory and written in bulk.

Scoring a cart appends one tuple here (well under a microsecond); a background task (or, on
Lambda, the next invocation once ``FLUSH_EVERY_S`` has passed) writes the buffer in one
transaction. If the store is down the rows wait, up to ``MAX_BUFFERED``; past that the oldest
are dropped and counted, so an outage can never exhaust memory or slow serving.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime

from .storage import ScoredCart, Store

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 1.0
MAX_BUFFERED = 100_000
BATCH = 5_000  # rows per insert statement

Row = tuple[str, datetime, str | None, str, float, bool, float, int, str, str]


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
    ) -> None:
        self._buffer.append(
            (retailer_id, self._clock(), cart_id, model_version, p_abandoned, abandoned,
             cart_value, item_count, device_type, shipping_speed)
        )  # fmt: skip
        if len(self._buffer) > self._max:
            self._buffer.popleft()
            self._on_dropped(1)

    def __len__(self) -> int:
        return len(self._buffer)

    def flush(self, store: Store) -> int:
        """Write what is buffered; return how many rows were written. On failure, the rows
        not written stay buffered (in order) and the error is raised."""
        written = 0
        with self._flushing:  # one flush at a time; recording goes on meanwhile
            while self._buffer:
                n = min(BATCH, len(self._buffer))
                rows = [self._buffer.popleft() for _ in range(n)]
                try:
                    store.add_scored_carts(carts=[ScoredCart(*row) for row in rows])
                except Exception:
                    self._buffer.extendleft(reversed(rows))
                    self._trim()
                    raise
                written += n
                self._on_written(n)
        return written

    def _trim(self) -> None:
        excess = len(self._buffer) - self._max
        for _ in range(max(0, excess)):
            self._buffer.popleft()
        if excess > 0:
            self._on_dropped(excess)
