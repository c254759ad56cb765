"""Models: what turns a cart into P(abandoned), and the registry that says which one serves."""

from cartpredict.models.base import Score, ServedModel
from cartpredict.models.baseline import BaselineRule

__all__ = ["BaselineRule", "Score", "ServedModel"]
