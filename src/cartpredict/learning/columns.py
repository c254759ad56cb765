"""Carts as columns: features, scores and drift profiles for many carts at once, in process.

For nightly exports, backfills and the evaluation of a whole day's carts, where a request per
cart would be all overhead. Builds the same features as ``FeatureSpec.row`` (a test holds the
two equal), but a column at a time with numpy, then one matrix-vector product.

    columns = CartColumns.from_carts(carts)          # or straight from arrays
    p = p_abandoned(model, columns, retailer)        # float64 array, one per cart
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from cartpredict.models.base import ServedModel
from cartpredict.models.baseline import BaselineRule
from cartpredict.models.features import (
    LOG_REFERENCE_CART,
    LOG_THREE_HOURS,
    LOG_TWO_ITEMS,
    SEED_SPEEDS,
    CartLike,
    FeatureSpec,
    site_features,
    speed_class,
)
from cartpredict.models.logistic import LogisticModel
from cartpredict.monitoring import drift
from cartpredict.storage import Retailer

DEVICE_LEVELS = ("mobile", "tablet", "unknown")
SPEED_LEVELS = ("express", "overnight", "same_day", "pickup")


@dataclass(frozen=True)
class CartColumns:
    """One array per cart field; string columns may be any array-like of str."""

    cart_value: np.ndarray
    item_count: np.ndarray
    inactivity_hours: np.ndarray
    device_type: np.ndarray
    shipping_speed: np.ndarray
    attributes: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cart_value)

    @classmethod
    def from_carts(cls, carts: Iterable[CartLike]) -> CartColumns:
        rows = list(carts)
        names = sorted({name for cart in rows for name in cart.attributes})
        return cls(
            cart_value=np.array([c.cart_value for c in rows], dtype=float),
            item_count=np.array([c.item_count for c in rows], dtype=float),
            inactivity_hours=np.array([c.inactivity_hours for c in rows], dtype=float),
            device_type=np.array([str(c.device_type) for c in rows]),
            shipping_speed=np.array([str(c.shipping_speed) for c in rows]),
            attributes={
                name: np.array([c.attributes.get(name) for c in rows], dtype=object)
                for name in names
            },
        )


def design_matrix(spec: FeatureSpec, columns: CartColumns, retailer: Retailer) -> np.ndarray:
    """The (n carts x n features) matrix whose rows are ``spec.row(cart, retailer)``."""
    n = len(columns)
    out = np.empty((n, len(spec.names())), dtype=float)
    j = 0
    device = np.asarray(columns.device_type)
    if spec.cart:
        unit, low = spec.scale(retailer)
        raw = np.asarray(columns.cart_value, dtype=float)
        value = np.log1p(raw * unit)
        items = np.log1p(np.asarray(columns.item_count, dtype=float))
        inactivity = np.log1p(np.asarray(columns.inactivity_hours, dtype=float))
        below = raw < low
        speed = _speed_classes(np.asarray(columns.shipping_speed), retailer)
        mobile = device == "mobile"
        squares = [] if spec.version == 1 else [(value - LOG_REFERENCE_CART) ** 2]
        item_squares = [] if spec.version == 1 else [(items - LOG_TWO_ITEMS) ** 2]
        cart_cols = [
            value,
            *squares,
            items,
            *item_squares,
            inactivity,
            *([] if spec.version == 1 else [(inactivity - LOG_THREE_HOURS) ** 2]),
            below,
            *(device == level for level in DEVICE_LEVELS),
            *(speed == level for level in SPEED_LEVELS),
            value * inactivity,
            mobile * inactivity,
            below * inactivity,
        ]
        for col in cart_cols:
            out[:, j] = col
            j += 1
    if spec.site:
        site = site_features(retailer)
        for x in site:
            out[:, j] = x
            j += 1
        if spec.version != 1:  # features.SITE_PRODUCTS: device x requires_account
            for level in ("mobile", "tablet"):
                out[:, j] = (device == level) * site[0]
                j += 1
    for attr in spec.numeric:
        values = _numeric(columns.attributes.get(attr), n)
        out[:, j] = np.copysign(np.log1p(np.abs(values)), values)
        out[:, j + 1] = values > 0
        j += 2
    for attr, levels in spec.categorical:
        column = columns.attributes.get(attr)
        for level in levels:
            out[:, j] = np.zeros(n) if column is None else np.asarray(column, dtype=object) == level
            j += 1
    index = {name: i for i, name in enumerate(spec.main_names())}
    center = dict(spec.centers)
    for a, b in spec.interactions:
        out[:, j] = (out[:, index[a]] - center.get(a, 0.0)) * (
            out[:, index[b]] - center.get(b, 0.0)
        )
        j += 1
    return out


def p_abandoned(model: LogisticModel, columns: CartColumns, retailer: Retailer) -> np.ndarray:
    logit = design_matrix(model.spec, columns, retailer) @ np.asarray(model.weights)
    logit += model.intercept
    e = np.exp(-np.abs(logit))  # the logistic function, without overflow or cancellation
    return np.asarray(np.where(logit >= 0, 1.0 / (1.0 + e), e / (1.0 + e)))


def score(model: ServedModel, columns: CartColumns, retailer: Retailer) -> np.ndarray:
    """P(abandoned) per cart by any served model: the logistic model's or the baseline rule's
    (``model.score`` a column at a time)."""
    if isinstance(model, LogisticModel):
        return p_abandoned(model, columns, retailer)
    if isinstance(model, BaselineRule):
        below = np.asarray(columns.cart_value, dtype=float) < model.threshold_for(retailer)
        return np.where(below, model.p_abandoned_below_, model.p_abandoned_above_)
    raise TypeError(f"no column-at-a-time scoring for {type(model).__name__}")


def profile_of(columns: CartColumns) -> drift.Profile:
    """``drift.profile_of`` over the carts, a column at a time."""
    profile = drift.empty()
    for name, edges in drift.NUMERIC_EDGES.items():
        values = np.asarray(getattr(columns, name), dtype=float)
        bins = np.searchsorted(np.asarray(edges), values, side="right")
        profile[name] = np.bincount(bins, minlength=len(edges) + 1).tolist()
    for name, levels in drift.CATEGORIES.items():
        values = np.asarray(getattr(columns, name)).astype(str)
        profile[name] = [int(np.count_nonzero(values == level)) for level in levels]
    return profile


def _speed_classes(speeds: np.ndarray, retailer: Retailer) -> np.ndarray:
    """``features.speed_class`` of each cart's speed (a retailer's own speeds mapped)."""
    own = {str(s) for s in np.unique(speeds.astype(str))} - SEED_SPEEDS
    if not own:
        return speeds
    mapped = speeds.astype(object).copy()
    for speed in own:
        mapped[speeds == speed] = speed_class(speed, retailer)
    return mapped


def _numeric(values: np.ndarray | None, n: int) -> np.ndarray:
    """Numbers as floats; a missing value or a string counts as 0, as in ``FeatureSpec.row``."""
    if values is None:
        return np.zeros(n)
    array = np.asarray(values)
    if array.dtype.kind in "iuf":
        return array.astype(float)
    return np.array([float(v) if isinstance(v, int | float) else 0.0 for v in array], dtype=float)
