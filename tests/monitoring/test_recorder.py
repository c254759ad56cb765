"""The prediction log's writer: each retailer's rows written together, once per flush; an
outage anywhere in a flush loses no row and writes none twice; the bound counts the rows being
written; a flush takes the rows waiting when it starts and leaves those that come meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cartpredict.monitoring import recorder as module
from cartpredict.monitoring.recorder import PredictionRecorder

DAY0 = datetime(2026, 3, 2, 10, tzinfo=UTC)


class Store:
    """Records each write; fails the writes whose numbers are in ``failing``."""

    def __init__(self, *, failing: set[int] | None = None) -> None:
        self.writes: list[list[Any]] = []
        self.failing = failing or set()
        self.calls = 0
        self.during_write: list[Any] = []  # called back inside each write

    def add_scored_carts(self, *, carts: Any) -> None:
        self.calls += 1
        for hook in self.during_write:
            hook()
        if self.calls in self.failing:
            raise ConnectionError("store down")
        self.writes.append(list(carts))

    def add_prediction_counts(self, *, counts: Any, at: Any) -> None:
        pass

    def rows(self) -> list[tuple[str, str | None]]:
        return [(c.retailer_id, c.cart_id) for write in self.writes for c in write]


def record(recorder: PredictionRecorder, retailer_id: str, cart_id: str | None) -> None:
    recorder.record(retailer_id, cart_id, "v", 0.5, True, 10.0, 1, "mobile", "standard")


def test_a_flush_writes_each_retailers_rows_together_and_in_their_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(module, "BATCH", 4)
    recorder = PredictionRecorder(lambda: DAY0)
    sent = [(f"r{i % 3}", f"c{i}") for i in range(10)]
    for rid, cid in sent:
        record(recorder, rid, cid)
    store = Store()
    assert recorder.flush(store) == 10  # type: ignore[arg-type]
    assert store.rows() == sorted(sent, key=lambda row: row[0])  # stable: each in its order
    assert [len(w) for w in store.writes] == [4, 4, 2]  # BATCH rows a write
    assert len(recorder) == 0


@given(
    retailers=st.lists(st.sampled_from("abcde"), min_size=1, max_size=40),
    batch=st.integers(1, 7),
    failing=st.sets(st.integers(1, 12), max_size=3),
)
def test_failed_writes_lose_no_row_and_write_none_twice(
    retailers: list[str], batch: int, failing: set[int]
) -> None:
    original = module.BATCH
    module.BATCH = batch
    try:
        recorder = PredictionRecorder(lambda: DAY0)
        sent = [(rid, f"c{i}") for i, rid in enumerate(retailers)]
        for rid, cid in sent:
            record(recorder, rid, cid)
        store = Store(failing=failing)
        written = 0
        for _ in range(len(failing) + 1):
            try:
                written += recorder.flush(store)  # type: ignore[arg-type]
            except ConnectionError:
                # What was not written waits, in the order it came.
                waiting = [(r[0], r[2]) for r in recorder._buffer]
                done = set(store.rows())
                assert waiting == [row for row in sent if row not in done]
                assert len(recorder) == len(waiting)
        assert sorted(store.rows()) == sorted(sent)  # every row once
        assert len(store.rows()) == len(sent)
        assert len(recorder) == 0
    finally:
        module.BATCH = original


def test_the_bound_counts_the_rows_being_written() -> None:
    dropped: list[int] = []
    recorder = PredictionRecorder(lambda: DAY0, max_buffered=5, on_dropped=dropped.append)
    for i in range(4):
        record(recorder, "r", f"c{i}")
    store = Store(failing={1})
    # While the 4 are being written, 3 more come: 7 > 5, so the 2 oldest waiting go.
    store.during_write.append(lambda: [record(recorder, "r", f"n{i}") for i in range(3)])
    with pytest.raises(ConnectionError):
        recorder.flush(store)  # type: ignore[arg-type]
    assert len(recorder) == 5 and sum(dropped) == 2
    store.during_write.clear()
    assert recorder.flush(store) == 5  # type: ignore[arg-type]
    assert [cid for _, cid in store.rows()] == ["c0", "c1", "c2", "c3", "n2"]


def test_rows_recorded_during_a_flush_wait_for_the_next() -> None:
    recorder = PredictionRecorder(lambda: DAY0)
    record(recorder, "r", "c0")
    record(recorder, "r", None)  # counted, not logged
    store = Store()
    store.during_write.append(lambda: record(recorder, "r", "later"))
    assert recorder.flush(store) == 1  # type: ignore[arg-type]
    assert store.rows() == [("r", "c0")]
    assert len(recorder) == 1  # the one recorded meanwhile: the next flush's
    store.during_write.clear()
    assert recorder.flush(store) == 1  # type: ignore[arg-type]
    assert store.rows() == [("r", "c0"), ("r", "later")]
