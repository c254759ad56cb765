"""API keys: who is calling, and may they act on this retailer?

Keys are random 256-bit tokens; only their SHA-256 is stored (a fast hash is right for
high-entropy secrets, and lets a lookup be a primary-key read).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cartpredict.core.errors import Forbidden, RetailerNotFound, Unauthorized
from cartpredict.serving.cache import TenantCache
from cartpredict.storage import KeyStore

KEY_PREFIX = "cpk_"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: the operator (``retailer_id`` None) or one retailer."""

    retailer_id: str | None

    @property
    def is_operator(self) -> bool:
        return self.retailer_id is None

    def require_operator(self) -> None:
        if not self.is_operator:
            raise Forbidden()

    def require_access(self, retailer_id: str) -> None:
        """Another tenant's retailer looks exactly like one that does not exist."""
        if self.retailer_id is not None and self.retailer_id != retailer_id:
            raise RetailerNotFound()


OPERATOR = Principal(retailer_id=None)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized()
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized()
    return token


class Authenticator:
    def __init__(self, *, store: KeyStore, cache: TenantCache, operator_key: str | None) -> None:
        self._store = store
        self._cache = cache
        self._operator_hash = hash_key(operator_key) if operator_key else None

    def cached(self, token: str) -> Principal | None:
        """The principal without touching the store, or None when the store must be asked."""
        key_hash = hash_key(token)
        if self._operator_hash and hmac.compare_digest(key_hash, self._operator_hash):
            return OPERATOR
        retailer_id = self._cache.retailer_for_key(key_hash)
        return Principal(retailer_id) if retailer_id else None

    def lookup(self, token: str) -> Principal:
        """Ask the store (blocking); Unauthorized for an unknown key."""
        key_hash = hash_key(token)
        epoch = self._cache.epoch
        retailer_id = self._store.retailer_for_key(key_hash=key_hash)
        if retailer_id is None:
            raise Unauthorized()
        self._cache.put_key(key_hash, retailer_id, epoch=epoch)
        return Principal(retailer_id)
