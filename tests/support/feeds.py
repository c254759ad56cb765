"""Waiting for an in-process app's change feed, instead of sleeping for a few of its intervals."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest

from cartpredict.storage import Change


def await_a_feed_poll(
    monkeypatch: pytest.MonkeyPatch, store: Any, *, within_s: float = 10.0
) -> None:
    """Return once the app's change feed has been polled from start to end after this call:
    its second read of ``store`` since has begun (a poll starts when the last one is over).
    ``monkeypatch.undo()`` takes the counting off the store again."""
    real = store.changes_after
    reads = [0]

    def changes_after(*, seq: int) -> Sequence[Change]:
        reads[0] += 1
        return real(seq=seq)

    monkeypatch.setattr(store, "changes_after", changes_after)
    deadline = time.monotonic() + within_s
    while reads[0] < 2:
        assert time.monotonic() < deadline, f"the change feed was not polled within {within_s}s"
        time.sleep(0.01)
