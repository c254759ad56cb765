"""A headless Chromium for the browser tests, and a page cut off from the internet.

The browser is Debian's ``chromium`` (``make install`` installs it when missing), driven by
Playwright, which downloads no browser of its own here. When it cannot be started the tests are
skipped, and when ``CI`` is set that is an error (``unavailable``, as for the servers)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tests.support.databases import unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route

CHROMIUM = os.environ.get("CARTPREDICT_CHROMIUM", "/usr/bin/chromium")
LOOPBACK = "127.0.0.1"
ARGS = [
    # Chromium's sandbox needs user namespaces, which a root process in a container rarely has.
    *(["--no-sandbox"] if os.geteuid() == 0 else []),
    "--disable-dev-shm-usage",  # a small /dev/shm in containers crashes tabs
    # No name resolves but the loopback address: offline even for what a route would not see.
    f"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE {LOOPBACK}",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium, closed afterwards."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        unavailable("Playwright", f"{exc}: pip install -e '.[dev]'")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable("Chromium", f"no {CHROMIUM}; `make install` installs Debian's")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        except Error as exc:
            unavailable("Chromium", f"{CHROMIUM} does not start: {exc.message}")
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Traffic:
    """What a page tried beyond the test server, what failed and what it logged as an error."""

    outside: list[str] = field(default_factory=list)  # requests to any other host, refused
    failed: list[str] = field(default_factory=list)  # the server's own, not answered
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions

    def problems(self) -> dict[str, list[str]]:
        return {k: v for k, v in vars(self).items() if v}


def offline(page: Page, host: str = LOOPBACK) -> Traffic:
    """Cut ``page``'s browser context off from every host but ``host``: any other request is
    aborted, and recorded."""
    traffic = Traffic()

    def local(url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in {"data", "blob"} or parts.hostname == host

    def route(route: Route) -> None:
        if local(route.request.url):
            route.continue_()
        else:
            traffic.outside.append(route.request.url)
            route.abort("internetdisconnected")

    def failed(request: Request) -> None:
        if local(request.url):
            traffic.failed.append(f"{request.url}: {request.failure}")

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            traffic.errors.append(f"{message.text} ({message.location.get('url')})")

    page.context.route("**/*", route)
    page.on("requestfailed", failed)
    page.on("console", console)
    page.on("pageerror", lambda error: traffic.errors.append(f"uncaught: {error}"))
    return traffic
