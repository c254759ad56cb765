"""Drift: are the carts a model scores now like the carts it was trained on?

Both sides are reduced to the same fixed histograms (a *profile*): cart value and item count in
fixed bins, device type and shipping speed by category. Training stores the profile of its
training carts with the model version; the daily aggregates hold the profile of the carts
scored each day. The population stability index (PSI) per feature compares the two:
``sum((a - e) * ln(a / e))`` over bins, with shares smoothed so that an empty bin stays finite.
The usual reading: below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a significant one.

Inactivity is left out on purpose: training snapshots take it at fixed levels (0, 1, 3, 6, 12 h),
so its distribution says how a retailer calls the API, not how its carts changed. Custom
attributes are left out too (their meaning, and their bins, differ per retailer).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from cartpredict.core.vocabulary import DeviceType, ShippingSpeed

# Numeric features: bin i holds values in [edges[i-1], edges[i]); the first starts at 0, the
# last is open-ended.
NUMERIC_EDGES: dict[str, tuple[float, ...]] = {
    "cart_value": (10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 150.0, 250.0, 500.0),
    "item_count": (2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0),
}
CATEGORIES: dict[str, tuple[str, ...]] = {
    "device_type": tuple(d.value for d in DeviceType),
    "shipping_speed": tuple(s.value for s in ShippingSpeed),
}
FEATURES: tuple[str, ...] = (*NUMERIC_EDGES, *CATEGORIES)
SMOOTHING = 0.5  # counts added to every bin of both sides before taking shares
STABLE_BELOW = 0.1
MODERATE_BELOW = 0.25

Profile = dict[str, list[int]]  # feature -> counts per bin


class Cart(Protocol):
    @property
    def cart_value(self) -> float: ...
    @property
    def item_count(self) -> int: ...
    @property
    def device_type(self) -> str: ...
    @property
    def shipping_speed(self) -> str: ...


def empty() -> Profile:
    return {
        **{name: [0] * (len(edges) + 1) for name, edges in NUMERIC_EDGES.items()},
        **{name: [0] * len(levels) for name, levels in CATEGORIES.items()},
    }


_VALUE_EDGES = NUMERIC_EDGES["cart_value"]
_ITEM_EDGES = NUMERIC_EDGES["item_count"]
_DEVICES = {level: i for i, level in enumerate(CATEGORIES["device_type"])}
_SPEEDS = {level: i for i, level in enumerate(CATEGORIES["shipping_speed"])}


def add(profile: Profile, cart: Cart) -> None:
    """Count one cart in the profile (in place)."""
    add_values(profile, cart.cart_value, cart.item_count, cart.device_type, cart.shipping_speed)


def add_values(
    profile: Profile, cart_value: float, item_count: int, device_type: str, shipping_speed: str
) -> None:
    """``add`` for a cart given by its values (it runs once per prediction, kept lean)."""
    profile["cart_value"][bisect_right(_VALUE_EDGES, cart_value)] += 1
    profile["item_count"][bisect_right(_ITEM_EDGES, item_count)] += 1
    device = _DEVICES.get(device_type)
    if device is not None:
        profile["device_type"][device] += 1
    speed = _SPEEDS.get(shipping_speed)
    if speed is not None:
        profile["shipping_speed"][speed] += 1


def profile_of(carts: Iterable[Cart]) -> Profile:
    profile = empty()
    for cart in carts:
        add(profile, cart)
    return profile


def merged(profiles: Iterable[Mapping[str, Sequence[int]]]) -> Profile:
    """The bin-wise sum of profiles."""
    total = empty()
    for profile in profiles:
        for name, counts in total.items():
            theirs = profile.get(name)
            if theirs is not None and len(theirs) == len(counts):
                total[name] = [a + b for a, b in zip(counts, theirs, strict=True)]
    return total


def psi(expected: Sequence[int], actual: Sequence[int]) -> float:
    """Population stability index of ``actual`` against ``expected`` (counts per bin)."""
    if len(expected) != len(actual):
        raise ValueError("both sides need the same bins")
    e_total = sum(expected) + SMOOTHING * len(expected)
    a_total = sum(actual) + SMOOTHING * len(actual)
    value = 0.0
    for e, a in zip(expected, actual, strict=True):
        e_share = (e + SMOOTHING) / e_total
        a_share = (a + SMOOTHING) / a_total
        value += (a_share - e_share) * math.log(a_share / e_share)
    return value


def status(value: float) -> str:
    if value < STABLE_BELOW:
        return "stable"
    return "moderate" if value < MODERATE_BELOW else "significant"


def compare(
    training: Mapping[str, Sequence[int]], recent: Mapping[str, Sequence[int | None]]
) -> dict[str, Any]:
    """PSI and its reading per feature; the overall status is the worst feature's.

    A recent bin given as None (its count is not known: left out for k-anonymity) is left out
    of both sides, so that the shares compared are those among the same bins; a feature with
    fewer than two bins left is not compared."""
    features: dict[str, dict[str, Any]] = {}
    psis: list[float] = []
    for name in FEATURES:
        pairs = [(e, a) for e, a in zip(training[name], recent[name], strict=True) if a is not None]
        if len(pairs) < 2:
            continue
        value = psi([e for e, _ in pairs], [a for _, a in pairs])
        features[name] = {"psi": round(value, 4), "status": status(value)}
        psis.append(round(value, 4))
    worst = max(psis, default=0.0)
    return {"status": status(worst), "features": features}
