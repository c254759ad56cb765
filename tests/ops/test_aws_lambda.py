"""The Lambda entry point, invoked with real API Gateway HTTP API (payload 2.0) events."""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartpredict.api.app import create_app
from cartpredict.storage.migrate import upgrade
from tests.support.factories import OPERATOR, OPERATOR_KEY, cart, create_retailer, make_settings


def event(
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API event, payload format version 2.0, as AWS documents it."""
    raw = json.dumps(body).encode() if body is not None else b""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "*/*",
            "content-length": str(len(raw)),
            "content-type": "application/json",
            "host": "abc123.execute-api.eu-west-1.amazonaws.com",
            "user-agent": "curl/8.5.0",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
            **(headers or {}),
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "24/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795514400000,
        },
        "body": base64.b64encode(raw).decode() if base64_body else raw.decode(),
        "isBase64Encoded": base64_body,
    }


class Context:
    function_name = "cartpredict"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 3000


@pytest.fixture
def lambda_module(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ModuleType, dict[str, str]]]:
    upgrade(sqlite_url)
    with TestClient(create_app(make_settings(sqlite_url))) as client:
        key = create_retailer(client, "store_1")
    monkeypatch.setenv("CARTPREDICT_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("CARTPREDICT_OPERATOR_KEY", OPERATOR_KEY)
    monkeypatch.setenv("CARTPREDICT_SYNC_INTERVAL_S", "0.1")
    sys.modules.pop("cartpredict.ops.aws_lambda", None)
    module = importlib.import_module("cartpredict.ops.aws_lambda")
    try:
        yield module, key
    finally:
        module.app.state.services.close()
        sys.modules.pop("cartpredict.ops.aws_lambda", None)
        # Mangum runs every invocation on one event loop it sets for the process (as a Lambda
        # container would keep it); close it here, where the "container" ends.
        loop = asyncio.get_event_loop_policy().get_event_loop()
        loop.close()
        asyncio.set_event_loop(None)


def test_a_prediction_through_api_gateway(lambda_module: tuple[ModuleType, dict[str, str]]) -> None:
    module, key = lambda_module
    for encoded in (False, True):
        answer = module.handler(
            event(
                "POST",
                "/predict_cart",
                body=cart("store_1"),
                headers=lower(key),
                base64_body=encoded,
            ),
            Context(),
        )
        assert answer["statusCode"] == 200, answer
        assert answer["headers"]["content-type"] == "application/json"
        body = json.loads(answer["body"])
        assert body["retailer_id"] == "store_1"
        assert body["prediction"] in {"abandoned", "purchased"}
        assert body["model_version"] == "baseline"


def test_errors_keep_their_shape_through_api_gateway(
    lambda_module: tuple[ModuleType, dict[str, str]],
) -> None:
    module, key = lambda_module
    bad = module.handler(
        event("POST", "/predict_cart", body=cart("store_1", cart_value=-1), headers=lower(key)),
        Context(),
    )
    assert bad["statusCode"] == 422
    assert json.loads(bad["body"])["error"]["details"][0]["field"] == "cart_value"
    anonymous = module.handler(event("POST", "/predict_cart", body=cart("store_1")), Context())
    assert anonymous["statusCode"] == 401
    health = module.handler(event("GET", "/healthz"), Context())
    assert (health["statusCode"], json.loads(health["body"])) == (200, {"status": "ok"})


def test_a_change_made_elsewhere_is_seen_after_the_sync_interval(
    lambda_module: tuple[ModuleType, dict[str, str]], sqlite_url: str
) -> None:
    module, key = lambda_module
    express = cart("store_1", shipping_speed="express")
    first = module.handler(
        event("POST", "/predict_cart", body=express, headers=lower(key)), Context()
    )
    assert first["statusCode"] == 200  # cached now
    with TestClient(create_app(make_settings(sqlite_url))) as other:  # another process's write
        changed = other.patch(
            "/retailer/store_1", json={"shipping_speeds": ["standard"]}, headers=OPERATOR
        )
        assert changed.status_code == 200
    time.sleep(0.2)
    after = module.handler(
        event("POST", "/predict_cart", body=express, headers=lower(key)), Context()
    )
    assert after["statusCode"] == 422


def test_predictions_reach_the_log_and_a_scheduled_event_updates_the_stats(
    lambda_module: tuple[ModuleType, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, key = lambda_module
    monkeypatch.setattr(module, "FLUSH_EVERY_S", 0.0)  # every invocation writes its buffer
    for i in range(12):
        body = cart("store_1", cart_id=f"c-{i}", cart_value=10.0 + i)
        answer = module.handler(event("POST", "/predict_cart", body=body, headers=lower(key)),
                                Context())  # fmt: skip
        assert answer["statusCode"] == 200
    svc = module.app.state.services
    assert len(svc.recorder) == 0  # written by the invocations themselves
    scheduled = {"version": "0", "source": "aws.events", "detail-type": "Scheduled Event",
                 "detail": {}, "time": "2026-11-24T10:00:00Z"}  # fmt: skip
    assert module.handler(scheduled, Context()) == {"upkeep": "done"}
    today = datetime.now(UTC).date()
    (day,) = svc.store.daily_stats(retailer_id="store_1", start=today, end=today)
    assert day.figures["carts"] == 12


def test_the_handler_imports_in_a_fresh_interpreter(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    heavy = ("numpy", "scipy", "sklearn", "matplotlib", "pandas", "alembic")
    code = (
        "import sys, cartpredict.ops.aws_lambda as m; "
        f"print(callable(m.handler), sorted(n for n in {heavy!r} if n in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"CARTPREDICT_DATABASE_URL": sqlite_url, "PATH": ""},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True []"  # nothing heavy on a cold start


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
