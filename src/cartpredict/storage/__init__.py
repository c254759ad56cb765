"""Storage: one interface (``Store``), backends chosen by URL scheme."""

from .base import (
    POOLED_SCOPE,
    Change,
    DailyStats,
    EventConflict,
    ModelVersion,
    NoSuchRetailer,
    Promotion,
    Retailer,
    ScoredCart,
    Store,
    StoredEvent,
)
from .registry import open_store

__all__ = [
    "POOLED_SCOPE",
    "Change",
    "DailyStats",
    "EventConflict",
    "ModelVersion",
    "NoSuchRetailer",
    "Promotion",
    "Retailer",
    "ScoredCart",
    "Store",
    "StoredEvent",
    "open_store",
]
