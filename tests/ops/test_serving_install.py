"""The serving install: `pip install cartpredict` serves and administers without numpy, scipy,
scikit-learn or matplotlib; the commands that need `[learn]` say so in one line."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tomllib
from contextlib import closing
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement

from cartpredict.cli import LEARNING_PACKAGES, main
from tests.support.factories import cart, snapshot
from tests.support.servers import running_server

ROOT = Path(__file__).resolve().parents[2]
NEEDS_LEARN = "needs the learning extras: pip install 'cartpredict[learn]'"


@dataclass(frozen=True)
class Trained:
    """A SQLite database with a simulated history and trained models, and a retailer served
    by its own trained model, with its key."""

    path: Path
    retailer_id: str
    key: str

    def copy(self, directory: Path) -> str:
        """A private copy of the database (tests write to it); its URL."""
        target = directory / "trained.db"
        with closing(sqlite3.connect(self.path)) as src, closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
        return f"sqlite:///{target}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    path = tmp_path_factory.mktemp("trained") / "cartpredict.db"
    env = {"CARTPREDICT_DATABASE_URL": f"sqlite:///{path}"}
    runner = CliRunner()
    simulated = runner.invoke(main, ["simulate", "--retailers", "2", "--days", "7", "--seed", "2"],
                              env=env)  # fmt: skip
    assert simulated.exit_code == 0, simulated.output
    result = runner.invoke(main, ["train"], env=env)
    assert result.exit_code == 0, result.output
    promoted = [line.split()[0] for line in result.output.splitlines() if " promoted " in line]
    retailer_id = next(scope for scope in promoted if not scope.startswith("@"))
    rotated = runner.invoke(main, ["retailer", "rotate-key", retailer_id], env=env)
    assert rotated.exit_code == 0, rotated.output
    return Trained(path, retailer_id, json.loads(rotated.output)["api_key"])


# --- the learning extras, declared and checked ---------------------------------------------


def test_the_learn_extra_is_exactly_what_the_commands_check_for() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    learn = {Requirement(r).name for r in project["optional-dependencies"]["learn"]}
    base = {Requirement(r).name for r in project["dependencies"]}
    providers = packages_distributions()
    checked = {dist.lower() for name in LEARNING_PACKAGES for dist in providers[name]}
    assert checked == learn
    assert not base & learn


@pytest.mark.parametrize(
    "args",
    [
        ["train"],
        ["train", "--retailer", "nobody"],
        ["simulate", "--retailers", "1", "--days", "1"],
        ["evaluate", "--retailers", "1", "--days", "2"],
        ["demo", "--no-serve"],
    ],
)
def test_a_learning_command_without_the_extras_says_so_in_one_line_and_changes_nothing(
    args: list[str], sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in LEARNING_PACKAGES:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("CARTPREDICT_DATABASE_URL", sqlite_url)
    before = snapshot(sqlite_url)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a clean exit, no traceback
    [line] = result.output.splitlines()
    assert line.startswith(f"Error: cartpredict {args[0]} {NEEDS_LEARN}")
    assert snapshot(sqlite_url) == before
    assert list(workdir.iterdir()) == []  # no demo env file written


@pytest.mark.parametrize("missing", LEARNING_PACKAGES)
def test_any_one_missing_learning_package_is_reported(
    missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)
    out = tmp_path / "sim.jsonl"
    result = CliRunner().invoke(main, ["simulate", "--days", "1", "--out", str(out)])
    assert result.exit_code == 1
    assert NEEDS_LEARN in result.output
    assert not out.exists()


# --- serving and admin import none of it ----------------------------------------------------

# Run in a fresh interpreter where any import of a learning package is recorded and refused:
# the API app, the CLI, the server and the Lambda handler are imported, a prediction is served
# by a trained model, the upkeep jobs (log write, daily rollup, purge) run, and so do the admin
# commands.
SERVING_ONLY = r"""
import importlib.abc, json, sys

LEARNING = set(sys.argv[1].split(","))
attempts = []


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in LEARNING:
            attempts.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Refuse())
case = json.loads(sys.argv[2])

import cartpredict.api.app, cartpredict.cli, cartpredict.ops.cost, cartpredict.ops.loadtest
import cartpredict.ops.server
from cartpredict.ops import aws_lambda
from cartpredict.cli import main


def call(method, path, body=None):
    raw = json.dumps(body) if body is not None else ""
    event = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"authorization": "Bearer " + case["key"], "content-type": "application/json",
                    "host": "api.example.com", "content-length": str(len(raw))},
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "203.0.113.7"},
                           "routeKey": "$default", "stage": "$default"},
        "body": raw, "isBase64Encoded": False,
    }
    answer = aws_lambda.handler(event, None)
    return answer["statusCode"], json.loads(answer["body"])


rid = case["retailer_id"]
_, config = call("GET", "/retailer/" + rid)
body = dict(case["cart"], shipping_speed=config["shipping_speeds"][0])
status, prediction = call("POST", "/predict_cart", body)
stats_status, _ = call("GET", "/retailer/" + rid + "/stats")
upkeep = aws_lambda.handler({"source": "aws.events"}, None)

commands = {}
for args in (
    ["db", "upgrade"],
    ["retailer", "create", "plain", "--payment-option", "card", "--shipping-speed", "standard"],
    ["ingest", case["events"]],
    ["purge", "--dry-run"],
    ["purge"],
    ["model", "rollback", rid],
    ["demo", "--no-history", "--no-serve"],
    ["retailer", "rotate-key", rid],
):
    try:
        main(args, standalone_mode=False)
        commands[" ".join(args[:2])] = "ok"
    except Exception as exc:
        commands[" ".join(args[:2])] = type(exc).__name__ + ": " + str(exc)

loaded = sorted({m.partition(".")[0] for m in sys.modules} & LEARNING)
with open(case["result"], "w") as handle:
    json.dump({"attempts": attempts, "loaded": loaded, "status": status, "prediction": prediction,
               "stats": stats_status, "upkeep": upkeep, "commands": commands}, handle)
"""


def test_serving_and_admin_run_without_importing_the_learning_stack(
    trained: Trained, tmp_path: Path
) -> None:
    url = trained.copy(tmp_path)
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({
        "retailer_id": "plain", "event_id": "e-1", "type": "cart_updated", "cart_id": "c-1",
        "at": "2026-11-01T10:00:00Z", "cart_value": 12.5, "item_count": 1,
        "device_type": "mobile", "shipping_speed": "standard",
    }) + "\n")  # fmt: skip
    result = tmp_path / "result.json"
    case = {"retailer_id": trained.retailer_id, "key": trained.key, "events": str(events),
            "cart": cart(trained.retailer_id), "result": str(result)}  # fmt: skip
    env = _clean_env() | {"CARTPREDICT_DATABASE_URL": url}
    run = subprocess.run(
        [sys.executable, "-c", SERVING_ONLY, ",".join(LEARNING_PACKAGES), json.dumps(case)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    found = json.loads(result.read_text())
    assert found["attempts"] == []
    assert found["loaded"] == []
    assert found["status"] == 200, found["prediction"]
    assert found["prediction"]["model_version"] != "baseline"
    assert found["stats"] == 200
    assert found["upkeep"] == {"upkeep": "done"}
    commands = found["commands"]
    # the product's own answer: the retailer's first trained model has nothing before it
    assert "no earlier promoted version" in commands.pop("model rollback")
    assert commands == {
        "db upgrade": "ok",
        "retailer create": "ok",
        f"ingest {events}": "ok",
        "purge --dry-run": "ok",
        "purge": "ok",
        "demo --no-history": "ok",
        "retailer rotate-key": "ok",
    }


# --- a real serving install --------------------------------------------------------------------


@pytest.mark.slow
def test_a_fresh_install_without_extras_serves_a_trained_model(
    trained: Trained, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, command = venv / "bin" / "python", venv / "bin" / "cartpredict"
    pip = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        env=_clean_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-4000:]
    assert _installed(python, ["numpy", "scipy", "scikit-learn", "matplotlib", "tqdm"]) == []
    assert _importable(python, [*LEARNING_PACKAGES, "cartpredict"]) == ["cartpredict"]

    env = _clean_env() | {"CARTPREDICT_DATABASE_URL": trained.copy(tmp_path)}
    train = subprocess.run([command, "train"], env=env, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert train.returncode == 1
    assert train.stderr == f"Error: cartpredict train {NEEDS_LEARN}\n"
    rotated = subprocess.run([command, "retailer", "rotate-key", trained.retailer_id], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    key = {"Authorization": f"Bearer {json.loads(rotated.stdout)['api_key']}"}
    with running_server(env, program=(str(command),), environ={}, timeout_s=60) as client:
        config = client.get(f"/retailer/{trained.retailer_id}", headers=key).json()
        body = cart(trained.retailer_id, shipping_speed=config["shipping_speeds"][0])
        answer = client.post("/predict_cart", json=body, headers=key)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] != "baseline"


def _clean_env() -> dict[str, str]:
    """This environment, without what would let another interpreter see this venv's packages."""
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}


INSTALLED = """
import importlib.metadata as metadata, json, sys
present = {d.metadata["Name"].lower() for d in metadata.distributions()}
print(json.dumps([name for name in sys.argv[1:] if name in present]))
"""
IMPORTABLE = """
import importlib.util, json, sys
print(json.dumps([name for name in sys.argv[1:] if importlib.util.find_spec(name)]))
"""


def _installed(python: Path, distributions: list[str]) -> list[str]:
    """Which of these distributions the interpreter's environment holds."""
    return _probe(python, INSTALLED, distributions)


def _importable(python: Path, modules: list[str]) -> list[str]:
    return _probe(python, IMPORTABLE, modules)


def _probe(python: Path, code: str, names: list[str]) -> list[str]:
    run = subprocess.run([python, "-c", code, *names], env=_clean_env(), capture_output=True,
                         text=True, timeout=60, check=True)  # fmt: skip
    return list(json.loads(run.stdout))
