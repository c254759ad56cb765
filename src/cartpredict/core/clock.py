"""Time in one place, so tests can control it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """``2025-09-14T10:45:00Z`` (UTC, no sub-second digits when there are none)."""
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")
