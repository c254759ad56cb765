"""The caller, as its key says: the operator, or one retailer's key with its scopes.

Made once per key and cached (``cache.py``) as it is, so the request path reads it and
allocates nothing: a scope check is one frozenset membership test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cartpredict.core.errors import Forbidden, MissingScope, RetailerNotFound
from cartpredict.core.scopes import ALL_SCOPES
from cartpredict.storage import ApiKey


@dataclass(frozen=True, slots=True)
class Principal:
    """The operator (``retailer_id`` None, every scope), or a key of one retailer: its public
    id, its scopes, and, while a rotation's grace period runs, when it stops working."""

    retailer_id: str | None
    scopes: frozenset[str] = ALL_SCOPES
    key_id: str | None = None
    expires_at: datetime | None = None

    @classmethod
    def of(cls, key: ApiKey) -> Principal:
        return cls(key.retailer_id, key.scopes, key.key_id, key.expires_at)

    @property
    def is_operator(self) -> bool:
        return self.retailer_id is None

    def live(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at

    def require_operator(self) -> None:
        if not self.is_operator:
            raise Forbidden()

    def require_access(self, retailer_id: str) -> None:
        """Another tenant's retailer looks exactly like one that does not exist."""
        if self.retailer_id is not None and self.retailer_id != retailer_id:
            raise RetailerNotFound()

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise MissingScope(scope)

    def require(self, retailer_id: str, scope: str) -> None:
        """May the caller do ``scope``'s work on this retailer? The retailer first: another
        tenant's is a 404 whatever the key's scopes, so that a 403 never tells that it exists."""
        self.require_access(retailer_id)
        self.require_scope(scope)


OPERATOR = Principal(retailer_id=None)
