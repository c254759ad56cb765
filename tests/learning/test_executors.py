"""Every executor trains the same models: in this process, on this machine's cores, and on a
local Dask cluster, through ``cartpredict train`` on the demo's database as a user runs it."""

from __future__ import annotations

import math
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cartpredict.learning.executors import InProcess, Processes, make_executor

CARTPREDICT = Path(sys.executable).with_name("cartpredict")

pytestmark = pytest.mark.slow


def run(command: list[str], db: Path) -> str:
    env = {"CARTPREDICT_DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(CARTPREDICT), *command], env=env, capture_output=True, text=True,
                          timeout=300, cwd=db.parent)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def versions(db: Path) -> dict[str, dict[str, Any]]:
    """Each scope's newest version, without what is unique to a run (its id and time)."""
    import json

    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT retailer_id, n_train, threshold, metrics, model, profile, train_start, "
            "train_end FROM model_versions ORDER BY created_at"
        ).fetchall()
    newest = {}
    for scope, n_train, threshold, metrics, model, profile, start, end in rows:
        report = json.loads(metrics)
        report.pop("served_version", None)
        newest[scope] = {"n_train": n_train, "threshold": threshold, "metrics": report,
                         "model": json.loads(model), "profile": json.loads(profile),
                         "window": (start, end)}  # fmt: skip
    return newest


def assert_close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, path


def test_every_executor_trains_the_same_models(tmp_path: Path) -> None:
    seeded = tmp_path / "demo.db"
    run(["demo", "--no-serve"], seeded)  # the demo's retailers and history, trained once
    as_of = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # the same moment for every run
    results = {}
    for name, options in {
        "in process": ["--workers", "1"],
        "local cores": ["--workers", "2"],
        "dask local cluster": ["--executor", "dask", "--workers", "2"],
    }.items():
        db = tmp_path / f"{name.replace(' ', '_')}.db"
        shutil.copy(seeded, db)
        out = run(["train", "--as-of", as_of, *options], db)
        assert "@pooled" in out
        results[name] = versions(db)
    reference = results.pop("in process")
    assert len(reference) >= 10  # the pooled model and many retailers' own
    for name, got in results.items():
        assert got.keys() == reference.keys(), name
        assert_close(got, reference, name)


def test_the_executor_is_chosen_by_name() -> None:
    assert isinstance(make_executor("local", workers=1), InProcess)
    assert isinstance(make_executor("local"), Processes)
    with pytest.raises(ValueError, match="unknown executor 'ray'"):
        make_executor("ray")


def test_an_address_needs_the_dask_executor(tmp_path: Path) -> None:
    env = {"CARTPREDICT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(CARTPREDICT), "train", "--address", "tcp://127.0.0.1:1"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "--address goes with --executor dask" in done.stderr
