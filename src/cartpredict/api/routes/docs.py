"""Error responses as the OpenAPI document shows them."""

from typing import Any

from cartpredict.serving.schemas import ErrorOut


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Every operation can answer 408 (a request too slow to arrive), 422 and 503 (the store
    away) in the one shape; one that takes a key (401) also 429 (over the retailer's rate)."""
    more = {408, 422, 503} | ({429} if 401 in statuses else set())
    return {status: {"model": ErrorOut} for status in sorted({*statuses, *more})}
