"""The browser tests' fixtures: one headless Chromium, one real server on a loopback port with
its own SQLite database, a fresh page per test, and where the screenshots go."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cartpredict.storage.migrate import upgrade
from tests.support.browser import chromium
from tests.support.servers import running_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: while Playwright's synchronous API is open, its event loop counts as running
    in this thread, and the other tests' ``asyncio.run`` would refuse to start."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``cartpredict serve`` process; its base URL."""
    url = f"sqlite:///{tmp_path_factory.mktemp('live') / 'cartpredict.db'}"
    upgrade(url)
    with running_server({"CARTPREDICT_DATABASE_URL": url}) as client:
        yield str(client.base_url).rstrip("/")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """``CARTPREDICT_SCREENSHOTS``, for a person to look at them afterwards; else the test's
    temporary directory."""
    directory = Path(os.environ.get("CARTPREDICT_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory
