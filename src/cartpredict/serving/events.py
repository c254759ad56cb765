"""Cart activity and purchases in, from the API or a file: validated whole against the
retailer's configuration and the clock, stored once per event id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from cartpredict.core.clock import Clock
from cartpredict.core.errors import Conflict, InvalidInput, RetailerNotFound
from cartpredict.serving.retailers import cart_problems
from cartpredict.serving.schemas import CartUpdated, Purchased
from cartpredict.storage import EventConflict, EventStore, NoSuchRetailer, Retailer, StoredEvent


class EventService:
    """Cart activity and purchases in: validated whole, stored once per event id."""

    FUTURE_TOLERANCE = timedelta(minutes=5)

    def __init__(self, *, store: EventStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def problems(
        self, retailer: Retailer, events: Sequence[CartUpdated | Purchased], prefix: str = "events."
    ) -> list[dict[str, str]]:
        """What the retailer's configuration or the clock rules out, by event index."""
        now = self._clock()
        problems: list[dict[str, str]] = []
        first: dict[str, CartUpdated | Purchased] = {}
        for i, event in enumerate(events):
            seen = first.setdefault(event.event_id, event)
            if seen is not event and seen != event:  # the same id for two different events
                reason = "repeats the event_id of an earlier, different event in this batch"
                problems.append({"field": f"{prefix}{i}.event_id", "reason": reason})
            if event.at > now + self.FUTURE_TOLERANCE:
                problems.append({"field": f"{prefix}{i}.at", "reason": "is in the future"})
            if isinstance(event, CartUpdated):
                problems += cart_problems(retailer, event, f"{prefix}{i}.")
        return problems

    def ingest(self, retailer: Retailer, events: Sequence[CartUpdated | Purchased]) -> int:
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


def _stored(event: CartUpdated | Purchased, received_at: datetime) -> StoredEvent:
    at = event.at
    if isinstance(event, Purchased):
        return StoredEvent(event.event_id, "purchased", event.cart_id, at, received_at)
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
