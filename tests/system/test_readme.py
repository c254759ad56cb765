"""The README's examples work as written, against a real ``cartpredict demo`` server."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cartpredict.cli import DEMO_ENV_FILE
from tests.support.servers import running_server

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)

pytestmark = pytest.mark.slow


def examples() -> list[tuple[str, str, str]]:
    """(curl command, language of the answer shown after it, that answer), in README order."""
    blocks = BLOCK.findall(README.read_text())
    found = []
    for (lang, code), (next_lang, answer) in itertools.pairwise(blocks):
        if lang == "bash" and "curl" in code and "$CARTPREDICT_URL" in code:
            assert next_lang in {"json", "text"}, f"no documented answer after:\n{code}"
            found.append((code, next_lang, answer))
    return found


def kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def conforms(actual: Any, documented: Any, path: str = "$") -> list[str]:
    """Where the answer lacks a documented field or has another type (extra fields are fine:
    responses may add fields, never drop them)."""
    if isinstance(documented, dict):
        if actual is None and path.endswith(".decision"):
            return []  # a band's decision, named only when 10 of its carts got it
        if not isinstance(actual, dict):
            return [f"{path}: expected an object"]
        problems = [f"{path}.{k}: missing" for k in documented if k not in actual]
        for key in documented:
            if key in actual:
                problems += conforms(actual[key], documented[key], f"{path}.{key}")
        return problems
    if isinstance(documented, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list"]
        if len(documented) == 1:  # one element shown stands for any number of that shape
            return [p for a in actual for p in conforms(a, documented[0], path)]
        if len(actual) != len(documented):
            return [f"{path}: expected a list of {len(documented)}"]
        return [p for a, d in zip(actual, documented, strict=True) for p in conforms(a, d, path)]
    if actual is None and kind(documented) == "number":
        return []  # a count or a ratio left out for k-anonymity (the response says so)
    if kind(actual) != kind(documented):
        return [f"{path}: {kind(actual)} where the README shows {kind(documented)}"]
    return []


def test_the_readme_has_examples_for_every_endpoint() -> None:
    commands = " ".join(code for code, _, _ in examples())
    for path in ("/predict_cart ", "/predict_cart/batch", "/retailer ", "/retailer/store_12345"):
        assert path in commands.replace("\\\n", " ").replace("\n", " ") + " ", path
    assert "-X PATCH" in commands
    assert "-X DELETE" in commands


def test_every_curl_example_answers_as_documented(sqlite_url: str, tmp_path: Path) -> None:
    env = {"CARTPREDICT_DATABASE_URL": sqlite_url}
    with running_server(env, command=("demo",), cwd=tmp_path, timeout_s=180):
        env_file = tmp_path / DEMO_ENV_FILE
        for code, lang, documented in examples():
            run = subprocess.run(
                ["bash", "-c", f"set -e; source {env_file}; {code}"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert run.returncode == 0, (code, run.stderr)
            if lang == "text":
                assert run.stdout.strip() == documented.strip(), code
            else:
                assert conforms(json.loads(run.stdout), json.loads(documented)) == [], code
