"""k-anonymity: counts shown only when they cover at least k carts (or none), so that neither
one figure nor the difference of two can single out fewer.

Two tools: ``merge_small`` groups consecutive items (bins of a curve) until each group holds k;
``suppress_small`` decides which parts of a group that is shown whole may be shown too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

K_ANONYMITY = 10  # every aggregate a retailer sees covers at least this many carts (not a setting)

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


def kept(count: int, k: int) -> bool:
    """A count that may be shown: no carts, or at least ``k``."""
    return count == 0 or count >= k


def suppress_small(parts: Sequence[int], k: int) -> list[int | None]:
    """The parts of a whole (which is shown) that may be shown with it; ``None`` for the rest.

    A part of 1 to k-1 carts is left out, and so is any part that would give it away: what is
    left out is the whole minus what is shown, so it must hold 0 or at least ``k`` too. When
    the parts left out hold fewer, the smallest shown parts (never a 0) join them until they
    reach ``k``. Then every figure an answer shows of the whole, and every sum of such
    figures over several wholes, is a sum of counts that are each 0 or at least ``k``.
    """
    shown: list[int | None] = [n if kept(n, k) else None for n in parts]
    hidden = sum(n for n, s in zip(parts, shown, strict=True) if s is None)
    for i in sorted(range(len(parts)), key=lambda i: parts[i]):
        if kept(hidden, k):
            break
        if shown[i]:
            shown[i] = None
            hidden += parts[i]
    return shown
