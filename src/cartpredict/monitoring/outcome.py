"""A scored cart's outcome, and when a day's figures are final.

A cart scored at *t* was *purchased* when the retailer sent a purchase of it in
(t − ``CLOCK_SKEW``, t + ``OUTCOME_WINDOW``], *abandoned* when the window closed without one, and
is *pending* until then. A day is final ``FINAL_AFTER`` after it ends: every outcome is in and
late events have had ``LATE_EVENTS`` to arrive, so its figures never change again.

The rollup counts by these rules (``rollup.py``), the stats show a day once final
(``stats.py``) and the experiment report compares its groups over the same window
(``experiment.py``): the rules live here, below all three.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta

from cartpredict.storage import ScoredCart

OUTCOME_WINDOW = timedelta(hours=24)
LATE_EVENTS = timedelta(hours=24)  # a purchase sent this late after its window still counts
FINAL_AFTER = OUTCOME_WINDOW + LATE_EVENTS  # after a day ends: final, never computed again
# A purchase stamped this much before the prediction still follows it: event times are often
# whole seconds, and the retailer's clock is not ours.
CLOCK_SKEW = timedelta(minutes=2)


def outcome(cart: ScoredCart, purchases: Mapping[str, Sequence[datetime]], as_of: datetime) -> str:
    """The cart's outcome at ``as_of`` against its served decision (``tally.OUTCOMES``): ``fp``
    or ``tn`` when purchased, ``tp`` or ``fn`` when abandoned, ``pending``, or
    ``without_cart_id``; ``purchases``: purchase times by cart id."""
    if cart.cart_id is None:
        return "without_cart_id"
    end = cart.at + OUTCOME_WINDOW
    purchased = any(cart.at - CLOCK_SKEW < at <= end for at in purchases.get(cart.cart_id, ()))
    if purchased:
        return "fp" if cart.abandoned else "tn"
    if end > as_of:
        return "pending"
    return "tp" if cart.abandoned else "fn"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)
