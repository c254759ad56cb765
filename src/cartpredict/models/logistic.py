"""A trained logistic model as served: named weights on P(abandoned) log-odds, a threshold."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cartpredict.models.base import Score
from cartpredict.models.features import CartLike, FeatureSpec
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
        return self.intercept + math.fsum(w * x for w, x in zip(self.weights, row, strict=True))

    def p_abandoned(self, cart: CartLike, retailer: Retailer) -> float:
        return _sigmoid(self.logit(self.spec.row(cart, retailer)))

    def score(self, cart: CartLike, retailer: Retailer) -> Score:
        p = self.p_abandoned(cart, retailer)
        return Score(p, p >= self.threshold)

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


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
