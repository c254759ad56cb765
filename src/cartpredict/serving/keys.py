"""A retailer's API keys: listed, issued (beside the others, or instead of all of them),
rotated with a grace period, revoked one at a time.

Callers have already decided that the caller may manage the retailer (``api/deps.py``). What
only the keys tell is checked here: a key grants at most the scopes it has itself, so no key
made or rotated by a retailer's key can do more than the key that made it.

A rotation gives the key a new id as well as a new secret. An id names one secret: the old one
lives on under its own id until its grace period ends, beside its successor of the same name
and scopes, and whatever is tied to the old id (a session opened with the old secret) ends
with it, on time, without knowing of rotations.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cartpredict.core.clock import Clock
from cartpredict.core.errors import Conflict, KeyNotFound, MissingScope, RetailerNotFound
from cartpredict.core.scopes import (
    ALL_SCOPES,
    DEFAULT_KEY_NAME,
    KEY_ID_PATTERN,
    MAX_GRACE,
    in_order,
    new_key_id,
)
from cartpredict.serving.auth import hash_key, new_api_key
from cartpredict.serving.sync import Notifier
from cartpredict.storage import (
    ApiKey,
    DuplicateKeyName,
    KeyAlreadyRotated,
    KeyStore,
    NoSuchRetailer,
)

_KEY_ID = re.compile(KEY_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just made, with its secret: returned once, never stored."""

    key: ApiKey
    secret: str


class KeyService:
    def __init__(self, *, store: KeyStore, notifier: Notifier, clock: Clock) -> None:
        self._store = store
        self._notifier = notifier
        self._clock = clock

    def keys_of(self, retailer_id: str) -> Sequence[ApiKey]:
        """The retailer's live keys, oldest first."""
        found = self._store.api_keys(retailer_id=retailer_id, at=self._clock())
        if found is None:
            raise RetailerNotFound()
        return found

    def replace_all(self, retailer_id: str, *, granter: Collection[str] = ALL_SCOPES) -> IssuedKey:
        """Revoke every key of the retailer and issue its "default" key, with every scope, at
        once: after concurrent replacements only the last one's key works."""
        return self.issue(
            retailer_id, name=DEFAULT_KEY_NAME, scopes=ALL_SCOPES, replace=True, granter=granter
        )

    def issue(
        self,
        retailer_id: str,
        *,
        name: str,
        scopes: Collection[str],
        replace: bool = False,
        granter: Collection[str] = ALL_SCOPES,
    ) -> IssuedKey:
        """A new key beside the retailer's others (``replace``: instead of all of them)."""
        _may_grant(granter, scopes)
        secret = new_api_key()
        key = ApiKey(new_key_id(), retailer_id, name, frozenset(scopes), self._clock())
        try:
            added = self._store.add_api_key(key=key, key_hash=hash_key(secret), replace=replace)
        except DuplicateKeyName:
            raise Conflict(
                f"name: a live key of this retailer is named '{name}' already: revoke or rotate "
                "it, or choose another name",
                details=[{"field": "name", "reason": f"'{name}' is taken"}],
            ) from None
        if not added:
            raise RetailerNotFound()
        self._notifier.changed(retailer_id)
        return IssuedKey(key, secret)

    def rotate(
        self,
        retailer_id: str,
        key_id: str,
        *,
        grace: timedelta = timedelta(0),
        granter: Collection[str] = ALL_SCOPES,
    ) -> tuple[IssuedKey, datetime]:
        """A new secret, under a new key id, for the key's name and scopes; the old secret
        keeps working for ``grace`` (zero: it is revoked at once). Returns the new key and when
        the old one stops working."""
        if not timedelta(0) <= grace <= MAX_GRACE:
            raise ValueError(f"grace {grace} is not within 0 and {MAX_GRACE}")
        self._check_id(retailer_id, key_id)
        current = next((k for k in self.keys_of(retailer_id) if k.key_id == key_id), None)
        if current is None:
            raise KeyNotFound()
        _may_grant(granter, current.scopes)  # (a key's scopes never change)
        now = self._clock()
        secret = new_api_key()
        try:
            successor = self._store.rotate_api_key(
                retailer_id=retailer_id,
                key_id=key_id,
                new_key_id=new_key_id(),
                key_hash=hash_key(secret),
                at=now,
                expires_at=now + grace,
            )
        except NoSuchRetailer:
            raise RetailerNotFound() from None
        except KeyAlreadyRotated as exc:
            raise Conflict(
                f"This key was rotated already and works until {exc.expires_at.isoformat()}: "
                "rotate the key that replaced it (the live key of the same name)."
            ) from None
        if successor is None:
            raise KeyNotFound()
        self._notifier.changed(retailer_id)
        return IssuedKey(successor, secret), now + grace

    def revoke(self, retailer_id: str, key_id: str) -> None:
        """Revoke one key: it stops working in this worker at once, in every other one within
        the bound that applies to every change (``sync.py``)."""
        self._check_id(retailer_id, key_id)
        try:
            revoked = self._store.revoke_api_key(
                retailer_id=retailer_id, key_id=key_id, at=self._clock()
            )
        except NoSuchRetailer:
            raise RetailerNotFound() from None
        if not revoked:
            raise KeyNotFound()
        self._notifier.changed(retailer_id)

    def _check_id(self, retailer_id: str, key_id: str) -> None:
        """An id no key can have is no key's, answered before the store sees it (PostgreSQL
        refuses a NUL), but after the retailer: RetailerNotFound comes first."""
        if not _KEY_ID.fullmatch(key_id):
            self.keys_of(retailer_id)
            raise KeyNotFound()


def _may_grant(granter: Collection[str], scopes: Collection[str]) -> None:
    """A key grants only scopes it has (the operator has them all)."""
    missing = frozenset(scopes) - frozenset(granter)
    if missing:
        raise MissingScope(*in_order(missing), granting=True)
