"""Threshold tables from validation scores: what lets serving set a retailer's operating point
for any ``precision_target`` without retraining (``models/thresholds.py`` reads them).

A table is a step function of precision against threshold, kept compact whatever the number
of validation rows:

* thresholds are on a fixed grid of P(abandoned) (``RESOLUTION``, 0.001): a threshold is a
  round number, never one cart's exact score, and a table has at most 1,000 candidate steps;
* consecutive steps are merged until each adds at least 1/``MAX_STEPS`` of the rows, so a
  table holds about ``MAX_STEPS`` steps (a recall resolution of about 1 %);
* the pooled table, over every member's validation carts, also merges until each step calls
  at least ``K_ANONYMITY`` carts more than the one above (carts none of whose snapshots the
  step above called; the top step calls as many), and is read only at
  precision targets on a grid of 0.01 (``POOLED_TARGET_GRID``). Whatever target a member sets,
  the threshold it gets is one of these steps, and two steps differ by at least 10 carts: the
  difference of any two answers is an aggregate over 10 carts at least, like every other
  figure a retailer sees of carts not its own.

The last step always calls every row abandoned (its precision is the abandonment rate), so a
target at or below that rate is met by it, as the operating point's rule says it must be.
"""

from __future__ import annotations

import math

import numpy as np

from cartpredict.models.thresholds import Step, ThresholdTable
from cartpredict.privacy.anonymity import K_ANONYMITY

RESOLUTION = 1000  # thresholds are multiples of 1/RESOLUTION
MAX_STEPS = 100
POOLED_TARGET_GRID = 0.01


def threshold_table(
    p_abandoned: np.ndarray,
    abandoned: np.ndarray,
    cart: np.ndarray,
    *,
    min_carts: int = 1,
    target_grid: float | None = None,
) -> ThresholdTable:
    """The table of validation rows scored ``p_abandoned`` (``abandoned``: their labels;
    ``cart``: an id per row, equal for the snapshots of one cart). Each step calls at least
    ``min_carts`` carts more than the one above (the top step that many)."""
    p = np.asarray(p_abandoned, dtype=float)
    y = np.asarray(abandoned).astype(bool)
    if p.size == 0:
        raise ValueError("a threshold table needs validation rows")
    order = np.argsort(-p, kind="stable")
    ranked, hits, carts = p[order], np.cumsum(y[order]), np.asarray(cart)[order]
    first = np.zeros(p.size, dtype=bool)  # each cart's first (highest) row
    first[np.unique(carts, return_index=True)[1]] = True
    distinct = np.cumsum(first)
    grid = np.floor(ranked * RESOLUTION)
    grid[grid / RESOLUTION > ranked] -= 1  # where p * RESOLUTION rounded up to a whole number
    candidates = np.unique(grid)[::-1] / RESOLUTION  # each at or below a row's score
    ascending = ranked[::-1]
    ends = p.size - np.searchsorted(ascending, candidates, side="left")  # rows >= threshold
    kept = _merged(ends, distinct, min_rows=math.ceil(p.size / MAX_STEPS), min_carts=min_carts)
    steps = tuple(
        Step(float(candidates[j]), int(ends[j]), int(hits[ends[j] - 1]),
             int(distinct[ends[j] - 1]))
        for j in kept
    )  # fmt: skip
    return ThresholdTable(steps, rows=int(p.size), abandoned=int(hits[-1]),
                          carts=int(distinct[-1]), target_grid=target_grid)  # fmt: skip


def pooled_threshold_table(
    p_abandoned: np.ndarray, abandoned: np.ndarray, cart: np.ndarray
) -> ThresholdTable:
    """Over every member's validation carts (``cart`` unique across members): steps at least
    ``K_ANONYMITY`` carts apart, read at targets on the 0.01 grid."""
    return threshold_table(p_abandoned, abandoned, cart, min_carts=K_ANONYMITY,
                           target_grid=POOLED_TARGET_GRID)  # fmt: skip


def _merged(ends: np.ndarray, distinct: np.ndarray, *, min_rows: int, min_carts: int) -> list[int]:
    """Indices of the candidate steps kept (by decreasing threshold: ``ends`` increasing, the
    last one every row; ``distinct``: distinct carts among the first n rows, at n - 1): a step
    is kept when, over the step kept before it, it calls at least ``min_rows`` more rows and
    ``min_carts`` more carts (carts none of whose rows were called before). The last candidate
    always is kept, and replaces the step kept before it when what it adds falls short: a
    remainder joins the step above, as ``privacy.anonymity.merge_small`` merges."""
    kept: list[int] = []
    rows, carts = 0, 0  # called by the last step kept
    for j, end in enumerate(ends):
        if end - rows >= min_rows and distinct[end - 1] - carts >= min_carts:
            kept.append(j)
            rows, carts = int(end), int(distinct[end - 1])
    last = len(ends) - 1
    if not kept or kept[-1] != last:
        if kept:
            kept.pop()
        kept.append(last)
    return kept
