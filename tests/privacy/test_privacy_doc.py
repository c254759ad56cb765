"""docs/privacy.md states what the code does: its inventory lists every stored field, and its
retention, k-anonymity and buffering figures are the code's constants."""

from __future__ import annotations

import re
from pathlib import Path

from cartpredict.core.settings import MAX_AGGREGATE_RETENTION_DAYS, MAX_RAW_RETENTION_DAYS
from cartpredict.learning.training import MIN_CARTS
from cartpredict.monitoring import recorder
from cartpredict.privacy.anonymity import K_ANONYMITY
from cartpredict.serving import sync
from cartpredict.storage.tables import AGGREGATE_TABLES, RAW_TABLES, changes, metadata

DOC = (Path(__file__).parents[2] / "docs" / "privacy.md").read_text()
PROSE = " ".join(DOC.split())  # line breaks do not matter to a phrase


def inventory() -> dict[tuple[str, str], str]:
    """(table, field) -> the *Kept* cell, from the data inventory."""
    rows: dict[tuple[str, str], str] = {}
    for line in DOC.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in metadata.tables:
            assert (cells[0], cells[1]) not in rows, f"listed twice: {cells[:2]}"
            rows[(cells[0], cells[1])] = cells[3]
    return rows


def test_the_inventory_lists_every_stored_field_and_nothing_else() -> None:
    stored = {(t.name, c.name) for t in metadata.tables.values() for c in t.columns}
    assert set(inventory()) == stored


def test_retention_in_the_inventory_is_the_codes() -> None:
    kept = inventory()
    for (table, field), cell in kept.items():
        if table in {t.name for t in RAW_TABLES}:
            assert cell.startswith(f"raw: {MAX_RAW_RETENTION_DAYS} days"), (table, field)
        elif table in {t.name for t in AGGREGATE_TABLES}:
            assert cell.startswith(f"aggregate: {MAX_AGGREGATE_RETENTION_DAYS} days"), (
                table,
                field,
            )
        else:
            assert "days" not in cell, (table, field)
    feed_hours = sync.FEED_RETENTION.total_seconds() / 3600
    assert {kept[(changes.name, c.name)] for c in changes.columns} == {f"{feed_hours:g} hour"}


def test_the_promises_quote_the_codes_figures() -> None:
    assert (
        f"**Raw, row-level data is deleted {MAX_RAW_RETENTION_DAYS} days after it was received**"
        in PROSE
    )
    assert (
        f"**Aggregates are deleted {MAX_AGGREGATE_RETENTION_DAYS} days after they were made**"
        in PROSE
    )
    assert f"covers at least {K_ANONYMITY} carts** (k-anonymity, k = {K_ANONYMITY})" in PROSE
    days = {int(n) for n in re.findall(r"(\d+) days", DOC)}
    assert days == {MAX_RAW_RETENTION_DAYS, MAX_AGGREGATE_RETENTION_DAYS}
    assert f"at least {K_ANONYMITY} test carts" in PROSE
    assert f"({MIN_CARTS} training carts)" in PROSE
    every = "every second" if recorder.FLUSH_EVERY_S == 1 else f"every {recorder.FLUSH_EVERY_S} s"
    assert f"written {every}; at most {recorder.MAX_BUFFERED:,} rows" in PROSE
