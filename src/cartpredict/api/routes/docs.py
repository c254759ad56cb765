"""Error responses as the OpenAPI document shows them."""

from typing import Any

from ...schemas import ErrorOut


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Every operation can answer 422 (and 503 when the store is away) in the one shape."""
    return {status: {"model": ErrorOut} for status in sorted({*statuses, 422, 503})}
