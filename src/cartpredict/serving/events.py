"""Cart activity, purchases and actions taken, in from the API or a file: validated whole
against the retailer's configuration, its recovery policies and the clock, stored once per
event id.

An action event must name an action of the policy in force at its time (within the last
``ACTION_POLICY_DAYS``), and the group the service assigned the cart to under that policy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from cartpredict.core.clock import Clock
from cartpredict.core.errors import Conflict, InvalidInput, RetailerNotFound
from cartpredict.decisions.decide import group_of
from cartpredict.decisions.policy import RecoveryPolicy, in_force
from cartpredict.serving.policies import salt_of
from cartpredict.serving.retailers import cart_problems
from cartpredict.serving.schemas import ActionTaken, CartUpdated, Purchased
from cartpredict.storage import (
    EventConflict,
    EventStore,
    NoSuchRetailer,
    Retailer,
    RetailerStore,
    StoredEvent,
)

AnyEvent = CartUpdated | Purchased | ActionTaken
ACTION_POLICY_DAYS = 30


class EventWriter(EventStore, RetailerStore, Protocol):
    """Events in; the retailer's policy versions, to check action events against."""


class EventService:
    """Cart activity and purchases in: validated whole, stored once per event id."""

    FUTURE_TOLERANCE = timedelta(minutes=5)

    def __init__(self, *, store: EventWriter, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def problems(
        self, retailer: Retailer, events: Sequence[AnyEvent], prefix: str = "events."
    ) -> list[dict[str, str]]:
        """What the retailer's configuration, its policies or the clock rules out, by event
        index."""
        now = self._clock()
        problems: list[dict[str, str]] = []
        first: dict[str, AnyEvent] = {}
        policies: list[tuple[int, RecoveryPolicy, datetime]] | None = None
        for i, event in enumerate(events):
            seen = first.setdefault(event.event_id, event)
            if seen is not event and seen != event:  # the same id for two different events
                reason = "repeats the event_id of an earlier, different event in this batch"
                problems.append({"field": f"{prefix}{i}.event_id", "reason": reason})
            if event.at > now + self.FUTURE_TOLERANCE:
                problems.append({"field": f"{prefix}{i}.at", "reason": "is in the future"})
            if isinstance(event, CartUpdated):
                problems += cart_problems(retailer, event, f"{prefix}{i}.")
            if isinstance(event, ActionTaken):
                if policies is None:
                    policies = self._policies(retailer, now)
                problems += _action_problems(retailer, policies, event, f"{prefix}{i}.")
        return problems

    def _policies(
        self, retailer: Retailer, now: datetime
    ) -> list[tuple[int, RecoveryPolicy, datetime]]:
        since = now - timedelta(days=ACTION_POLICY_DAYS)
        versions = self._store.policy_versions(retailer_id=retailer.retailer_id, since=since)
        return [(v, in_force(p, retailer.currency), at) for v, p, at in versions]

    def ingest(self, retailer: Retailer, events: Sequence[AnyEvent]) -> int:
        """Store the batch (all or nothing); return how many events were new."""
        now = self._clock()
        problems = self.problems(retailer, events)
        if problems:
            raise InvalidInput(f"{len(problems)} problem(s) in the batch; nothing was stored",
                               details=problems)  # fmt: skip
        stored = [_stored(event, now) for event in events]
        try:
            return self._store.add_events(
                retailer_id=retailer.retailer_id, events=stored, incarnation=retailer.created_at
            )
        except NoSuchRetailer:
            raise RetailerNotFound() from None
        except EventConflict as exc:
            conflicting = set(exc.event_ids)
            details = [
                {"field": f"events.{i}.event_id",
                 "reason": f"'{e.event_id}' is stored already with another payload"}
                for i, e in enumerate(events) if e.event_id in conflicting
            ]  # fmt: skip
            raise Conflict(
                f"{len(conflicting)} event id(s) already stored with a different event: an "
                "event id names one event; nothing was stored",
                details=details,
            ) from None


def _action_problems(
    retailer: Retailer,
    policies: Sequence[tuple[int, RecoveryPolicy, datetime]],
    event: ActionTaken,
    prefix: str,
) -> list[dict[str, str]]:
    """The action must be one of the policy in force at the event's time, and the group the
    one that policy assigned the cart to."""
    in_force = [(v, p) for v, p, since in policies if since <= event.at]
    if not in_force:
        reason = f"no recovery policy of the last {ACTION_POLICY_DAYS} days was in force then"
        return [{"field": f"{prefix}at", "reason": reason}]
    version, policy = in_force[-1]
    if policy.action(event.action) is None:
        reason = f"'{event.action}' is not an action of policy version {version}, in force then"
        return [{"field": f"{prefix}action", "reason": reason}]
    assigned = group_of(salt_of(retailer), event.cart_id, policy.control_share)
    if event.group != assigned:
        reason = f"the cart is in the {assigned} group, not {event.group}"
        return [{"field": f"{prefix}group", "reason": reason}]
    return []


def _stored(event: AnyEvent, received_at: datetime) -> StoredEvent:
    at = event.at
    if isinstance(event, Purchased):
        return StoredEvent(event.event_id, "purchased", event.cart_id, at, received_at)
    if isinstance(event, ActionTaken):
        return StoredEvent(
            event.event_id, "action", event.cart_id, at, received_at,
            action=event.action, group=event.group, delivered=event.delivered,
        )  # fmt: skip
    return StoredEvent(
        event_id=event.event_id,
        type="cart_updated",
        cart_id=event.cart_id,
        at=at,
        received_at=received_at,
        cart_value=event.cart_value,
        item_count=event.item_count,
        device_type=event.device_type.value,
        shipping_speed=event.shipping_speed,
        attributes=dict(event.attributes),
    )
