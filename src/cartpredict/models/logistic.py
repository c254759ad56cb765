"""A trained logistic model as served: named weights on P(abandoned) log-odds, a threshold."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from cartpredict.models.base import Score
from cartpredict.models.features import LOG_THREE_HOURS, CartLike, FeatureSpec
from cartpredict.storage import Retailer

KIND = "logistic"


@dataclass(frozen=True)
class LogisticModel:
    """P(abandoned) = sigmoid(intercept + weights . features(cart, retailer))."""

    version: str
    spec: FeatureSpec
    intercept: float
    weights: tuple[float, ...]
    threshold: float
    kind: str = "retailer"  # or "pooled"

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.spec.names()):
            raise ValueError("one weight per feature")

    def logit(self, row: Sequence[float]) -> float:
        """(``map`` over the two, not a generator of products: half the time, on the request
        path; ``spec.row`` makes one value per weight, as ``__post_init__`` checks.)"""
        return self.intercept + math.fsum(map(operator.mul, self.weights, row))

    def p_abandoned(self, cart: CartLike, retailer: Retailer) -> float:
        return _sigmoid(self.logit(self.spec.row(cart, retailer)))

    def score(self, cart: CartLike, retailer: Retailer) -> Score:
        p = self.p_abandoned(cart, retailer)
        return Score(p, p >= self.threshold)

    def score_over_inactivity(
        self, cart: CartLike, retailer: Retailer
    ) -> tuple[Score, Callable[[float], float]]:
        """``score``, and P(abandoned) as a function of the cart's hours of inactivity.
        Inactivity enters the
        logit only as x = log1p(hours), through ``a·x + s·(x − c)²`` (a gathers its products
        with value, mobile and the threshold flag), so each further hour costs two
        multiplications, not a feature row; a spec whose own products involve inactivity is
        scored row by row instead."""
        row = self.spec.row(cart, retailer)
        weights = self.weights
        logit = self.logit(row)
        p = _sigmoid(logit)
        score = Score(p, p >= self.threshold)
        terms = self._inactivity_terms
        if terms is None:
            return score, lambda hours: _sigmoid(
                self.logit(self.spec.row(_At(cart, hours), retailer))
            )
        at_x, square_at, linear = terms
        gathered = 0.0
        for w, f in linear:
            gathered += weights[w] * row[f]
        slope = weights[at_x] + gathered
        x0 = row[at_x]
        if square_at is None:
            base = logit - slope * x0
            return score, lambda hours: _sigmoid(base + slope * math.log1p(hours))
        s = self.weights[square_at]
        base = logit - slope * x0 - s * (x0 - LOG_THREE_HOURS) ** 2

        def curve(hours: float) -> float:
            x = math.log1p(hours)
            return _sigmoid(base + slope * x + s * (x - LOG_THREE_HOURS) ** 2)

        return score, curve

    @cached_property
    def _inactivity_terms(self) -> tuple[int, int | None, list[tuple[int, int]]] | None:
        """(index of log_inactivity, of its square or None, [(weight index of a product with
        inactivity, index of the feature it multiplies)]); None when the spec has none or its
        own products involve inactivity."""
        names = self.spec.names()
        if "log_inactivity" not in names or any(
            "log_inactivity" in pair for pair in self.spec.interactions
        ):
            return None
        index = {n: i for i, n in enumerate(names)}
        factors = {
            "log_value_x_log_inactivity": "log_value",
            "mobile_x_log_inactivity": "device_mobile",
            "below_20_x_log_inactivity": "below_20",
            "below_threshold_x_log_inactivity": "below_threshold",
        }
        linear = [(index[p], index[f]) for p, f in factors.items() if p in index]
        return index["log_inactivity"], index.get("log_inactivity_sq"), linear

    def contributions(self, cart: CartLike, retailer: Retailer) -> dict[str, float]:
        """Weight x value per feature (log-odds of abandonment); they sum, with the intercept,
        to the logit of ``abandonment_probability``."""
        row = self.spec.row(cart, retailer)
        out = {"intercept": self.intercept}
        out.update({n: w * x for n, w, x in zip(self.spec.names(), self.weights, row, strict=True)})
        return out

    def named_weights(self) -> dict[str, float]:
        return dict(zip(self.spec.names(), self.weights, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "features": self.spec.to_dict(),
            "intercept": self.intercept,
            "weights": self.named_weights(),
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, version: str, kind: str = "retailer"
    ) -> LogisticModel:
        spec = FeatureSpec.from_dict(data["features"])
        weights = data["weights"]
        return cls(
            version=version,
            spec=spec,
            intercept=float(data["intercept"]),
            weights=tuple(float(weights[name]) for name in spec.names()),
            threshold=float(data["threshold"]),
            kind=kind,
        )


@dataclass(frozen=True, slots=True)
class _At:
    """A cart as it would be after ``inactivity_hours``."""

    cart: CartLike
    inactivity_hours: float

    @property
    def cart_value(self) -> float:
        return self.cart.cart_value

    @property
    def item_count(self) -> int:
        return self.cart.item_count

    @property
    def device_type(self) -> str:
        return self.cart.device_type

    @property
    def shipping_speed(self) -> str:
        return self.cart.shipping_speed

    @property
    def attributes(self) -> Mapping[str, float | str]:
        return self.cart.attributes


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
