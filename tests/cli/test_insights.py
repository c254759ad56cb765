"""cartpredict insights: the memo of a fresh evaluation run, and the audit of the seed's
hypotheses, each verdict following the measured number across the hypothesis's bound."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cartpredict.cli import main
from cartpredict.learning.evaluation import BASELINE, EvaluationReport
from cartpredict.ops import insights as memo
from cartpredict.ops.cost import SPIKE_PER_HOUR

SMALL = memo.Options(retailers=3, days=6, seed=0)


@pytest.fixture(scope="module")
def measured() -> memo.Measurements:
    """A small run: no real data, no load test (the rows that need them are set per test)."""
    now = datetime(2026, 11, 30, tzinfo=UTC)
    return memo.measure(SMALL, real_data=None, latency=False, now=now)


def verdicts(m: memo.Measurements) -> dict[str, str]:
    return {row.hypothesis.key: row.verdict for row in memo.audit(m)}


def with_served_auc(m: memo.Measurements, purchased: float, abandoned: float) -> memo.Measurements:
    """The served models' AUC-PR as these multiples of the baseline rule's."""
    e: EvaluationReport = m.evaluation
    base = e.model(BASELINE)
    assert base is not None and base.auc_pr_purchased and base.auc_pr_abandoned
    models = tuple(
        replace(x, auc_pr_purchased=base.auc_pr_purchased * purchased,
                auc_pr_abandoned=base.auc_pr_abandoned * abandoned)
        if x.name == memo.SERVED else x
        for x in e.models
    )  # fmt: skip
    return replace(m, evaluation=replace(e, models=models))


def with_product_margin(m: memo.Measurements, over_best_uniform: float) -> memo.Measurements:
    """The product's expected profit set this far above the best uniform policy's."""
    section = m.evaluation.decisions
    assert section is not None
    best = max(p.profit_per_1000 for p in section.policies if p.name.startswith("uniform:"))
    policies = tuple(
        replace(p, profit_per_1000=best + over_best_uniform) if p.name == "product" else p
        for p in section.policies
    )
    decisions = replace(section, policies=policies)
    return replace(m, evaluation=replace(m.evaluation, decisions=decisions))


def with_latency(m: memo.Measurements, p95_ms: float, per_10k: float) -> memo.Measurements:
    latency = {
        "p50_ms": p95_ms / 2,
        "p95_ms": p95_ms,
        "p99_ms": p95_ms * 2,
        "requests": 2000,
        "req_per_s": 900.0,
        "server": {"cpu_ms_per_request": 0.2, "peak_rss_mb": 80.0},
    }
    block: dict[str, Any] = {
        "per_10k": per_10k,
        "total": per_10k * 5,
        "lines": [{"item": "API Gateway (HTTP API)", "dollars": per_10k * 5}],
    }
    costs = {
        "prices_as_of": "2026-11-24",
        "scenarios": [
            {"requests": SPIKE_PER_HOUR, "hours": 1.0, "lambda": block, "container": block}
        ],
    }
    return replace(m, latency=latency, costs=costs)


def test_each_verdict_flips_where_the_measured_number_crosses_the_hypothesis(
    measured: memo.Measurements,
) -> None:
    held, not_held = memo.HELD, memo.NOT_HELD
    assert verdicts(with_served_auc(measured, 1.01, 1.01))["a"] == held
    assert verdicts(with_served_auc(measured, 0.99, 1.01))["a"] == not_held
    assert verdicts(with_served_auc(measured, 1.5, 0.99))["a"] == not_held  # both classes count
    for rate, verdict in ((0.70, held), (0.60, held), (0.80, held), (0.59, not_held),
                          (0.81, not_held)):  # fmt: skip
        carts = replace(measured.simulated_carts, abandoned=rate)
        assert verdicts(replace(measured, simulated_carts=carts))["b"] == verdict, rate
    real = replace(measured, simulated_carts=replace(measured.simulated_carts, abandoned=0.7),
                   rees46=memo.CartRates(118, 0.449, 0, 0.0))  # fmt: skip
    assert verdicts(real)["b"] == not_held  # every measured rate counts
    assert verdicts(with_latency(measured, 99.9, 1.0))["c"] == held
    assert verdicts(with_latency(measured, 100.0, 1.0))["c"] == not_held
    assert verdicts(with_latency(measured, 5.0, 1.0))["d"] == held
    assert verdicts(with_latency(measured, 5.0, 1.01))["d"] == not_held
    assert verdicts(with_product_margin(measured, 0.5))["e"] == held
    assert verdicts(with_product_margin(measured, -0.5))["e"] == not_held
    skipped = verdicts(measured)
    assert skipped["c"] == skipped["d"] == memo.NOT_MEASURED


def test_the_memo_shows_the_numbers_behind_each_verdict(measured: memo.Measurements) -> None:
    m = with_latency(with_product_margin(measured, 12.5), 3.25, 0.0177)
    text = memo.render(m)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 6  # the header and five hypotheses
    assert "p95 3.25 ms" in text and "$0.0177 per 10k" in text and "+12.5" in text
    assert sum(line.startswith(f"{i}. **") for line in text.splitlines() for i in (1, 2, 3)) == 3


def test_insights_writes_the_memo(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "insights.md"
    result = CliRunner().invoke(main, [
        "insights", "--out", str(out), "--retailers", "3", "--days", "6", "--skip-latency",
        "--real-data", str(tmp_path / "no-such-folder"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = out.read_text()
    audit = [line for line in text.splitlines() if line.startswith(("| a |", "| b |", "| c |",
                                                                  "| d |", "| e |"))]  # fmt: skip
    assert len(audit) == 5
    for line in audit:
        assert any(f"**{v}**" in line for v in (memo.HELD, memo.NOT_HELD, memo.NOT_MEASURED))
    assert "**not measured**" in audit[2] and "**not measured**" in audit[3]
    assert "## Three insights" in text
    assert f"insights: {out.resolve()}" in result.output
