"""Storage: one interface (``Store``), backends chosen by URL scheme."""

from .base import POOLED_SCOPE, Change, ModelVersion, Promotion, Retailer, Store, StoredEvent
from .registry import open_store

__all__ = [
    "POOLED_SCOPE",
    "Change",
    "ModelVersion",
    "Promotion",
    "Retailer",
    "Store",
    "StoredEvent",
    "open_store",
]
