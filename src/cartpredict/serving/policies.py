"""A retailer's recovery policy in force (the one it set, or the default in its currency), and
the secret that assigns its carts to groups."""

from __future__ import annotations

from dataclasses import replace

from cartpredict.decisions.policy import DEFAULT_POLICY, RecoveryPolicy
from cartpredict.serving import currency
from cartpredict.storage import Retailer


def default_policy(code: str) -> RecoveryPolicy:
    """:data:`DEFAULT_POLICY`, its costs (set in US dollars) converted to ``code`` with the
    dated rate table; free, in a currency the table does not hold (set the costs then)."""
    if code == "USD":
        return DEFAULT_POLICY
    known = currency.known(code)
    return replace(
        DEFAULT_POLICY,
        actions=tuple(
            replace(a, cost=currency.from_usd(a.cost, code) if known else 0.0)
            for a in DEFAULT_POLICY.actions
        ),
    )


def policy_of(retailer: Retailer) -> RecoveryPolicy:
    if retailer.recovery_policy is None:
        return default_policy(retailer.currency)
    return RecoveryPolicy.from_dict(retailer.recovery_policy)


def salt_of(retailer: Retailer) -> bytes:
    """The secret that assigns the retailer's carts to groups (every stored retailer has a
    random one; a record made in memory may have none, and then uses its id)."""
    return (retailer.assignment_salt or retailer.retailer_id).encode()
