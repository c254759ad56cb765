"""A retailer's recovery policy in force (the one it set, or the default in its currency), and
the secret that assigns its carts to groups."""

from __future__ import annotations

from cartpredict.decisions.policy import RecoveryPolicy, in_force
from cartpredict.storage import Retailer


def policy_of(retailer: Retailer) -> RecoveryPolicy:
    return in_force(retailer.recovery_policy, retailer.currency)


def salt_of(retailer: Retailer) -> bytes:
    """The secret that assigns the retailer's carts to groups (every stored retailer has a
    random one; a record made in memory may have none, and then uses its id)."""
    return (retailer.assignment_salt or retailer.retailer_id).encode()
