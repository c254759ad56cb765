"""Retailers' currencies: the baseline's $20 and the reference $60 cart in a retailer's own money.

Converted once, when a retailer onboards, with the dated table in ``rates.json`` (European
Central Bank reference rates; its date and source are in the file and in ``GET /retailer``'s
documentation). A retailer may set either amount itself instead, and must for a currency the
table does not hold. Amounts are rounded to two significant figures: a threshold of ¥3,100
reads as a choice, ¥3,145.00 as an artefact of a rate.
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from typing import Any

BASELINE_USD = 20.0  # the seed's rule: a cart below $20 is called abandoned
TYPICAL_CART_USD = 60.0  # the reference cart value features are scaled to (models.features)


@cache
def _table() -> dict[str, Any]:
    text = resources.files("cartpredict.core").joinpath("rates.json").read_text("utf-8")
    return dict(json.loads(text))


def rates_date() -> str:
    return str(_table()["date"])


def rates_source() -> str:
    return str(_table()["source"])


def known(currency: str) -> bool:
    return currency in _table()["per_usd"]


def from_usd(amount: float, currency: str) -> float:
    """``amount`` US dollars in ``currency``, rounded to two significant figures."""
    per_usd = _table()["per_usd"].get(currency)
    if per_usd is None:
        raise LookupError(currency)
    return _two_figures(amount * float(per_usd))


def _two_figures(x: float) -> float:
    if x <= 0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(x)) - 1)
    return round(round(x / step) * step, 6)
