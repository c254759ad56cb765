"""The API's documents: error responses as the OpenAPI document shows them, and the pages that
read it, Swagger UI at ``/docs`` and ReDoc at ``/redoc``. Their scripts, styles and icon are
served by the service itself, from ``/static`` (the ``fastapi-offline`` package ships them), so
the pages work on a network without internet access and ask no other host for anything."""

import hashlib
from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from cartpredict.serving.schemas import ErrorOut

ASSETS_PATH = "/static"
_ASSETS_PACKAGE = ("fastapi_offline", "static")  # Swagger UI 5 and ReDoc 2 bundles, an icon
REDOC_SCRIPT = "redoc.standalone.js"
# ReDoc's menu shows a logo that every page view fetches from Redocly's CDN (no option turns it
# off). Without a source, the image is dropped as when that fetch fails: the link stays.
_REDOCLY_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'

router = APIRouter(include_in_schema=False)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Every operation can answer 408 (a request too slow to arrive), 422 and 503 (the store
    away) in the one shape; one that takes a key (401) also 429 (over the retailer's rate)."""
    more = {408, 422, 503} | ({429} if 401 in statuses else set())
    return {status: {"model": ErrorOut} for status in sorted({*statuses, *more})}


def assets() -> StaticFiles:
    """The pages' scripts, styles and icon as shipped, to mount at ``ASSETS_PATH`` (after this
    router, whose ReDoc script comes first)."""
    return StaticFiles(packages=[_ASSETS_PACKAGE])


def asset_paths() -> set[str]:
    """The assets' paths: they take no key, like the pages."""
    package, directory = _ASSETS_PACKAGE
    return {f"{ASSETS_PATH}/{asset.name}" for asset in (files(package) / directory).iterdir()}


@router.get(f"{ASSETS_PATH}/{REDOC_SCRIPT}")
async def redoc_script(request: Request) -> Response:
    script, etag = _redoc_script()
    headers = {"ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(script, media_type="text/javascript; charset=utf-8", headers=headers)


@cache
def _redoc_script() -> tuple[bytes, str]:
    """ReDoc's script without its one fetch from another host; its ETag."""
    package, directory = _ASSETS_PACKAGE
    shipped = (files(package) / directory / REDOC_SCRIPT).read_bytes()
    script = shipped.replace(_REDOCLY_LOGO, b'""')
    return script, f'"{hashlib.sha256(script).hexdigest()[:32]}"'


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    app, root = request.app, _root(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        swagger_ui_parameters=app.swagger_ui_parameters,
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    app, root = request.app, _root(request)
    return get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_PATH}/{REDOC_SCRIPT}",
        redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )


def _root(request: Request) -> str:
    """The prefix the service is mounted under behind a proxy, if any (as FastAPI's own pages)."""
    return str(request.scope.get("root_path", "")).rstrip("/")
