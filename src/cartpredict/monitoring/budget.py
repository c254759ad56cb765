"""The budget's cut-off: under ``max_action_share``, act only on carts whose expected gain is
in the top share of the retailer's recent decisions.

At each stats rollup, for every retailer whose policy sets ``max_action_share`` = s, the
cut-off is the (1 − s) quantile of the expected gains of its decisions over the last
``WINDOW`` (carts where no action would gain count as 0), from the decisions made under the
policy version now in force. Decisions below it get ``reason: budget``. With fewer than
``MIN_DECISIONS`` such decisions, or a cut-off that is not positive (fewer carts gain than the
budget allows), there is none. Each change reaches every worker through the change feed.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Protocol

from cartpredict.decisions.policy import RecoveryPolicy
from cartpredict.storage import PredictionStore, RetailerStore

WINDOW = timedelta(days=7)
MIN_DECISIONS = 100


class BudgetStore(PredictionStore, RetailerStore, Protocol):
    """Retailers' policies, their logged decisions, the cut-offs."""


def cutoff_of(gains: list[float], share: float) -> float | None:
    """The least gain among the top ``share`` of ``gains`` (None when there is no cut)."""
    if len(gains) < MIN_DECISIONS:
        return None
    ordered = sorted(gains, reverse=True)
    kept = max(1, math.floor(share * len(ordered)))
    cut = ordered[kept - 1]
    return cut if cut > 0 else None


def update_cutoffs(store: BudgetStore, *, as_of: datetime) -> int:
    """Recompute every retailer's cut-off; return how many retailers have one."""
    with_cutoff = 0
    for retailer in store.list_retailers():
        share = None
        if retailer.recovery_policy is not None:
            share = RecoveryPolicy.from_dict(retailer.recovery_policy).max_action_share
        cutoff = None
        if share is not None:
            logged = store.scored_carts(
                retailer_id=retailer.retailer_id, start=as_of - WINDOW, end=as_of
            )
            gains = [
                c.decision.expected_gain
                for c in logged
                if c.decision is not None and c.decision.policy_version == retailer.policy_version
            ]
            cutoff = cutoff_of(gains, share)
        current = store.budget_cutoff(retailer_id=retailer.retailer_id)
        wanted = None if cutoff is None else (retailer.policy_version, cutoff)
        if current != wanted:  # (most rollups change nothing: a read each, not a write)
            store.set_budget_cutoff(
                retailer_id=retailer.retailer_id,
                policy_version=retailer.policy_version,
                cutoff=cutoff,
                at=as_of,
            )
        with_cutoff += cutoff is not None
    return with_cutoff
