"""A deadline for the store calls of one request, so that a failure answer tells the truth.

A request gives the store ``store_timeout_s`` to answer. The store itself must give up
*before* the request does, or a write could commit after the client was told it failed. So the
worker thread that runs a request's store calls carries a ``Deadline`` (``within``), set a
margin earlier than the request's own; the store bounds every transaction by it (PostgreSQL's
``statement_timeout`` and ``lock_timeout``, SQLite's busy timeout) and never starts a commit once
it has passed. The request and the thread then settle, under one lock, which of two things
happened when the request stops waiting:

* the thread had not begun to commit anything: it never will (``abandon``), and the answer can
  say that nothing was written;
* it had (a commit was under way, or an earlier transaction of the same call committed): the
  answer says the change may have been applied.

Outside a request (the CLI, background jobs) there is no deadline and nothing changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

# The store gives up this share of the request's time before the request does (at most 1 s):
# room for the last statement to fail and roll back before the answer is sent.
MARGIN_SHARE = 0.2
MAX_MARGIN_S = 1.0


class DeadlineExceeded(Exception):
    """The store gave up before the request's deadline; nothing of the transaction was
    written."""


class Deadline:
    def __init__(self, seconds: float) -> None:
        margin = min(MAX_MARGIN_S, seconds * MARGIN_SHARE)
        self.expires = time.monotonic() + seconds - margin
        self._lock = threading.Lock()
        self._abandoned = False
        self.committing = False  # a commit was under way when the request stopped waiting
        self.committed = False  # a transaction of this call committed, or may have

    def remaining_ms(self) -> int:
        """Milliseconds left, at least 1; DeadlineExceeded once none are."""
        left = self.expires - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("the store did not answer before the request's deadline")
        return max(1, int(left * 1000))

    @contextmanager
    def commit(self) -> Iterator[None]:
        """Around a COMMIT: refused once the deadline has passed or the request gave up."""
        with self._lock:
            if self._abandoned:
                raise DeadlineExceeded("the request stopped waiting: not committed")
            self.remaining_ms()
            self.committing = True
        try:
            yield
        finally:
            with self._lock:  # done, or failed midway: applied, or may have been all the same
                self.committed = True
                self.committing = False

    def abandon(self) -> bool:
        """The request stops waiting: no commit may start after this. True when something
        may have been written (a commit under way, or one done)."""
        with self._lock:
            self._abandoned = True
            return self.committing or self.committed


_current: ContextVar[Deadline | None] = ContextVar("cartpredict_store_deadline", default=None)


def current() -> Deadline | None:
    return _current.get()


def within(deadline: Deadline, work: Callable[[], T]) -> T:
    """Run ``work`` (in the worker thread) with store calls bound by ``deadline``."""
    token = _current.set(deadline)
    try:
        return work()
    finally:
        _current.reset(token)
