"""The dashboard's sessions: a person signs in with an API key that may read (or the operator
key) and gets a session, held server-side, that the browser names by a random secret.

* The secret (256 random bits) lives in the browser's cookie alone; the store keeps its SHA-256
  with the retailer, the key it was opened with and when it ends, so a copy of the database
  opens no session, and every worker sees the same sessions.
* A session is only as good as its key, checked at every use: the key must still be live and
  not rotated (a rotation's grace period is for deployed systems; a person signs in again
  with the new key), and must still have the ``read`` scope. A revoked or rotated key ends its
  sessions at their next request, in every worker, since the check reads the store. An
  operator session ends when the operator key changes.
* The CSRF token of a session is an HMAC of its secret: the page carries it in every form, a
  form posted from elsewhere cannot know it, and it reveals nothing of the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cartpredict.core.clock import Clock
from cartpredict.core.errors import Unauthorized
from cartpredict.core.scopes import Scope
from cartpredict.serving.auth import Authenticator, hash_key
from cartpredict.serving.principal import OPERATOR, Principal
from cartpredict.storage import AppSession, KeyStore, SessionStore

LIFETIME = timedelta(hours=8)


class SessionKeyStore(SessionStore, KeyStore, Protocol):
    """Sessions, and the keys they were opened with."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who a session's requests act as, for how long, and its forms' CSRF token."""

    principal: Principal
    key_name: str | None  # None: the operator
    expires_at: datetime
    csrf: str

    @property
    def may_manage(self) -> bool:
        return Scope.manage.value in self.principal.scopes


def csrf_token(secret: str) -> str:
    return hmac.new(secret.encode(), b"cartpredict dashboard form", hashlib.sha256).hexdigest()


def csrf_ok(secret: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(csrf_token(secret), given)


class SessionService:
    def __init__(
        self,
        *,
        store: SessionKeyStore,
        auth: Authenticator,
        operator_key: str | None,
        clock: Clock,
        lifetime: timedelta = LIFETIME,
    ) -> None:
        self._store = store
        self._auth = auth
        self._clock = clock
        self._lifetime = lifetime
        # Names the operator key a session was opened with, without keeping it: a session of
        # another operator key (the service restarted with a new one) is no session.
        self._operator = (
            "op_" + hashlib.sha256(b"session:" + hash_key(operator_key).encode()).hexdigest()[:12]
            if operator_key
            else None
        )

    def open(self, token: str) -> tuple[str, SignedIn]:
        """Blocking. A new session for the key ``token``: its secret (for the cookie) and who
        it signs in. Unauthorized for a key that does not work, MissingScope for one that may
        not read."""
        caller = self._auth.cached(token) or self._auth.lookup(token)
        caller.require_scope(Scope.read)
        key_id = self._operator if caller.is_operator else caller.key_id
        if key_id is None:
            raise Unauthorized()
        secret = secrets.token_urlsafe(32)
        now = self._clock()
        session = AppSession(caller.retailer_id, key_id, now, now + self._lifetime)
        if not self._store.add_app_session(session_hash=hash_key(secret), session=session):
            raise Unauthorized()  # (its retailer erased meanwhile)
        found = self.resolve(secret)
        if found is None:
            raise Unauthorized()  # (its key revoked meanwhile)
        return secret, found

    def resolve(self, secret: str) -> SignedIn | None:
        """Blocking. Who the session of this secret signs in; None when there is none, it
        has ended, or its key no longer works (then it is deleted)."""
        session_hash = hash_key(secret)
        now = self._clock()
        session = self._store.app_session(session_hash=session_hash, at=now)
        if session is None:
            return None
        found = self._signed_in(session, now)
        if found is None:
            self._store.delete_app_session(session_hash=session_hash)
            return None
        principal, name = found
        return SignedIn(principal, name, session.expires_at, csrf_token(secret))

    def _signed_in(self, session: AppSession, now: datetime) -> tuple[Principal, str | None] | None:
        if session.retailer_id is None:
            live = self._operator is not None and session.key_id == self._operator
            return (OPERATOR, None) if live else None
        keys = self._store.api_keys(retailer_id=session.retailer_id, at=now) or ()
        key = next((k for k in keys if k.key_id == session.key_id), None)
        if key is None or key.expires_at is not None or Scope.read.value not in key.scopes:
            return None
        return Principal.of(key), key.name

    def close(self, secret: str) -> None:
        """Blocking: sign out (the session is deleted; its cookie names nothing any more)."""
        self._store.delete_app_session(session_hash=hash_key(secret))
