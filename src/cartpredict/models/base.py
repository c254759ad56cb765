"""The contract every served model meets."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

from cartpredict.models.features import CartLike
from cartpredict.storage import Retailer


class Score(NamedTuple):
    p_abandoned: float
    abandoned: bool


class ServedModel(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def kind(self) -> str:
        """ "baseline", "pooled" or "retailer" (a retailer's own model)."""

    @property
    def threshold(self) -> float | None:
        """P(abandoned) at or above which a cart is called abandoned; None for a rule."""

    def score(self, cart: CartLike, retailer: Retailer) -> Score: ...

    def score_over_inactivity(
        self, cart: CartLike, retailer: Retailer
    ) -> tuple[Score, Callable[[float], float]]:
        """``score``, and P(abandoned) of this cart as a function of its hours of inactivity
        (all else as it is): what waiting before an action would find."""
