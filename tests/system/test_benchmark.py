"""The benchmark runs end to end (tiny settings): every server answers every request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.databases import PG_ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT.parent / "shared" / "peer"

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_the_benchmark_runs_and_reports_every_server(
    tmp_path: Path, postgres_admin: object
) -> None:
    if not (PEER / "naive_fastapi.py").exists():
        missing = f"needs the peer rig at {PEER} (see benchmarks/README.md)"
        if os.environ.get("CI"):
            pytest.fail(missing)  # in CI the smoke test must run
        pytest.skip(missing)
    # (benchmarks/run.py installs wrk and the peers' environment, and trains their model, when
    # this machine has not got them yet)
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--retailers", "5", "--days", "3",
         "--carts-per-day", "20", "--requests", "50", "--seconds", "1", "--no-mlflow",
         "--postgres", PG_ADMIN_URL, "--peer", str(PEER), "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    names = [s["server"] for s in report["servers"]]
    assert names == ["ceiling (bare ASGI)", "naive FastAPI", "cartpredict SQLite",
                     "cartpredict PostgreSQL", "cartpredict SQLite 2 workers"]  # fmt: skip
    for server in report["servers"]:
        for run in ("warmup", "loadgen_c1", "loadgen_c16", "wrk_c1", "wrk_c16"):
            assert server[run]["errors"] == 0, (server["server"], run)
            assert server[run]["req_per_s"] > 0
        assert server["cold_start_s"] > 0
        assert server["peak_rss_mb_largest"] > 10
    assert report["in_process"]["batch_carts_per_s"] > 0
    assert report["in_process"]["lambda_invoke_ms"] > 0
    assert "Goals (wrk, one worker each):" in done.stdout
    assert "| cartpredict PostgreSQL |" in done.stdout
