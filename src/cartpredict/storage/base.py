"""The storage interface every backend implements, and the records it exchanges.

Every method that touches tenant data takes the retailer id and scopes its queries by it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..clock import rfc3339


@dataclass(frozen=True, slots=True)
class Retailer:
    retailer_id: str
    requires_account: bool
    payment_options: tuple[str, ...]
    shipping_speeds: tuple[str, ...]
    pooled_learning: bool
    precision_target: float
    created_at: datetime
    last_updated: datetime

    def public(self) -> dict[str, Any]:
        """The fields ``POST /retailer`` takes, plus ``last_updated`` (RFC 3339, UTC)."""
        return {
            "retailer_id": self.retailer_id,
            "requires_account": self.requires_account,
            "payment_options": list(self.payment_options),
            "shipping_speeds": list(self.shipping_speeds),
            "pooled_learning": self.pooled_learning,
            "precision_target": self.precision_target,
            "last_updated": rfc3339(self.last_updated),
        }


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed: something cached for ``retailer_id`` is stale."""

    seq: int
    retailer_id: str


class Store(Protocol):
    """Persistence for the service. Writes that change what serving caches append a Change."""

    def ping(self) -> None:
        """Raise if the store cannot answer."""

    def schema_revision(self) -> str | None: ...

    def close(self) -> None: ...

    # retailers
    def create_retailer(self, *, retailer: Retailer, key_hash: str) -> None:
        """Insert the retailer with its first API key; RetailerExists on a duplicate id."""

    def get_retailer(self, *, retailer_id: str) -> Retailer | None: ...

    def update_retailer(
        self, *, retailer_id: str, changes: Mapping[str, Any], updated_at: datetime
    ) -> Retailer | None: ...

    def delete_retailer(self, *, retailer_id: str, at: datetime) -> bool:
        """Erase every row of the retailer; False when there was none."""

    # API keys (hashes only)
    def add_api_key(self, *, retailer_id: str, key_hash: str, created_at: datetime) -> bool:
        """False when the retailer does not exist."""

    def revoke_api_keys(self, *, retailer_id: str, at: datetime) -> int: ...

    def retailer_for_key(self, *, key_hash: str) -> str | None: ...

    # change feed
    def changes_after(self, *, seq: int) -> Sequence[Change]: ...

    def last_change_seq(self) -> int: ...

    def prune_changes(self, *, before: datetime) -> int: ...
