"""Which model serves a retailer.

Until a trained model version has been promoted for a retailer, the baseline rule serves it.
"""

from __future__ import annotations

from ..storage import Retailer, Store
from .base import ServedModel
from .baseline import BaselineRule


class ModelRegistry:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._baseline = BaselineRule()

    def served_model(self, retailer: Retailer) -> ServedModel:
        return self._baseline
