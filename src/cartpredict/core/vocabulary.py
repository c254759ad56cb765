"""The words a cart is described in: shared by the API's schemas, the features and the drift
monitor, so that a value the API accepts is one the model and the monitor know."""

from __future__ import annotations

from enum import StrEnum


class DeviceType(StrEnum):
    mobile = "mobile"
    desktop = "desktop"
    tablet = "tablet"
    unknown = "unknown"


class ShippingSpeed(StrEnum):
    standard = "standard"
    express = "express"
    overnight = "overnight"
    same_day = "same_day"
    pickup = "pickup"


class Channel(StrEnum):
    """Where a retention action reaches the shopper (the first three need consent)."""

    email = "email"
    sms = "sms"
    push = "push"
    onsite = "onsite"


MESSAGE_CHANNELS = frozenset({Channel.email.value, Channel.sms.value, Channel.push.value})

# When a message may be sent, in hours after the cart's last activity (``decisions/gain.py``)
SEND_GRID: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 6.0, 12.0)
