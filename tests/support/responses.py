"""A store that decides with a recovery policy and whose carts respond as a known truth does:
the decisions made by the service, each reported (exposure event), the carts bought as the true
response buys them. What recovery models learn from (``learning/responses.py``)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from cartpredict.decisions.policy import Action, RecoveryPolicy
from cartpredict.serving.schemas import CartIn, EventsIn

POPUP = Action("popup_10", "onsite", cost=0.0, discount=0.10, recovery_rate=0.3)  # acts on all
POLICY = RecoveryPolicy(margin=0.4, control_share=0.5, max_action_share=None, actions=(POPUP,),
                        explore_share=0.0)  # fmt: skip
TRUE_RATE = {"mobile": 0.6, "desktop": 0.02, "tablet": 0.10}  # what the pop-up recovers
BOUGHT_ANYWAY = 0.25


def decide_and_respond(svc: Any, rid: str, n: int, *, seed: int, start: datetime,
                       day: int = 0) -> None:  # fmt: skip
    """Decide ``n`` named carts of ``rid`` on ``day`` after ``start`` (``svc.clock`` is set
    to it), report each decision (exposure event) and buy the carts the true response buys,
    an hour later."""
    rng = random.Random(f"{rid}/{seed}")
    at = start + timedelta(days=day)
    svc.clock.now = at
    tenant = svc.tenants.load(rid)
    events: list[dict[str, Any]] = []
    for i in range(n):
        cart_id = f"{seed}-{day}-{i}"
        device = rng.choice(("mobile", "desktop", "tablet"))
        body = {"retailer_id": rid, "cart_id": cart_id, "cart_value": rng.uniform(15, 150),
                "item_count": rng.randint(1, 4), "inactivity_hours": 0.0, "device_type": device,
                "shipping_speed": "standard"}  # fmt: skip
        decision = svc.predictor.predict(tenant, CartIn.model_validate(body))["decision"]
        named = decision["action"] if decision["group"] == "treatment" else decision["held_out"]
        if named == "none":
            continue
        events.append({"type": "action", "event_id": f"x-{cart_id}", "cart_id": cart_id,
                       "at": at.isoformat(), "action": named, "group": decision["group"],
                       "delivered": True})  # fmt: skip
        treated = decision["group"] == "treatment"
        p = BOUGHT_ANYWAY + (1 - BOUGHT_ANYWAY) * (TRUE_RATE[device] if treated else 0.0)
        if rng.random() < p:
            events.append({"type": "purchased", "event_id": f"p-{cart_id}", "cart_id": cart_id,
                           "at": (at + timedelta(hours=1)).isoformat()})  # fmt: skip
    svc.recorder.flush(svc.store)
    svc.clock.now = at + timedelta(hours=2)
    retailer = svc.store.get_retailer(retailer_id=rid)
    for first in range(0, len(events), 500):
        batch = EventsIn.model_validate({"retailer_id": rid, "events": events[first : first + 500]})
        svc.events.ingest(retailer, batch.events)
