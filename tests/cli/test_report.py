"""cartpredict report: one retailer's own evaluation as HTML and PNG, every figure over 10 carts.

The figures the command prints are checked against an evaluation computed here by another
path: the row-at-a-time snapshots and split (``learning/snapshots.py``), each snapshot scored
by the served model's own ``score``, scikit-learn's metrics.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import average_precision_score, roc_auc_score

from cartpredict.cli import main
from cartpredict.learning.snapshots import snapshots, split_by_time
from cartpredict.models.baseline import BaselineRule
from cartpredict.models.registry import ModelRegistry
from cartpredict.storage import open_store
from tests.support.curves import K, bins_cover_k_carts, curve_steps_cover_k_carts


@pytest.fixture
def runner(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CARTPREDICT_DATABASE_URL", sqlite_url)
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(main, list(args))


def create(runner: CliRunner, retailer_id: str, *extra: str) -> None:
    args = ["retailer", "create", retailer_id, "--payment-option", "card",
            "--shipping-speed", "standard", *extra]  # fmt: skip
    assert invoke(runner, *args).exit_code == 0


def printed(output: str) -> dict[str, list[float]]:
    """The figure rows the command prints: name -> AUC-PR purchased, abandoned, ROC-AUC, Brier."""
    rows = {}
    for line in output.splitlines():
        name, *cells = line.split()
        if name in ("served", "baseline"):
            rows[name] = [float(c) for c in cells]
    return rows


def independent(sqlite_url: str, retailer_id: str, as_of: datetime) -> dict[str, Any]:
    store = open_store(sqlite_url)
    try:
        retailer = store.get_retailer(retailer_id=retailer_id)
        assert retailer is not None
        split = split_by_time(snapshots(store.events(retailer_id=retailer_id), as_of=as_of))
        served = ModelRegistry(store).served_model(retailer)
        baseline = BaselineRule().fit(
            [r.cart_value for r in split.train], [not r.purchased for r in split.train],
            threshold=retailer.baseline_threshold,
        )  # fmt: skip
        y = np.array([r.purchased for r in split.test])
        scores = {
            name: np.array([1.0 - model.score(r, retailer).p_abandoned for r in split.test])
            for name, model in (("served", served), ("baseline", baseline))
        }
    finally:
        store.close()
    figures = {
        name: [average_precision_score(y, p), average_precision_score(~y, 1.0 - p),
               roc_auc_score(y, p), float(np.mean((p - y) ** 2))]
        for name, p in scores.items()
    }  # fmt: skip
    carts = np.array([r.cart_id for r in split.test])
    return {"figures": figures, "y": y, "scores": scores, "carts": carts}


def few_carts(start: datetime, n: int = 20) -> list[dict[str, Any]]:
    """A small store's events: ``n`` carts an hour apart from ``start``, every third bought."""
    events: list[dict[str, Any]] = []
    for i in range(n):
        at = start + timedelta(hours=i)
        cart = {"retailer_id": "small", "cart_id": f"c-{i}"}
        events.append(
            cart
            | {
                "event_id": f"u-{i}",
                "type": "cart_updated",
                "at": at.isoformat(),
                "cart_value": 10.0 + 5 * i,
                "item_count": 2,
                "device_type": "mobile",
                "shipping_speed": "standard",
            }
        )
        if i % 3 == 0:
            bought = (at + timedelta(hours=2)).isoformat()
            events.append(cart | {"event_id": f"p-{i}", "type": "purchased", "at": bought})
    return events


def test_report_of_a_simulated_store(runner: CliRunner, sqlite_url: str, tmp_path: Path) -> None:
    simulated = invoke(runner, "simulate", "--retailers", "3", "--days", "10", "--seed", "2")
    assert simulated.exit_code == 0, simulated.output
    trained = invoke(runner, "train")
    assert trained.exit_code == 0, trained.output
    own = [line.split()[0] for line in trained.output.splitlines()
           if " promoted " in line and not line.startswith("@")]  # fmt: skip
    assert own, trained.output
    retailer_id = own[0]
    as_of = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    out = tmp_path / "shared"
    result = invoke(runner, "report", "--retailer", retailer_id, "--out", str(out),
                    "--as-of", as_of.isoformat())  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"report: {(out / 'index.html').resolve()}" in result.output
    for name in ("index.html", "report.json", "pr_purchased.png", "pr_abandoned.png",
                 "calibration.png", "bands.png", "weights.png"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    page = (out / "index.html").read_text()
    assert f"cartpredict report: {retailer_id}" in page

    mine = independent(sqlite_url, retailer_id, as_of)
    shown = printed(result.output)
    for name in ("served", "baseline"):
        assert shown[name] == pytest.approx(mine["figures"][name], abs=5.1e-5), name
    assert f"held-out carts: {len(set(mine['carts'])):,} ({len(mine['y']):,} snapshots" in (
        result.output
    )

    report = json.loads((out / "report.json").read_text())
    y, carts = mine["y"], mine["carts"]
    for model, key in zip(report["models"], ("served", "baseline"), strict=True):
        p = mine["scores"][key]
        curve_steps_cover_k_carts(model["pr_purchased"], y, p, carts)
        curve_steps_cover_k_carts(model["pr_abandoned"], ~y, 1.0 - p, carts)
        bins_cover_k_carts(model["calibration"], p, y, carts)
    p_abandoned = 1.0 - mine["scores"]["served"]
    for band in report["score_bands"]:
        rows = (p_abandoned >= band["lower"]) & (
            (p_abandoned < band["upper"]) | (band["upper"] == 1.0)
        )
        assert len(set(carts[rows])) == band["carts"] >= K
        assert band["abandoned_rate"] == pytest.approx(1.0 - y[rows].mean())

    # A store served by the pooled model, with fewer than 10 held-out carts: no figure at all.
    create(runner, "small", "--pooled-learning")
    no_events = invoke(runner, "report", "--retailer", "small", "--out", str(tmp_path / "none"))
    assert no_events.exit_code == 1
    assert no_events.output.strip() == "Error: retailer 'small' has no events in the store"
    events = tmp_path / "small.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in few_carts(as_of - timedelta(days=3))))
    assert invoke(runner, "ingest", str(events)).exit_code == 0
    few = invoke(runner, "report", "--retailer", "small", "--out", str(tmp_path / "few"))
    assert few.exit_code == 0, few.output
    assert "(the pooled model)" in few.output
    assert "fewer than 10 held-out carts: no figures and no curves" in few.output
    assert sorted(p.name for p in (tmp_path / "few").iterdir()) == ["index.html"]
    assert "fewer than 10" in (tmp_path / "few" / "index.html").read_text()


def test_a_report_needs_a_known_retailer_with_a_served_model(runner: CliRunner) -> None:
    unknown = invoke(runner, "report", "--retailer", "nobody")
    assert unknown.exit_code == 1
    assert unknown.output.strip() == "Error: no retailer 'nobody'"
    create(runner, "fresh")
    untrained = invoke(runner, "report", "--retailer", "fresh")
    assert untrained.exit_code == 1
    assert untrained.output.strip().splitlines() == [
        "Error: retailer 'fresh' has no served model yet (the baseline rule serves it): "
        "train one with `cartpredict train`"
    ]
