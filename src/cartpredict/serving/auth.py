"""API keys: who is calling, with which scopes, and may they act on this retailer?

Keys are random 256-bit tokens; only their SHA-256 is stored (a fast hash is right for
high-entropy secrets, and lets a lookup be a primary-key read).

A key found is cached with its scopes and expiry (``cache.py``) until its retailer's keys
change (a rotation or revocation here, or in another worker through ``sync.py``). A rotated
key's grace period ends by the clock, not by a change: its expiry is compared with the clock
at every use, the cached ones included.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cartpredict.core.clock import Clock
from cartpredict.core.errors import Unauthorized
from cartpredict.serving.cache import TenantCache
from cartpredict.serving.principal import OPERATOR, Principal
from cartpredict.storage import KeyStore

KEY_PREFIX = "cpk_"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized()
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized()
    return token


class Authenticator:
    def __init__(
        self, *, store: KeyStore, cache: TenantCache, operator_key: str | None, clock: Clock
    ) -> None:
        self._store = store
        self._cache = cache
        self._clock = clock
        self._operator_hash = hash_key(operator_key) if operator_key else None

    def cached(self, token: str) -> Principal | None:
        """The principal without touching the store, or None when the store must be asked."""
        key_hash = hash_key(token)
        if self._operator_hash and hmac.compare_digest(key_hash, self._operator_hash):
            return OPERATOR
        found = self._cache.principal_for_key(key_hash)
        if found is None or (found.expires_at is not None and not found.live(self._clock())):
            return None
        return found

    def lookup(self, token: str) -> Principal:
        """Ask the store (blocking); Unauthorized for an unknown, revoked or expired key."""
        key_hash = hash_key(token)
        epoch = self._cache.epoch
        key = self._store.api_key(key_hash=key_hash)
        if key is None or not key.live(self._clock()):
            raise Unauthorized()
        found = Principal.of(key)
        self._cache.put_key(key_hash, found, epoch=epoch)
        return found

    def key_live(self, key_id: str) -> bool:
        """Blocking: whether the key of this id still works (one indexed read), for what is
        tied to a key rather than sent with it, such as a session opened with it."""
        return self._store.key_live(key_id=key_id, at=self._clock())
