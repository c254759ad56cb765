"""Shared fixtures: a fresh database per test on every backend, Redis, the app (helpers live in
``tests/support/``).

SQLite always runs. PostgreSQL and Redis run when reachable; when ``CI`` is set, an
unreachable one is an error, not a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cartpredict.api.app import create_app
from cartpredict.storage.migrate import upgrade
from cartpredict.storage.roles import create_service_login
from tests.support.databases import (
    PG_ADMIN_URL,
    REDIS_URL,
    SERVICE_ROLE,
    fresh_postgres,
    unavailable,
)
from tests.support.factories import make_settings


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


@pytest.fixture
def postgres_url(postgres_admin: Any) -> Iterator[str]:
    """A new PostgreSQL database, migrated by the administrator and dropped afterwards; the URL
    logs in as the service does in production: a least-privilege role (``db
    create-service-role``), subject to row-level security."""
    for url in fresh_postgres(postgres_admin):
        upgrade(url)
        create_service_login(url, SERVICE_ROLE)
        yield make_url(url).set(username=SERVICE_ROLE).render_as_string(hide_password=False)


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


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(database_url))) as test_client:
        yield test_client
