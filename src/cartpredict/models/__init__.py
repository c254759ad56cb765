"""Models: what turns a cart into P(abandoned), and the registry that says which one serves."""

from .base import Score, ServedModel
from .baseline import BaselineRule

__all__ = ["BaselineRule", "Score", "ServedModel"]
