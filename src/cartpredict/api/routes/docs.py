"""Error responses as the OpenAPI document shows them."""

from typing import Any

from ...schemas import ErrorOut


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorOut} for status in statuses}
