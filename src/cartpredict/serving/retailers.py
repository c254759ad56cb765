"""Retailers as the operator manages them: onboarding, changes, erasure (their keys:
``keys.py``); and what a retailer's configuration allows in a cart.

Callers have already decided the caller may act on the retailer (see ``auth.Principal``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from cartpredict.core import currency
from cartpredict.core.clock import Clock
from cartpredict.core.errors import InvalidInput, RetailerExists, RetailerNotFound
from cartpredict.decisions.policy import default_policy
from cartpredict.serving.auth import hash_key, new_api_key
from cartpredict.serving.principal import Principal
from cartpredict.serving.schemas import RetailerCreate, days_problems
from cartpredict.serving.sync import Notifier
from cartpredict.serving.tenants import Tenants
from cartpredict.storage import DuplicateRetailer, RegistryStore, Retailer, RetailerStore


def retailer_record(spec: RetailerCreate, now: datetime) -> Retailer:
    policy = (
        default_policy(spec.currency).to_dict()
        if spec.recovery_policy is None
        else spec.recovery_policy.to_plain()
    )
    return Retailer(
        retailer_id=spec.retailer_id,
        requires_account=spec.requires_account,
        payment_options=tuple(spec.payment_options),
        shipping_speeds=tuple(spec.shipping_speeds),
        pooled_learning=spec.pooled_learning,
        precision_target=spec.precision_target,
        created_at=now,
        last_updated=now,
        attributes=tuple((a.name, a.kind.value) for a in spec.attributes),
        shipping_days=tuple(spec.shipping_days.items()),
        currency=spec.currency,
        baseline_threshold=spec.baseline_threshold
        or currency.from_usd(currency.BASELINE_USD, spec.currency),
        typical_cart_value=spec.typical_cart_value
        or currency.from_usd(currency.TYPICAL_CART_USD, spec.currency),
        recovery_policy=policy,
        policy_version=1,
        assignment_salt=secrets.token_hex(16),
    )


class RetailerAdminStore(RetailerStore, RegistryStore, Protocol):
    """Onboarding, changing and erasing retailers."""


class RetailerService:
    def __init__(
        self, *, store: RetailerAdminStore, tenants: Tenants, notifier: Notifier, clock: Clock
    ) -> None:
        self._store = store
        self._tenants = tenants
        self._notifier = notifier
        self._clock = clock

    def create(self, spec: RetailerCreate) -> tuple[Retailer, str]:
        """The new retailer and its API key, which is returned here and never again."""
        retailer = retailer_record(spec, self._clock())
        key = new_api_key()
        try:
            self._store.create_retailer(retailer=retailer, key_hash=hash_key(key))
        except DuplicateRetailer:
            raise RetailerExists() from None
        self._notifier.changed(retailer.retailer_id)
        return retailer, key

    def get(self, retailer_id: str) -> Retailer:
        return self._tenants.load(retailer_id).retailer

    def update(
        self, retailer_id: str, changes: Mapping[str, Any], *, by: Principal | None = None
    ) -> Retailer:
        """Apply the changes, recorded as made by ``by``'s key (None: the operator). New custom
        attributes retire the retailer's own model (it was trained on the old ones): the pooled
        model or the baseline serves until it retrains."""
        values = dict(changes)
        now = self._clock()
        before = self._store.get_retailer(retailer_id=retailer_id)
        if before is not None:
            speeds = values.get("shipping_speeds", before.shipping_speeds)
            days = values.get("shipping_days", dict(before.shipping_days))
            problems = days_problems(speeds, days)
            if problems:
                raise InvalidInput(
                    f"{problems[0]['field']}: {problems[0]['reason']} (after this change); "
                    "nothing was changed",
                    details=problems,
                )
        retailer = self._store.update_retailer(
            retailer_id=retailer_id, changes=values, updated_at=now,
            key_id=None if by is None else by.key_id,
        )  # fmt: skip
        if retailer is None or before is None:
            raise RetailerNotFound()
        if retailer.attributes != before.attributes:
            self._store.retire_served(scope=retailer_id, at=now)
        self._notifier.changed(retailer_id)
        return retailer

    def delete(self, retailer_id: str) -> None:
        if not self._store.delete_retailer(retailer_id=retailer_id, at=self._clock()):
            raise RetailerNotFound()
        self._notifier.changed(retailer_id)


def cart_problems(retailer: Retailer, cart: Any, prefix: str = "") -> list[dict[str, str]]:
    """What in a cart (request or event) the retailer's configuration does not allow."""
    problems: list[dict[str, str]] = []
    speed = str(cart.shipping_speed)
    if speed not in retailer.shipping_speeds:
        offered = ", ".join(retailer.shipping_speeds)
        problems.append(
            {
                "field": f"{prefix}shipping_speed",
                "reason": f"'{speed}' is not offered by this retailer (offered: {offered})",
            }
        )
    if not cart.attributes:
        return problems
    kinds = retailer.attribute_kinds()
    for name, value in cart.attributes.items():
        field = f"{prefix}attributes.{name}"
        kind = kinds.get(name)
        if kind is None:
            problems.append({"field": field, "reason": "not an attribute this retailer declared"})
        elif kind == "numeric" and isinstance(value, str):
            problems.append({"field": field, "reason": "declared numeric: send a number"})
        elif kind == "categorical" and not isinstance(value, str):
            problems.append({"field": field, "reason": "declared categorical: send a string"})
    return problems
