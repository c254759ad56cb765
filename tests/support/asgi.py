"""ASGI wrappers for tests."""

from __future__ import annotations

from typing import Any

from starlette.types import Receive, Scope, Send


class Counting:
    """Counts the HTTP requests that reach the app it wraps."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await self.app(scope, receive, send)
