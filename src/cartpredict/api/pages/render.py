"""Pages from Jinja2 templates, every value escaped, with headers that keep them to themselves.

Autoescaping is on for every template, so a value from a request (a retailer's attribute value
that became a weight's name, say) renders as text. The Content-Security-Policy allows the
service's own stylesheet and nothing else: no script at all, no inline style, no other host,
no framing, forms posted only to the service.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from cartpredict.api.pages import bands, figures

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("cartpredict.api.pages", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        pct=figures.pct,
        count=figures.count,
        money=figures.money,
        points=figures.points,
        signed=figures.signed,
    )
    # The stats' bands and decisions as the pages word and draw them, from the ``stats``
    # answer a page already has (``bands.py``).
    env.globals.update(
        recommended=bands.recommended,
        recommended_chart=bands.recommended_chart,
        realised=bands.realised,
        realised_chart=bands.realised_chart,
    )
    return env


def root(request: Request) -> str:
    """The prefix the service is mounted under behind a proxy, if any."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    html = environment().get_template(template).render(root=root(request), **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS | (headers or {}))
