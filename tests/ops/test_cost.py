"""The cost model: dated prices with sources, arithmetic that adds up, clear input errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from cartpredict.cli import main
from cartpredict.ops.cost import (
    SCENARIOS,
    CostInputError,
    Measured,
    estimate,
    lambda_costs,
    load_prices,
    measured_from,
    render,
)

MEASURED = Measured(duration_ms=0.2, memory_mb=90.0, capacity_rps=5000.0, init_ms=700.0,
                    source="test")  # fmt: skip


def test_the_price_file_is_dated_and_names_a_source_for_every_price() -> None:
    prices = load_prices()
    assert prices["as_of"] and prices["region"]
    for section in ("lambda", "api_gateway_http", "cloudwatch_logs", "store", "container",
                    "load_balancer"):  # fmt: skip
        assert prices[section]["source"].startswith("https://"), section


def test_lambda_lines_follow_the_documented_arithmetic() -> None:
    prices = load_prices()
    spike = SCENARIOS[1]
    lines = {line.item: line for line in lambda_costs(MEASURED, spike, prices)}
    memory = math.ceil(1769 * 0.7 / 2)  # CPU enough for a 2 s cold start: 620 MB > the peak
    billed_ms = math.ceil(0.2 * 1769 / memory)
    assert lines["Lambda requests"].dollars == pytest.approx(50_000 * 0.20 / 1e6)
    assert lines["Lambda duration"].dollars == pytest.approx(
        50_000 * billed_ms / 1000 * memory / 1024 * prices["lambda"]["per_gb_second"]
    )
    assert lines["API Gateway (HTTP API)"].dollars == pytest.approx(0.05)
    assert lines["store instance"].dollars == pytest.approx(prices["store"]["per_hour"])
    assert f"{billed_ms} ms billed" in lines["Lambda duration"].arithmetic


def test_totals_and_per_10k_are_the_sums_of_the_lines() -> None:
    report = estimate(MEASURED, load_prices())
    for scenario in report["scenarios"]:
        for option in ("lambda", "container"):
            block = scenario[option]
            assert block["total"] == pytest.approx(sum(x["dollars"] for x in block["lines"]))
            assert block["per_10k"] == pytest.approx(block["total"] / scenario["requests"] * 1e4)


def test_a_slower_or_bigger_server_never_costs_less() -> None:
    prices = load_prices()
    base = estimate(MEASURED, prices)["scenarios"][1]["lambda"]["total"]
    slower = Measured(2.0, 90.0, 500.0, 700.0, "test")
    bigger = Measured(0.2, 800.0, 5000.0, 700.0, "test")  # needs more than the default memory
    assert estimate(slower, prices)["scenarios"][1]["lambda"]["total"] > base
    assert estimate(bigger, prices)["scenarios"][1]["lambda"]["total"] > base


def test_a_container_scales_out_when_one_task_cannot_keep_up() -> None:
    slow = Measured(5.0, 90.0, capacity_rps=20.0, init_ms=None, source="test")  # 5 req/s/task
    report = estimate(slow, load_prices())
    assert "3 task(s)" in report["scenarios"][1]["container"]["lines"][0]["arithmetic"]


def test_inputs_without_server_figures_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CostInputError, match="--server-pid"):
        measured_from({"requests": 10, "req_per_s": 100.0}, source="x")
    path = tmp_path / "plain.json"
    path.write_text(json.dumps({"requests": 10, "req_per_s": 100.0}))
    result = CliRunner().invoke(main, ["cost", str(path)])
    assert result.exit_code == 1
    assert "--server-pid" in result.output


def test_lambda_memory_is_chosen_for_the_cold_start_and_too_little_is_refused() -> None:
    prices = load_prices()
    default = estimate(MEASURED, prices)
    assert default["lambda_cold_start_s"] == pytest.approx(2.0, abs=0.01)
    assert estimate(MEASURED, prices, lambda_memory=1769)["lambda_cold_start_s"] == pytest.approx(
        0.7
    )
    small = estimate(MEASURED, prices, lambda_memory=128)
    assert small["lambda_cold_start_s"] == pytest.approx(0.7 * 1769 / 128)  # over 9 s
    no_init = Measured(0.2, 90.0, 5000.0, None, "test")
    assert estimate(no_init, prices)["lambda_memory_mb"] == 128  # the peak decides
    bigger = Measured(0.2, 400.0, 5000.0, 700.0, "test")
    with pytest.raises(CostInputError, match="below the measured peak"):
        estimate(bigger, prices, lambda_memory=256)


def test_a_cold_start_over_lambdas_limit_is_flagged() -> None:
    slow_start = Measured(0.2, 90.0, 5000.0, 1000.0, "test")
    text = render(estimate(slow_start, load_prices(), lambda_memory=128))
    assert "WARNING: over Lambda's 10 s limit" in text
    assert "WARNING" not in render(estimate(slow_start, load_prices()))
