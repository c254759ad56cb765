"""Settings the service refuses to start with, and the new limits' defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from cartpredict.cli import main
from cartpredict.core.settings import MIN_OPERATOR_KEY_LENGTH, Settings

SHORT_KEY = "a-guessable-operator-key"  # 24 characters


@pytest.mark.parametrize("key", ["a", SHORT_KEY, "x" * (MIN_OPERATOR_KEY_LENGTH - 1)])
def test_an_operator_key_shorter_than_32_characters_is_refused(key: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(operator_key=key)
    message = str(refused.value)
    assert "CARTPREDICT_OPERATOR_KEY must be at least 32 characters" in message
    assert f"'{key}'" not in message and f"={key}" not in message  # never echoed


def test_a_long_enough_operator_key_or_none_is_accepted() -> None:
    assert Settings(operator_key="x" * MIN_OPERATOR_KEY_LENGTH).operator_key is not None
    assert Settings(operator_key=None).operator_key is None


def test_the_server_refuses_to_start_with_a_short_operator_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CARTPREDICT_OPERATOR_KEY", SHORT_KEY)
    # Were the key let through, the server would stop at once anyway: no schema there.
    monkeypatch.setenv("CARTPREDICT_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = CliRunner().invoke(main, ["serve", "--no-migrate", "--port", "1"])
    assert result.exit_code == 1
    assert "CARTPREDICT_OPERATOR_KEY must be at least 32 characters" in result.output
    assert SHORT_KEY not in result.output


def test_a_refused_value_is_never_echoed() -> None:
    """An error names the setting and the reason, not the value: it may be a secret."""
    with pytest.raises(ValidationError) as refused:
        Settings(rate_limit_burst="postgresql://u:hunter2@db/x")  # type: ignore[arg-type]
    assert "hunter2" not in str(refused.value)
    assert "rate_limit_burst" in str(refused.value)


def test_the_limits_defaults() -> None:
    settings = Settings()
    assert (settings.header_timeout_s, settings.body_timeout_s) == (10.0, 30.0)
    # Far above what one key gets in the benchmark (2,000 carts cycled over 1,000 retailers'
    # keys: tens a second) and what `cartpredict loadtest` drives on one key (about 4,000 a
    # second at concurrency 16 on the benchmark's machine).
    assert (settings.rate_limit_per_s, settings.rate_limit_burst) == (5000.0, 10000)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("header_timeout_s", 0),
        ("body_timeout_s", -1),
        ("rate_limit_per_s", -1),
        ("rate_limit_burst", 0),
    ],
)
def test_limits_out_of_range_are_refused(name: str, value: float) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings(**{name: value})
