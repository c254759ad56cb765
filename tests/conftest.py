"""Shared fixtures: a fresh database per test on every backend, the app, helpers.

SQLite always runs. PostgreSQL and Redis run when reachable; when ``CI`` is set, an
unreachable one is an error, not a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, select, text
from sqlalchemy.engine import make_url

from cartpredict.api.app import create_app
from cartpredict.settings import Settings
from cartpredict.storage.migrate import upgrade
from cartpredict.storage.roles import create_service_login

OPERATOR_KEY = "test-operator-key-of-at-least-32-characters"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}
PG_ADMIN_URL = os.environ.get(
    "CARTPREDICT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("CARTPREDICT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = bool(os.environ.get("CI"))
SERVICE_ROLE = "cartpredict_test_service"  # cluster-wide, like the roles the migrations make


class SettableClock:
    """A clock a test moves by hand (``clock.now = ...``)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def unavailable(what: str, why: object) -> None:
    message = f"{what} is not reachable ({why})"
    if IN_CI:
        pytest.fail(f"{message}; CI requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Any]:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        unavailable("PostgreSQL", exc)
    yield engine
    engine.dispose()


def _fresh_postgres(admin: Any) -> Iterator[str]:
    name = f"cartpredict_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url(postgres_admin: Any) -> Iterator[str]:
    """A new PostgreSQL database, migrated by the administrator and dropped afterwards; the URL
    logs in as the service does in production: a least-privilege role (``db
    create-service-role``), subject to row-level security."""
    for url in _fresh_postgres(postgres_admin):
        upgrade(url)
        create_service_login(url, SERVICE_ROLE)
        yield make_url(url).set(username=SERVICE_ROLE).render_as_string(hide_password=False)


def as_admin(url: str) -> str:
    """The same PostgreSQL database, as the administrator who owns its schema."""
    admin = make_url(PG_ADMIN_URL)
    return (
        make_url(url)
        .set(username=admin.username, password=admin.password)
        .render_as_string(hide_password=False)
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cartpredict.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Every backend: the test runs once per store."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", exc)
    finally:
        client.close()
    return REDIS_URL


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "operator_key": OPERATOR_KEY,
        "sync_interval_s": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(database_url))) as test_client:
        yield test_client


def retailer_spec(retailer_id: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "retailer_id": retailer_id,
        "requires_account": True,
        "payment_options": ["credit_card", "paypal"],
        "shipping_speeds": ["standard", "express"],
    }
    spec.update(overrides)
    return spec


def create_retailer(client: TestClient, retailer_id: str, **overrides: Any) -> dict[str, str]:
    """Create the retailer; return the Authorization header of its key."""
    response = client.post(
        "/retailer", json=retailer_spec(retailer_id, **overrides), headers=OPERATOR
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


def cart(retailer_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "retailer_id": retailer_id,
        "cart_value": 45.99,
        "item_count": 3,
        "inactivity_hours": 12,
        "device_type": "mobile",
        "shipping_speed": "standard",
    }
    body.update(overrides)
    return body


def snapshot(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: compare before and after to prove nothing changed."""
    engine = create_engine(database_url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return {
                name: sorted(tuple(map(repr, row)) for row in conn.execute(select(table)))
                for name, table in sorted(meta.tables.items())
            }
    finally:
        engine.dispose()
