"""What an API key may do (its scopes), and the names and public ids keys go by.

Four scopes, one per kind of system a retailer points at the service, so that each holds a key
for its own work and nothing more: the checkout scores carts (``predict``), the event pipeline
sends activity and exposures (``events``), a dashboard reads configuration, models, stats and
experiments (``read``), an administrator changes the configuration, the model served and the
keys themselves (``manage``). The operator key has every scope.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from enum import StrEnum


class Scope(StrEnum):
    predict = "predict"
    events = "events"
    read = "read"
    manage = "manage"


ALL_SCOPES: frozenset[str] = frozenset(s.value for s in Scope)

# A key's name: unique among the retailer's live keys (a rotated key shares its successor's
# name until its grace period ends). Keys from before names existed are all "default".
KEY_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
DEFAULT_KEY_NAME = "default"

# How long a rotated key may keep working beside its successor, at most.
MAX_GRACE = timedelta(days=1)

KEY_ID_PREFIX = "key_"
KEY_ID_LENGTH = len(KEY_ID_PREFIX) + 12
KEY_ID_PATTERN = r"^key_[A-Za-z0-9_-]{12}$"


def new_key_id() -> str:
    """A key's public id: ``key_`` and 12 URL-safe characters (72 random bits, so ids never
    collide in practice, and one id tells nothing of another). Not a secret: it names the key
    in lists, rotations and revocations, and is never enough to call the API."""
    return KEY_ID_PREFIX + secrets.token_urlsafe(9)


def in_order(scopes: frozenset[str]) -> list[str]:
    """The scopes as the API lists them: in the order of ``Scope``."""
    return [s.value for s in Scope if s.value in scopes]
