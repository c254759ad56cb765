"""The contract every served model meets."""

from __future__ import annotations

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
