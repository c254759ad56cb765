"""The command line, through click's runner."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from cartpredict.api.app import create_app
from cartpredict.cli import DEMO_ENV_FILE, DEMO_RETAILERS, main
from tests.support.factories import make_settings


@pytest.fixture
def runner(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CARTPREDICT_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("CARTPREDICT_OPERATOR_KEY", raising=False)
    return CliRunner()


def key_works(sqlite_url: str, retailer_id: str, key: str) -> bool:
    with TestClient(create_app(make_settings(sqlite_url))) as client:
        response = client.get(
            f"/retailer/{retailer_id}", headers={"Authorization": f"Bearer {key}"}
        )
        return response.status_code == 200


def test_retailer_create_prints_the_config_and_a_working_key(
    runner: CliRunner, sqlite_url: str
) -> None:
    result = runner.invoke(
        main,
        [
            "retailer", "create", "store_9", "--requires-account",
            "--payment-option", "credit_card", "--payment-option", "klarna",
            "--shipping-speed", "standard", "--shipping-speed", "same_day",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["payment_options"] == ["credit_card", "klarna"]
    assert created["shipping_speeds"] == ["standard", "same_day"]
    assert key_works(sqlite_url, "store_9", created["api_key"])


def test_retailer_create_takes_delivery_days_and_a_currency(runner: CliRunner) -> None:
    result = runner.invoke(
        main,
        [
            "retailer", "create", "yen_store", "--payment-option", "card",
            "--shipping-speed", "economy", "--shipping-speed", "express",
            "--shipping-days", "economy:7", "--currency", "JPY",
            "--typical-cart-value", "8000",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["shipping_days"] == {"economy": 7.0}
    assert (created["currency"], created["baseline_threshold"]) == ("JPY", 3100.0)
    assert created["typical_cart_value"] == 8000.0
    for bad, names in ((["--shipping-days", "economy"], "SPEED:DAYS"),
                       (["--shipping-days", "pickup:1"], "shipping_days"),
                       (["--currency", "XAU"], "currency")):  # fmt: skip
        args = ["retailer", "create", "s2", "--payment-option", "card",
                "--shipping-speed", "economy", *bad]  # fmt: skip
        refused = runner.invoke(main, args)
        assert refused.exit_code != 0 and names in refused.output, refused.output
        assert "Traceback" not in refused.output


def test_retailer_create_explains_bad_input(runner: CliRunner) -> None:
    result = runner.invoke(
        main, ["retailer", "create", "s", "--payment-option", "card", "--shipping-speed", "Warp!"]
    )
    assert result.exit_code == 1
    assert "shipping_speeds.0" in result.output
    assert "Traceback" not in result.output


def test_retailer_create_refuses_a_duplicate(runner: CliRunner) -> None:
    args = ["retailer", "create", "s", "--payment-option", "card", "--shipping-speed", "standard"]
    assert runner.invoke(main, args).exit_code == 0
    result = runner.invoke(main, args)
    assert result.exit_code == 1
    assert "already exists" in result.output


def test_rotate_key_revokes_the_old_key(runner: CliRunner, sqlite_url: str) -> None:
    args = ["retailer", "create", "s", "--payment-option", "card", "--shipping-speed", "standard"]
    old = json.loads(runner.invoke(main, args).output)["api_key"]
    new = json.loads(runner.invoke(main, ["retailer", "rotate-key", "s"]).output)["api_key"]
    assert not key_works(sqlite_url, "s", old)
    assert key_works(sqlite_url, "s", new)
    missing = runner.invoke(main, ["retailer", "rotate-key", "nobody"])
    assert missing.exit_code == 1
    assert "No such retailer" in missing.output


def test_db_upgrade_is_idempotent(runner: CliRunner) -> None:
    for _ in range(2):
        result = runner.invoke(main, ["db", "upgrade"])
        assert result.exit_code == 0
        assert "schema up to date" in result.output


def test_a_bad_setting_is_a_clear_error(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTPREDICT_SYNC_INTERVAL_S", "soon")
    result = runner.invoke(main, ["db", "upgrade"])
    assert result.exit_code == 1
    assert "sync_interval_s" in result.output


def test_demo_sets_up_retailers_and_writes_their_keys(
    runner: CliRunner, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = runner.invoke(main, ["demo", "--no-serve"])
    assert first.exit_code == 0, first.output
    env_file = tmp_path / DEMO_ENV_FILE
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    exported = dict(
        line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines()
    )
    assert "curl -s http://127.0.0.1:8000/predict_cart" in first.output
    for spec in DEMO_RETAILERS:
        key = exported[spec["retailer_id"].upper() + "_KEY"]
        assert key in first.output
        assert key_works(sqlite_url, spec["retailer_id"], key)
    # Running again issues new keys; the old ones stop working.
    os.environ.pop("CARTPREDICT_OPERATOR_KEY", None)
    assert runner.invoke(main, ["demo", "--no-serve"]).exit_code == 0
    assert not key_works(sqlite_url, "demo_fashion", exported["DEMO_FASHION_KEY"])


def test_retailer_create_declares_attributes(runner: CliRunner) -> None:
    args = ["retailer", "create", "s", "--payment-option", "card", "--shipping-speed", "standard",
            "--attribute", "coupon:categorical", "--attribute", "visits:numeric"]  # fmt: skip
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["attributes"] == [
        {"name": "coupon", "kind": "categorical"},
        {"name": "visits", "kind": "numeric"},
    ]
    bad = runner.invoke(main, [*args[:7], "--attribute", "coupon:text"])
    assert bad.exit_code == 1
    assert "attributes.0.kind" in bad.output


def test_demo_refuses_a_busy_port_before_changing_anything(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    monkeypatch.chdir(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(main, ["demo", "--port", str(port), "--no-history"])
    assert result.exit_code == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.output
    assert not (tmp_path / DEMO_ENV_FILE).exists()


@pytest.mark.postgres
def test_db_create_service_role_makes_a_least_privilege_login(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.support.databases import as_admin

    admin = as_admin(postgres_url)
    monkeypatch.setenv("CARTPREDICT_DATABASE_URL", admin)
    monkeypatch.setenv("ROLE_SECRET", "s3cret'with\"quotes")
    result = CliRunner().invoke(
        main, ["db", "create-service-role", "cartpredict_cli_app", "--password-env", "ROLE_SECRET"]
    )
    assert result.exit_code == 0, result.output
    assert "cartpredict_cli_app@" in result.output
    service = make_url(admin).set(username="cartpredict_cli_app").render_as_string(False)
    engine = create_engine(service)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
                    "WHERE rolname = current_user"
                )
            ).one()
            assert tuple(row) == (False, False, False, False)
    finally:
        engine.dispose()
    bad = CliRunner().invoke(main, ["db", "create-service-role", "Robert'); DROP"])
    assert bad.exit_code != 0 and "role name" in bad.output
    # The service's role may not change the schema: an out-of-date one is a clear error.
    downgrade(admin, "0006")
    monkeypatch.setenv("CARTPREDICT_DATABASE_URL", service)
    behind = CliRunner().invoke(main, ["db", "upgrade"])
    assert behind.exit_code != 0
    assert "as the schema's owner" in behind.output, behind.output


def downgrade(url: str, revision: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    from cartpredict.storage.migrate import _config

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)
    finally:
        engine.dispose()
