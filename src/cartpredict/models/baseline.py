"""The seed's baseline as an estimator: predict ``abandoned`` for every cart below $20 (in the
retailer's currency: its ``baseline_threshold``, $20 converted at onboarding or its own).

Its probability is honest: P(abandoned) is the abandonment rate observed on the cart's side of
the rule. Unfitted, both sides carry the best public prior, Baymard Institute's average
documented cart abandonment rate (70.19 %, average of 49 studies, 2024). ``fit`` replaces the
prior with a retailer's own outcomes, shrunk toward it by ``prior_strength`` pseudo-carts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from cartpredict.models.base import Score
from cartpredict.models.features import CartLike
from cartpredict.storage import Retailer

BAYMARD_ABANDONMENT_RATE = 0.7019


class BaselineRule:
    version = "baseline"
    kind = "baseline"
    threshold = None

    def __init__(
        self,
        value_threshold: float | None = None,
        prior: float = BAYMARD_ABANDONMENT_RATE,
        prior_strength: float = 10.0,
    ) -> None:
        self.value_threshold = value_threshold
        self.prior = prior
        self.prior_strength = prior_strength
        self.p_abandoned_below_ = prior
        self.p_abandoned_above_ = prior

    def threshold_for(self, retailer: Retailer) -> float:
        """The threshold in ``retailer``'s currency: the rule's own when it was given one,
        else the retailer's ``baseline_threshold`` ($20 converted, or its own choice)."""
        if self.value_threshold is not None:
            return self.value_threshold
        return retailer.baseline_threshold

    def describe(self, retailer: Retailer) -> str:
        """The rule in words, in the retailer's currency."""
        return f"abandoned when cart_value < {self.threshold_for(retailer):g} {retailer.currency}"

    def fit(
        self, cart_values: Collection[float], abandoned: Collection[bool], *, threshold: float
    ) -> BaselineRule:
        """Abandonment rates below and above ``threshold`` (the retailer's, see
        ``threshold_for``)."""
        if len(cart_values) != len(abandoned):
            raise ValueError("cart_values and abandoned differ in length")
        counts = {True: [0, 0], False: [0, 0]}  # side -> [carts, abandoned]
        for value, outcome in zip(cart_values, abandoned, strict=True):
            side = counts[value < threshold]
            side[0] += 1
            side[1] += bool(outcome)
        return self.fit_counts(below=counts[True], above=counts[False])

    def fit_counts(self, *, below: Sequence[int], above: Sequence[int]) -> BaselineRule:
        """``fit`` from (carts, abandoned) counts on each side of the rule."""
        self.p_abandoned_below_ = self._rate(*below)
        self.p_abandoned_above_ = self._rate(*above)
        return self

    def _rate(self, carts: int, abandoned: int) -> float:
        k = self.prior_strength
        return (abandoned + k * self.prior) / (carts + k)

    def score_over_inactivity(
        self, cart: CartLike, retailer: Retailer
    ) -> tuple[Score, Callable[[float], float]]:
        """The rule does not look at inactivity."""
        score = self.score(cart, retailer)
        return score, lambda hours: score.p_abandoned

    def score(self, cart: CartLike, retailer: Retailer) -> Score:
        below = cart.cart_value < self.threshold_for(retailer)
        return Score(self.p_abandoned_below_ if below else self.p_abandoned_above_, below)
