"""Storage: one interface (``Store``), backends chosen by URL scheme."""

from .base import Change, Retailer, Store
from .registry import open_store

__all__ = ["Change", "Retailer", "Store", "open_store"]
