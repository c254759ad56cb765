"""The PostgreSQL and Redis the tests use: where they are, a fresh database per test, and what
happens when one is not reachable (a skip; an error when ``CI`` is set)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get(
    "CARTPREDICT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("CARTPREDICT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = bool(os.environ.get("CI"))
SERVICE_ROLE = "cartpredict_test_service"  # cluster-wide, like the roles the migrations make


def unavailable(what: str, why: object) -> None:
    message = f"{what} is not reachable ({why})"
    if IN_CI:
        pytest.fail(f"{message}; CI requires it", pytrace=False)
    pytest.skip(message)


def fresh_postgres(admin: Any) -> Iterator[str]:
    name = f"cartpredict_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def as_admin(url: str) -> str:
    """The same PostgreSQL database, as the administrator who owns its schema."""
    admin = make_url(PG_ADMIN_URL)
    return (
        make_url(url)
        .set(username=admin.username, password=admin.password)
        .render_as_string(hide_password=False)
    )
