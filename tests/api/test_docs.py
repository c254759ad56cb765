"""The documentation pages and their assets come from the service itself, without a key and
under any rate limit (``tests/browser/`` renders them in a browser cut off from the internet)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cartpredict.api.app import create_app
from tests.support.factories import create_retailer, make_settings

ASSET = re.compile(r'(?:src|href)="([^"]+)"')
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture
def docs_client(sqlite_url: str) -> Iterator[TestClient]:
    settings = make_settings(sqlite_url, rate_limit_per_s=1, rate_limit_burst=1)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_docs_page_loads_every_asset_from_the_service(docs_client: TestClient, page: str) -> None:
    html = docs_client.get(page)
    assert html.status_code == 200
    assets = ASSET.findall(html.text)
    assert assets and all(url.startswith("/static/") for url in assets), assets
    assert "fonts.googleapis" not in html.text
    auth = create_retailer(docs_client, "s")  # a retailer's key over its rate changes nothing
    assert docs_client.get("/retailer/s", headers=auth).status_code == 200  # the key is cached
    for url in assets:
        for headers in ({}, auth, auth):
            answer = docs_client.get(url, headers=headers)
            assert answer.status_code == 200, url
            suffix = url[url.rindex(".") :]
            assert answer.headers["content-type"].startswith(CONTENT_TYPES[suffix]), url


def test_the_redoc_script_asks_redocly_for_no_logo(docs_client: TestClient) -> None:
    script = docs_client.get("/static/redoc.standalone.js")
    assert script.status_code == 200
    assert b"Redoc" in script.content and b"cdn.redoc.ly" not in script.content
    again = docs_client.get("/static/redoc.standalone.js",
                            headers={"If-None-Match": script.headers["etag"]})  # fmt: skip
    assert again.status_code == 304


def test_an_unknown_asset_is_the_usual_404(docs_client: TestClient) -> None:
    for url in ("/static/nothing.js", "/static/../app.py", "/docs/oauth2-redirect"):
        answer = docs_client.get(url)
        assert answer.status_code == 404, url
        assert answer.json()["error"]["code"] == "not_found"
