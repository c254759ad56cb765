"""The storage interface every backend implements, and the records it exchanges.

Every method that touches tenant data takes the retailer id and scopes its queries by it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol


class DuplicateRetailer(ValueError):
    """A retailer with this id exists already."""


class NoSuchRetailer(LookupError):
    """A write for a retailer that does not exist (or no longer is the one the caller saw)."""


class DuplicateKeyName(ValueError):
    """Another live key of the retailer (one not being replaced by a rotation) has this name."""


class KeyAlreadyRotated(ValueError):
    """The key was rotated already: it works until its grace period ends, its successor on."""

    def __init__(self, expires_at: datetime) -> None:
        self.expires_at = expires_at
        super().__init__(f"rotated already; works until {expires_at.isoformat()}")


class EventConflict(ValueError):
    """Event ids already stored with another payload; nothing of the batch was stored."""

    def __init__(self, event_ids: Sequence[str]) -> None:
        self.event_ids = list(event_ids)
        super().__init__(f"{len(self.event_ids)} event id(s) already stored with another payload")


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
    attributes: tuple[tuple[str, str], ...] = ()  # (name, "numeric" | "categorical")
    shipping_days: tuple[tuple[str, float], ...] = ()  # (speed, delivery days), where known
    currency: str = "USD"  # ISO 4217; every money field of the retailer's carts is in it
    baseline_threshold: float = 20.0  # the baseline rule's "below this means abandoned"
    typical_cart_value: float = 60.0  # what the pooled model sees as a typical cart
    # The recovery policy as set (plain JSON; None: the default policy in its currency), its
    # version (every change makes a new one) and the secret that assigns carts to groups.
    recovery_policy: Mapping[str, Any] | None = None
    policy_version: int = 1
    assignment_salt: str = ""

    def attribute_kinds(self) -> dict[str, str]:
        return dict(self.attributes)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key as stored, but for its secret (of which only a hash is kept)."""

    key_id: str  # public: names the key in lists, rotations, revocations
    retailer_id: str
    name: str  # unique among the retailer's keys with no expiry
    scopes: frozenset[str]  # of core.scopes.Scope
    created_at: datetime
    expires_at: datetime | None = None  # set when rotated: the end of its grace period

    def live(self, at: datetime) -> bool:
        return self.expires_at is None or at < self.expires_at


@dataclass(frozen=True, slots=True)
class AppSession:
    """A dashboard session as stored (its secret is the browser's; only a hash is kept)."""

    retailer_id: str | None  # None: the operator's
    key_id: str  # the key it was opened with (the operator's: a fingerprint of the key)
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """Who changed a retailer's settings (its configuration or recovery policy), and when."""

    at: datetime
    key_id: str | None  # None: the operator (or the service's own command line)
    key_name: str | None  # the key's name at the time
    fields: tuple[str, ...]  # the fields changed


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed: something cached for ``retailer_id`` is stale."""

    seq: int
    retailer_id: str


POOLED_SCOPE = "@pooled"  # the registry scope of the pooled model; no retailer id starts with @
# The registry's kinds of model: P(abandoned) per cart, and each action's recovery rate
ABANDONMENT = "abandonment"
RECOVERY = "recovery"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: str
    type: str  # "cart_updated" | "purchased" | "action" (what the retailer did with a decision)
    cart_id: str
    at: datetime
    received_at: datetime
    cart_value: float | None = None
    item_count: int | None = None
    device_type: str | None = None
    shipping_speed: str | None = None
    attributes: Mapping[str, float | str] | None = None
    action: str | None = None  # an "action" event: the action decided (or held out)
    group: str | None = None  # ... the cart's group, treatment or control
    delivered: bool | None = None  # ... whether it reached the shopper, when known


@dataclass(frozen=True, slots=True)
class Exposure:
    """A retailer's record of a decision it took into account (intent to treat)."""

    cart_id: str
    at: datetime
    action: str
    group: str
    delivered: bool | None


# An event as training reads it, a plain tuple (no object per row): event_id, type, cart_id,
# at (integer microseconds since the epoch), cart_value, item_count, device_type,
# shipping_speed, attributes (None unless asked for).
EventRow = tuple[
    str, str, str, int, float | None, int | None, str | None, str | None,
    Mapping[str, float | str] | None,
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One trained model: what it was trained on, how it scored, and its weights."""

    version_id: str
    scope: str  # a retailer id, or POOLED_SCOPE
    created_at: datetime
    train_start: datetime
    train_end: datetime
    n_train: int
    threshold: float | None
    metrics: Mapping[str, Any]
    model: Mapping[str, Any]  # the serialized model (see models/logistic.py)
    profile: Mapping[str, Any] | None = None  # the training carts' histograms (see drift.py)
    kind: str = ABANDONMENT  # or RECOVERY: an action's recovery rates (models/recovery.py)


class ScoredCart(NamedTuple):
    """One prediction as the stats need it (raw, row-level: kept as long as events are). A
    named tuple, as ``Decided``: a busy server makes thousands a second, in the thread that
    writes the log, whose Python work holds the GIL the serving thread needs."""

    retailer_id: str
    at: datetime
    cart_id: str | None  # the retailer's id, when the request gave one: matches its purchase
    model_version: str
    p_abandoned: float
    abandoned: bool  # the decision served
    cart_value: float
    item_count: int
    device_type: str
    shipping_speed: str
    decision: Decided | None = None  # the retention decision, when the cart was named


class Decided(NamedTuple):
    """A logged retention decision (see ``decisions.decide``). A named tuple, not a frozen
    dataclass: made on the request path for every named cart, where a frozen dataclass's
    construction (a ``setattr`` per field) costs several times as much."""

    policy_version: int
    group: str
    action: str
    held_out: str
    send_after_hours: float
    expected_gain: float
    reason: str
    explored: bool = False  # the action and send time were drawn at random (exploration)
    propensity: float = 1.0  # P(the action or held_out, at this send time, was chosen)


@dataclass(frozen=True, slots=True)
class DailyStats:
    """One retailer's day of predictions, aggregated (see stats.py for ``figures``)."""

    retailer_id: str
    day: date
    computed_at: datetime
    final: bool  # every outcome is in: never computed again
    figures: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Promotion:
    version_id: str
    action: str  # "promote" | "rollback"
    at: datetime


class StoreHealth(Protocol):
    """Whether the store answers, and how it is set up."""

    def ping(self) -> None:
        """Raise if the store cannot answer."""

    def schema_revision(self) -> str | None: ...

    def privilege_problems(self) -> list[str]:
        """Why the store's own access control would not hold for how it logs in (e.g. a
        PostgreSQL superuser bypasses row-level security); empty when it holds."""

    def close(self) -> None: ...


class RetailerStore(Protocol):
    """Retailers' configuration."""

    def create_retailer(self, *, retailer: Retailer, key_hash: str) -> None:
        """Insert the retailer with its first API key (its "default" key, with every scope);
        DuplicateRetailer on a duplicate id."""

    def get_retailer(self, *, retailer_id: str) -> Retailer | None: ...

    def update_retailer(
        self,
        *,
        retailer_id: str,
        changes: Mapping[str, Any],
        updated_at: datetime,
        key_id: str | None = None,
    ) -> Retailer | None:
        """Apply the changes and record who made them (``key_id``; None: the operator) in the
        same transaction; None when there is no such retailer."""

    def settings_changes(self, *, retailer_id: str, limit: int = 20) -> Sequence[SettingsChange]:
        """The retailer's latest changes of settings, newest first."""

    def delete_retailer(self, *, retailer_id: str, at: datetime) -> bool:
        """Erase every row of the retailer; False when there was none."""

    def list_retailers(self) -> Sequence[Retailer]:
        """Operator-level: every retailer (for training runs)."""

    def policy_versions(
        self, *, retailer_id: str, since: datetime
    ) -> Sequence[tuple[int, Mapping[str, Any] | None, datetime]]:
        """(version, policy as set, when) of the retailer's recovery policies in force at or
        after ``since``, oldest first (the one in force at ``since`` included)."""


class KeyStore(Protocol):
    """API keys: a hash of each secret, and its public id, name, scopes and expiry. A key is
    live until it is revoked or its rotation's grace period ends (``ApiKey.live``); every
    change to a retailer's keys tells the change feed, so every worker drops the keys it
    cached for that retailer."""

    def add_api_key(self, *, key: ApiKey, key_hash: str, replace: bool = False) -> bool:
        """Add the key beside the retailer's others; with ``replace``, instead of all of them.
        One transaction that holds the retailer's row: concurrent replacements run one after
        the other and leave exactly one key, the last one's. False when the retailer does not
        exist; DuplicateKeyName when another live key without expiry has the name (never with
        ``replace``)."""

    def rotate_api_key(
        self,
        *,
        retailer_id: str,
        key_id: str,
        new_key_id: str,
        key_hash: str,
        at: datetime,
        expires_at: datetime | None,
    ) -> ApiKey | None:
        """Give the key a successor: ``new_key_id`` and the new secret, the same name and
        scopes, created ``at``; the old key then works until ``expires_at`` (None, or a time
        not after ``at``: it is revoked at once). Return the successor; None when the retailer
        has no live key of that id. NoSuchRetailer when there is no such retailer;
        KeyAlreadyRotated when the key has a successor already."""

    def revoke_api_key(self, *, retailer_id: str, key_id: str, at: datetime) -> bool:
        """Revoke one live key of the retailer (a key in its grace period too); False when
        there is none of that id. NoSuchRetailer when there is no such retailer."""

    def api_keys(self, *, retailer_id: str, at: datetime) -> Sequence[ApiKey] | None:
        """The retailer's live keys, oldest first; None when there is no such retailer."""

    def api_key(self, *, key_hash: str) -> ApiKey | None:
        """Operator-level: the key with this hash, whoever's it is and whatever its expiry
        (the caller judges that against its clock)."""

    def key_live(self, *, key_id: str, at: datetime) -> bool:
        """Operator-level: whether the key of this id is live (one indexed read)."""


class EventStore(Protocol):
    """Cart activity and purchases (raw, row-level)."""

    def add_events(
        self,
        *,
        retailer_id: str,
        events: Sequence[StoredEvent],
        incarnation: datetime | None = None,
    ) -> int:
        """Store the events in one transaction, ignoring event ids already stored with the same
        payload; return how many were new. NoSuchRetailer when the retailer does not exist, or
        was not created at ``incarnation`` (deleted and created again since the caller looked);
        EventConflict when an id is stored with another payload. Either way nothing is stored."""

    def events(self, *, retailer_id: str) -> Sequence[StoredEvent]:
        """The retailer's cart updates and purchases, oldest first."""

    def event_rows(self, *, retailer_id: str, attributes: bool = False) -> Iterator[EventRow]:
        """The retailer's cart updates and purchases as plain tuples, in no particular order,
        read in batches (the training path: no datetime or object per row); ``attributes``:
        include them."""

    def exposures(
        self, *, retailer_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> Sequence[Exposure]:
        """The retailer's action events at ``[start, end)`` (all when None), oldest first."""

    def purchases(
        self, *, retailer_id: str, start: datetime, end: datetime
    ) -> Sequence[tuple[str, datetime]]:
        """(cart_id, at) of the retailer's purchase events at ``[start, end)``."""

    def cart_values(
        self, *, retailer_id: str, start: datetime, end: datetime
    ) -> Sequence[tuple[str, datetime, float]]:
        """(cart_id, at, cart_value) of the retailer's cart updates at ``[start, end)``, oldest
        first."""


class RegistryStore(Protocol):
    """Model versions, what serves each scope, and the log of promotions."""

    def add_model_version(self, *, version: ModelVersion) -> None: ...

    def model_version(self, *, scope: str, version_id: str) -> ModelVersion | None: ...

    def model_versions(self, *, scope: str, kind: str = ABANDONMENT) -> Sequence[ModelVersion]:
        """Newest first."""

    def served_version(self, *, scope: str, kind: str = ABANDONMENT) -> ModelVersion | None: ...

    def served_version_id(self, *, scope: str, kind: str = ABANDONMENT) -> str | None:
        """The id of the version the scope serves (no model read)."""

    def set_served(
        self, *, scope: str, version_id: str, action: str, at: datetime, kind: str = ABANDONMENT
    ) -> None:
        """Point the scope at a version, log it, and tell the change feed who must reload."""

    def retire_served(self, *, scope: str, at: datetime, kind: str = ABANDONMENT) -> bool:
        """Serve nothing of the scope's own any more (logged); False when nothing was served."""

    def promotions(self, *, scope: str, kind: str = ABANDONMENT) -> Sequence[Promotion]:
        """Newest first."""


class PredictionStore(Protocol):
    """Predictions (the log and the counts, raw) and their daily aggregates."""

    def add_scored_carts(self, *, carts: Sequence[ScoredCart], history: bool = False) -> None:
        """Append predictions of any retailers (the service's own log, written in bulk). Rows
        of a retailer that no longer exists, or that was created after the prediction (deleted
        and created again meanwhile), are dropped, unless ``history`` (a simulated past)."""

    def scored_carts(
        self, *, retailer_id: str, start: datetime, end: datetime
    ) -> Sequence[ScoredCart]:
        """The retailer's predictions made in ``[start, end)``, oldest first."""

    def add_prediction_counts(
        self, *, counts: Sequence[tuple[str, date, datetime, Mapping[str, Any]]], at: datetime
    ) -> None:
        """Append (retailer_id, day, first prediction's time, figures) counted in memory,
        written at ``at``."""

    def prediction_counts(
        self, *, retailer_id: str, start: date, end: date
    ) -> Mapping[date, Sequence[Mapping[str, Any]]]:
        """The retailer's counted figures for days in ``[start, end]``, by day."""

    def budget_cutoff(self, *, retailer_id: str) -> tuple[int, float] | None:
        """(policy version, least expected gain acted on) under ``max_action_share``."""

    def set_budget_cutoff(
        self, *, retailer_id: str, policy_version: int, cutoff: float | None, at: datetime
    ) -> None:
        """Replace it (None: no cut-off); a change tells every worker."""

    def first_scored(self) -> Mapping[str, date]:
        """Operator-level: each retailer with predictions logged or counted, and the first
        day of them still held."""

    def put_daily_stats(self, *, retailer_id: str, days: Sequence[DailyStats]) -> None:
        """Insert or replace the retailer's rows for those days."""

    def daily_stats(self, *, retailer_id: str, start: date, end: date) -> Sequence[DailyStats]:
        """The retailer's rows for days in ``[start, end]``, oldest first."""


class RetentionStore(Protocol):
    """Deleting what has expired (operator-level)."""

    def purge(
        self, *, raw_before: datetime, aggregates_before: datetime, at: datetime, dry_run: bool
    ) -> dict[str, int]:
        """Delete raw rows received before ``raw_before`` and aggregates created before
        ``aggregates_before`` (daily aggregates: days before it); return the rows per table
        (only counted when ``dry_run``). A served model that expires stops serving, and the
        change feed says so."""


class SessionStore(Protocol):
    """Dashboard sessions, by the hash of their secret (operator-level: a session is looked up
    before its retailer is known). A session goes with its retailer."""

    def add_app_session(self, *, session_hash: str, session: AppSession) -> bool:
        """Store a new session (and drop the sessions that have ended); False when its
        retailer does not exist."""

    def app_session(self, *, session_hash: str, at: datetime) -> AppSession | None:
        """The session of this hash, unless it has ended by ``at``."""

    def delete_app_session(self, *, session_hash: str) -> None: ...


class ChangeFeedStore(Protocol):
    """The change feed: which retailers' cached state is stale (operator-level)."""

    def changes_after(self, *, seq: int) -> Sequence[Change]: ...

    def last_change_seq(self) -> int: ...

    def prune_changes(self, *, before: datetime) -> int: ...


class Store(
    StoreHealth,
    RetailerStore,
    KeyStore,
    EventStore,
    RegistryStore,
    PredictionStore,
    RetentionStore,
    SessionStore,
    ChangeFeedStore,
    Protocol,
):
    """All of it: what a backend implements. Callers take only the parts they use; every
    method that touches one retailer's data takes its id and is scoped by it. Writes that
    change what serving caches append to the change feed in the same transaction."""
