"""Cart + site config -> a fixed-order feature vector. The same code for training and serving.

Feature sets are versioned (``FeatureSpec.version``): a stored model keeps scoring with the set
it was trained on, and new models get :data:`FEATURE_VERSION`.

Version 2 (current), feature groups:

* cart: log value, its square around the reference cart (curvature: a value effect may rise
  and fall), log items and its square around 2 items (diminishing returns), log inactivity,
  "below the baseline's threshold", device and shipping one-hots (desktop and standard are the
  reference levels), and the interactions value x inactivity, mobile x inactivity and
  "below the threshold" x inactivity. Value is seen relative to the retailer's typical cart
  (``value x REFERENCE_CART / typical_cart_value``), so stores pricing in yen and in dollars
  share weights without skew; "below the threshold" uses the retailer's own baseline threshold,
  in its currency. A retailer's own model keeps the scale it was trained with; the pooled model
  takes each retailer's scale when it scores.
* site (pooled model only): requires_account, number of payment options, whether a fast
  shipping speed is offered, and mobile x requires_account, tablet x requires_account (an
  account may hurt shoppers on a phone more than at a desk).
* custom attributes the retailer declared: numeric ones as a signed log and a "> 0" indicator,
  categorical ones one-hot over the levels seen in training (an unseen level scores all zeros);
* optional pairwise products of named features, each centred on its training mean (group
  "interaction", penalised on its own).

Version 1: the cart group without the two squares, "below_20" at $20 and value as sent; the
site group without the device x account products.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from cartpredict.storage import Retailer

FEATURE_VERSION = 2
VERSIONS = (1, 2)
REFERENCE_CART = 60.0  # a retailer's typical cart counts as this many reference units
LOG_REFERENCE_CART = math.log1p(REFERENCE_CART)  # centre of the value square
LOG_TWO_ITEMS = math.log1p(2.0)  # centre of the items square
LOG_THREE_HOURS = math.log1p(3.0)  # centre of the inactivity square
FAST_SHIPPING = frozenset({"express", "overnight", "same_day"})
SEED_SPEEDS = frozenset({"standard", "express", "overnight", "same_day", "pickup"})
# A speed of the retailer's own counts as the seed's speed of its delivery days: at most this
# many days is that class (more than 3 days, or no days given: standard).
SPEED_CLASSES: tuple[tuple[float, str], ...] = ((0.0, "same_day"), (1.0, "overnight"),
                                               (3.0, "express"))  # fmt: skip
CART_FEATURES: tuple[str, ...] = (
    "log_value",
    "log_value_sq",
    "log_items",
    "log_items_sq",
    "log_inactivity",
    "log_inactivity_sq",
    "below_threshold",
    "device_mobile",
    "device_tablet",
    "device_unknown",
    "ship_express",
    "ship_overnight",
    "ship_same_day",
    "ship_pickup",
    "log_value_x_log_inactivity",
    "mobile_x_log_inactivity",
    "below_threshold_x_log_inactivity",
)
# Version 1: without the squares, with "below_20" ($20 whatever the currency) for the flag.
_SQUARES = frozenset({"log_value_sq", "log_items_sq", "log_inactivity_sq"})
_V1_NAMES = {"below_threshold": "below_20",
             "below_threshold_x_log_inactivity": "below_20_x_log_inactivity"}  # fmt: skip
_V1_COLUMNS = tuple(i for i, name in enumerate(CART_FEATURES) if name not in _SQUARES)
CART_FEATURES_V1 = tuple(_V1_NAMES.get(CART_FEATURES[i], CART_FEATURES[i]) for i in _V1_COLUMNS)
# Version 2's additions, penalised as the pairwise products are (group "shape"): they bend the
# main effects, and a small store should not pay for them in variance.
SHAPE_FEATURES = frozenset({"log_value_sq", "log_items_sq", "log_inactivity_sq",
                            "mobile_x_requires_account",
                            "tablet_x_requires_account"})  # fmt: skip
SITE_FEATURES: tuple[str, ...] = ("requires_account", "n_payment_options", "offers_fast_shipping")
# Version 2's products of a cart feature and a site feature: (name, cart feature, site feature).
SITE_PRODUCTS: tuple[tuple[str, str, str], ...] = (
    ("mobile_x_requires_account", "device_mobile", "requires_account"),
    ("tablet_x_requires_account", "device_tablet", "requires_account"),
)


class CartLike(Protocol):
    """What a feature vector is made from: a snapshot in training, a request in serving."""

    @property
    def cart_value(self) -> float: ...
    @property
    def item_count(self) -> int: ...
    @property
    def inactivity_hours(self) -> float: ...
    @property
    def device_type(self) -> str: ...
    @property
    def shipping_speed(self) -> str: ...
    @property
    def attributes(self) -> Mapping[str, float | str]: ...


def _slog(x: float) -> float:
    return math.copysign(math.log1p(abs(x)), x)


def speed_class(speed: str, retailer: Retailer) -> str:
    """The seed's shipping speed a cart's speed counts as, so that every retailer's speeds
    share the same features: the seed's five are themselves; a retailer's own speed (economy,
    two_day, ...) is the class of its delivery days (``shipping_days``), or standard."""
    if speed in SEED_SPEEDS:
        return speed
    days = dict(retailer.shipping_days).get(speed)
    if days is None:
        return "standard"
    return next((name for most, name in SPEED_CLASSES if days <= most), "standard")


def value_scale(retailer: Retailer) -> tuple[float, float]:
    """(reference units per unit of the retailer's currency, its baseline threshold)."""
    return REFERENCE_CART / retailer.typical_cart_value, retailer.baseline_threshold


def cart_features(
    cart: CartLike, retailer: Retailer, *, unit: float = 1.0, low: float = 20.0
) -> list[float]:
    """Version 2's cart group; ``unit``: reference units per currency unit, ``low``: the
    baseline threshold (both from :func:`value_scale`, or as a model was trained)."""
    value = math.log1p(cart.cart_value * unit)
    items = math.log1p(cart.item_count)
    inactivity = math.log1p(cart.inactivity_hours)
    below = 1.0 if cart.cart_value < low else 0.0
    device, speed = cart.device_type, cart.shipping_speed
    if speed not in SEED_SPEEDS:
        speed = speed_class(speed, retailer)
    mobile = 1.0 if device == "mobile" else 0.0
    return [
        value,
        (value - LOG_REFERENCE_CART) ** 2,
        items,
        (items - LOG_TWO_ITEMS) ** 2,
        inactivity,
        (inactivity - LOG_THREE_HOURS) ** 2,
        below,
        mobile,
        1.0 if device == "tablet" else 0.0,
        1.0 if device == "unknown" else 0.0,
        1.0 if speed == "express" else 0.0,
        1.0 if speed == "overnight" else 0.0,
        1.0 if speed == "same_day" else 0.0,
        1.0 if speed == "pickup" else 0.0,
        value * inactivity,
        mobile * inactivity,
        below * inactivity,
    ]


def cart_features_v1(cart: CartLike, retailer: Retailer) -> list[float]:
    """Version 1's cart group (models trained before version 2 still score with it)."""
    v2 = cart_features(cart, retailer)
    return [v2[i] for i in _V1_COLUMNS]


def site_features(retailer: Retailer) -> list[float]:
    """The site group's constant part (the same for every cart of the retailer)."""
    speeds = retailer.shipping_speeds
    fast = not FAST_SHIPPING.isdisjoint(speeds) or any(
        speed_class(s, retailer) in FAST_SHIPPING for s in speeds if s not in SEED_SPEEDS
    )  # (the seed's speeds are their own class: only a store's own speeds need mapping)
    return [
        1.0 if retailer.requires_account else 0.0,
        float(len(retailer.payment_options)),
        1.0 if fast else 0.0,
    ]


@dataclass(frozen=True)
class FeatureSpec:
    cart: bool = True
    site: bool = False
    numeric: tuple[str, ...] = ()
    categorical: tuple[tuple[str, tuple[str, ...]], ...] = ()
    interactions: tuple[tuple[str, str], ...] = ()
    centers: tuple[tuple[str, float], ...] = ()  # training means subtracted before products
    version: int = FEATURE_VERSION
    # The value scale a retailer's own model was trained with (``value_scale``); None: the
    # scored retailer's own, as the pooled model does.
    value_unit: float | None = None
    low_value: float | None = None
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _products: list[tuple[int, float, int, float]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"unknown feature set version {self.version}")
        self._index.update({name: i for i, name in enumerate(self.main_names())})
        unknown = {n for pair in self.interactions for n in pair} - set(self._index)
        if unknown:
            raise ValueError(f"interactions name unknown features: {sorted(unknown)}")
        center = dict(self.centers)
        self._products.extend(
            (self._index[a], center.get(a, 0.0), self._index[b], center.get(b, 0.0))
            for a, b in self.interactions
        )

    def main_names(self) -> list[str]:
        v1 = self.version == 1
        names: list[str] = list(CART_FEATURES_V1 if v1 else CART_FEATURES) if self.cart else []
        if self.site:
            names += SITE_FEATURES
            if not v1:
                names += [name for name, _, _ in SITE_PRODUCTS]
        for attr in self.numeric:
            names += [f"{attr}:log", f"{attr}:pos"]
        for attr, levels in self.categorical:
            names += [f"{attr}={level}" for level in levels]
        return names

    def names(self) -> list[str]:
        return self.main_names() + [f"{a}*{b}" for a, b in self.interactions]

    def groups(self) -> list[str]:
        """Penalty group per feature: "main", "shape" (version 2's squares and device x
        account products), "categorical" (one-hots of custom attributes) or "interaction" (the
        optional pairwise products)."""
        n_categorical = sum(len(levels) for _, levels in self.categorical)
        main = self.main_names()[: len(self._index) - n_categorical]
        return (
            ["shape" if name in SHAPE_FEATURES else "main" for name in main]
            + ["categorical"] * n_categorical
            + ["interaction"] * len(self.interactions)
        )

    def scale(self, retailer: Retailer) -> tuple[float, float]:
        """(value unit, baseline threshold) this spec scores ``retailer``'s carts with."""
        if self.version == 1:
            return 1.0, 20.0
        if self.value_unit is not None and self.low_value is not None:
            return self.value_unit, self.low_value
        return value_scale(retailer)

    def row(self, cart: CartLike, retailer: Retailer) -> list[float]:
        out: list[float] = []
        if self.cart:
            if self.version == 1:
                out = cart_features_v1(cart, retailer)
            else:
                unit, low = self.scale(retailer)
                out = cart_features(cart, retailer, unit=unit, low=low)
        if self.site:
            site = site_features(retailer)
            out += site
            if self.version != 1:
                device = cart.device_type
                out += [site[0] if device == "mobile" else 0.0,
                        site[0] if device == "tablet" else 0.0]  # fmt: skip
        attrs = cart.attributes
        for attr in self.numeric:
            value = attrs.get(attr)
            x = float(value) if isinstance(value, int | float) else 0.0
            out += [_slog(x), 1.0 if x > 0 else 0.0]
        for attr, levels in self.categorical:
            value = attrs.get(attr)
            out += [1.0 if value == level else 0.0 for level in levels]
        out += [(out[i] - ci) * (out[j] - cj) for i, ci, j, cj in self._products]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "cart": self.cart,
            "site": self.site,
            "numeric": list(self.numeric),
            "categorical": {attr: list(levels) for attr, levels in self.categorical},
            "interactions": [list(pair) for pair in self.interactions],
            "centers": dict(self.centers),
            "version": self.version,
            "value_unit": self.value_unit,
            "low_value": self.low_value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(
            cart=bool(data["cart"]),
            site=bool(data["site"]),
            numeric=tuple(data["numeric"]),
            categorical=tuple((a, tuple(levels)) for a, levels in data["categorical"].items()),
            interactions=tuple((a, b) for a, b in data["interactions"]),
            centers=tuple(data.get("centers", {}).items()),
            version=int(data.get("version", 1)),  # stored before versions: version 1
            value_unit=data.get("value_unit"),
            low_value=data.get("low_value"),
        )


def level_counts(retailer: Retailer, carts: Iterable[CartLike]) -> dict[str, Counter[str]]:
    """How often each value of each declared categorical attribute occurs in ``carts``."""
    categorical = [name for name, kind in retailer.attributes if kind == "categorical"]
    counts: dict[str, Counter[str]] = {name: Counter() for name in categorical}
    for row in carts:
        for name in categorical:
            value = row.attributes.get(name)
            if isinstance(value, str):
                counts[name][value] += 1
    return counts


def spec_for(
    retailer: Retailer,
    *,
    level_counts: Mapping[str, Mapping[str, int]],
    cart: bool = True,
    site: bool = False,
    min_level_count: int = 5,
    interactions: Sequence[tuple[str, str]] = (),
) -> FeatureSpec:
    """The retailer's feature spec: its declared attributes; of a categorical one, the levels
    seen at least ``min_level_count`` times in training (``level_counts``)."""
    kinds = retailer.attribute_kinds()
    categorical = [name for name, kind in retailer.attributes if kind == "categorical"]
    least = min_level_count
    unit, low = value_scale(retailer)
    return FeatureSpec(
        cart=cart,
        site=site,
        numeric=tuple(name for name, kind in kinds.items() if kind == "numeric"),
        categorical=tuple(
            (name, tuple(sorted(v for v, n in level_counts.get(name, {}).items() if n >= least)))
            for name in categorical
        ),
        interactions=tuple(interactions),
        value_unit=unit if cart else None,
        low_value=low if cart else None,
    )


def centered(spec: FeatureSpec, rows: Iterable[CartLike], retailer: Retailer) -> FeatureSpec:
    """The spec with its interaction terms centred on the training rows' means."""
    names = {n for pair in spec.interactions for n in pair}
    width = len(spec.main_names())
    sums = [0.0] * width
    count = 0
    plain = replace(spec, interactions=(), centers=())
    for row in rows:
        for i, x in enumerate(plain.row(row, retailer)):
            sums[i] += x
        count += 1
    means = {n: sums[i] / max(count, 1) for i, n in enumerate(spec.main_names()) if n in names}
    return replace(spec, centers=tuple(sorted(means.items())))
