"""The load generator: loopback only, valid carts, correct figures against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cartpredict.cli import main
from cartpredict.ops.loadtest import LoadTestError, Result, Target, carts, loopback
from cartpredict.serving.schemas import CartIn
from tests.support.factories import OPERATOR, OPERATOR_KEY, retailer_spec
from tests.support.servers import running_server, server_pid


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1:8000/predict_cart", "http://example.com/predict_cart",
     "https://127.0.0.1/predict_cart", "http://192.168.1.2/x"],
)  # fmt: skip
def test_only_loopback_is_a_target(url: str) -> None:
    with pytest.raises(LoadTestError):
        loopback(url)


def test_loopback_urls_are_accepted() -> None:
    assert loopback("http://127.0.0.1:9000/predict_cart") == ("127.0.0.1", 9000, "/predict_cart")
    assert loopback("http://localhost/predict_cart")[1] == 80
    assert loopback("http://[::1]:8000/p")[0] == "::1"


def test_generated_carts_are_valid_for_their_retailer() -> None:
    targets = [Target("a", "ka", ("standard",)), Target("b", "kb", ("pickup", "express"))]
    for key, body in carts(targets, 200):
        cart = CartIn.model_validate_json(body)
        target = next(t for t in targets if t.retailer_id == cart.retailer_id)
        assert key == target.key
        assert cart.shipping_speed in target.shipping_speeds


def test_percentiles_are_nearest_rank() -> None:
    result = Result(requests=100, seconds=1.0, latencies_ms=[float(i) for i in range(1, 101)])
    assert (result.percentile(0.5), result.percentile(0.95), result.percentile(0.99)) == (
        50.0, 95.0, 99.0
    )  # fmt: skip


@pytest.mark.slow
def test_loadtest_against_a_real_server(sqlite_url: str, tmp_path: Path) -> None:
    env = {"CARTPREDICT_DATABASE_URL": sqlite_url, "CARTPREDICT_OPERATOR_KEY": OPERATOR_KEY}
    with running_server(env) as server:
        keys = []
        for rid in ("a", "b"):
            created = server.post("/retailer", json=retailer_spec(rid), headers=OPERATOR).json()
            keys += ["--key", f"{rid}={created['api_key']}"]
        url = f"{str(server.base_url).rstrip('/')}/predict_cart"
        args = ["loadtest", "--url", url, "--requests", "300", "--concurrency", "4", "--json"]
        result = CliRunner().invoke(main, [*args, *keys])
        assert result.exit_code == 0, result.output
        figures = json.loads(result.output)
        assert figures["requests"] == 300
        assert figures["errors"] == 0
        assert figures["statuses"] == {"200": 300}
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
        wrong = CliRunner().invoke(main, [*args, "--key", "a=cpk_wrong"])
        assert wrong.exit_code == 1
        assert "answered 401" in wrong.output

        # With the server's PID: its CPU time and memory, which `cartpredict cost` reads.
        pid = server_pid(server)
        watched = CliRunner().invoke(main, [*args, *keys, "--server-pid", str(pid)])
        assert watched.exit_code == 0, watched.output
        measured = json.loads(watched.output)["server"]
        assert measured["pid"] == pid
        assert measured["cpu_s"] > 0
        assert 10 < measured["peak_rss_mb"] < 1000
        path = tmp_path / "loadtest.json"
        path.write_text(watched.output)
        cost = CliRunner().invoke(main, ["cost", str(path)])
        assert cost.exit_code == 0, cost.output
        assert "per 10k predictions" in cost.output
        assert f"peak memory {measured['peak_rss_mb']:.0f} MB" in cost.output
