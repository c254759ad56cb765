"""What tests build over and over: the operator's credentials, settings, retailers, carts, a
clock set by hand, and a snapshot of every table to prove nothing changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, select

from cartpredict.core.settings import Settings

OPERATOR_KEY = "test-operator-key-of-at-least-32-characters"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}


class SettableClock:
    """A clock a test moves by hand (``clock.now = ...``)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "operator_key": OPERATOR_KEY,
        "sync_interval_s": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


def retailer_spec(retailer_id: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "retailer_id": retailer_id,
        "requires_account": True,
        "payment_options": ["credit_card", "paypal"],
        "shipping_speeds": ["standard", "express"],
    }
    spec.update(overrides)
    return spec


def create_retailer(client: TestClient, retailer_id: str, **overrides: Any) -> dict[str, str]:
    """Create the retailer; return the Authorization header of its key."""
    response = client.post(
        "/retailer", json=retailer_spec(retailer_id, **overrides), headers=OPERATOR
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


def cart(retailer_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "retailer_id": retailer_id,
        "cart_value": 45.99,
        "item_count": 3,
        "inactivity_hours": 12,
        "device_type": "mobile",
        "shipping_speed": "standard",
    }
    body.update(overrides)
    return body


def snapshot(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: compare before and after to prove nothing changed."""
    engine = create_engine(database_url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return {
                name: sorted(tuple(map(repr, row)) for row in conn.execute(select(table)))
                for name, table in sorted(meta.tables.items())
            }
    finally:
        engine.dispose()


@dataclass
class Cart:
    """A cart as the feature encoders read it (``features.CartLike``)."""

    cart_value: float
    item_count: int
    inactivity_hours: float
    device_type: str
    shipping_speed: str
    attributes: dict[str, float | str] = field(default_factory=dict)
