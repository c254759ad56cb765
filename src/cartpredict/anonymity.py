"""k-anonymity: groups too small to show are merged with their neighbours until each is not."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def merge_small(items: Sequence[T], size: Callable[[T], int], k: int) -> list[list[T]]:
    """Consecutive items grouped so that each group holds at least ``k``: a group closes as
    soon as it reaches ``k``; a remainder joins the group before it. Empty when all the items
    together hold fewer than ``k``."""
    groups: list[list[T]] = []
    current: list[T] = []
    held = 0
    for item in items:
        current.append(item)
        held += size(item)
        if held >= k:
            groups.append(current)
            current, held = [], 0
    if current:
        if not groups:
            return []
        groups[-1].extend(current)
    return groups
