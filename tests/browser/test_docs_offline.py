"""The interactive API docs work on a network without internet access: Swagger UI (``/docs``)
and ReDoc (``/redoc``) render every operation in a real browser that can reach the service
alone, and try to reach nothing else. Screenshots go to ``CARTPREDICT_SCREENSHOTS``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2 as httpx
import pytest

from tests.support.browser import offline

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RENDER_TIMEOUT_MS = 30_000
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def operations(base_url: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every operation in the service's OpenAPI document."""
    document = httpx.get(f"{base_url}/openapi.json").raise_for_status().json()
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_swagger_ui_renders_every_operation_offline(
    page: Page, live_server: str, screenshots: Path
) -> None:
    traffic = offline(page)
    page.goto(f"{live_server}/docs")
    predict = page.locator(".opblock", has_text="/predict_cart").first
    predict.wait_for(timeout=RENDER_TIMEOUT_MS)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=screenshots / "docs.png", full_page=True)

    assert page.locator(".opblock").count() == len(operations(live_server))
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("cartpredict")
    assert traffic.problems() == {}


def test_redoc_renders_every_operation_offline(
    page: Page, live_server: str, screenshots: Path
) -> None:
    traffic = offline(page)
    page.goto(f"{live_server}/redoc")
    menu = page.locator(".menu-content")
    predict = menu.locator('[role=menuitem][data-item-id*="/operation/predict_cart"]').first
    predict.wait_for(state="attached", timeout=RENDER_TIMEOUT_MS)  # in a folded group
    page.wait_for_load_state("networkidle")
    page.screenshot(path=screenshots / "redoc.png")

    documented = operations(live_server)
    for method, path, operation in documented:
        entry = menu.get_by_role(
            "menuitem", name=operation["summary"], exact=True, include_hidden=True
        )
        assert entry.count() == 1, (method, path)
    first = next(op["summary"] for method, path, op in documented if path == "/predict_cart")
    assert page.get_by_role("heading", name=first).is_visible()
    assert traffic.problems() == {}
