"""Operating points read off a version's threshold table at the retailer's target of the moment."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from cartpredict.models.features import FeatureSpec
from cartpredict.models.registry import ModelRegistry, operating_point
from cartpredict.models.thresholds import Step, ThresholdTable
from cartpredict.storage import ABANDONMENT, POOLED_SCOPE, ModelVersion, Retailer

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SHOP = Retailer("shop", True, ("card",), ("standard",), True, 0.7, T0, T0)

# precision 1.0, 0.9, 0.8 and 0.7 (the abandonment rate: the last step calls every row)
TABLE = ThresholdTable(
    steps=(Step(0.9, 10, 10, 10), Step(0.6, 30, 27, 30), Step(0.4, 60, 48, 60),
           Step(0.0, 100, 70, 100)),
    rows=100, abandoned=70, carts=100,
)  # fmt: skip


def version(scope: str, *, table: ThresholdTable | None, **metrics: Any) -> ModelVersion:
    spec = FeatureSpec(cart=True)
    weights = dict.fromkeys(spec.names(), 0.0)
    model: dict[str, Any] = {"kind": "logistic", "features": spec.to_dict(), "intercept": 0.0,
                             "weights": weights, "threshold": 0.55}  # fmt: skip
    if table is not None:
        model["thresholds"] = table.to_dict()
    return ModelVersion(f"m-{scope}", scope, T0, T0, T0, 100, 0.55, metrics, model)


class OneVersion:
    """A registry store serving one version, for every scope it names."""

    def __init__(self, served: ModelVersion) -> None:
        self.served = served

    def served_version(self, *, scope: str, kind: str = ABANDONMENT) -> ModelVersion | None:
        return self.served if (scope, kind) == (self.served.scope, self.served.kind) else None

    def served_version_id(self, *, scope: str, kind: str = ABANDONMENT) -> str | None:
        found = self.served_version(scope=scope, kind=kind)
        return None if found is None else found.version_id


def served_threshold(served: ModelVersion, target: float) -> float | None:
    registry = ModelRegistry(OneVersion(served))  # type: ignore[arg-type]
    return registry.served_model(replace(SHOP, precision_target=target)).threshold


@pytest.mark.parametrize(
    ("target", "threshold", "reached"),
    [(0.7, 0.0, True), (0.75, 0.4, True), (0.8, 0.4, True), (0.85, 0.6, True),
     (0.9, 0.6, True), (0.99, 0.9, True)],
)  # fmt: skip
def test_the_threshold_of_highest_recall_whose_precision_reaches_the_target(
    target: float, threshold: float, reached: bool
) -> None:
    step, ok = TABLE.step_for(target)
    assert (step.threshold, ok) == (threshold, reached)


def test_with_no_step_reaching_the_target_the_most_precise_one_serves() -> None:
    table = replace(TABLE, steps=(Step(0.9, 10, 8, 10), *TABLE.steps[1:]))  # 0.8, 0.9, 0.8, 0.7
    step, reached = table.step_for(0.95)
    assert (step.threshold, reached) == (0.6, False)
    point = operating_point(version("shop", table=table), replace(SHOP, precision_target=0.95))
    assert point.threshold == 0.6 and point.reaches_target is False
    assert any("no threshold reaches precision 0.95" in w for w in point.warnings)


def test_a_retailers_own_model_follows_its_target_without_retraining() -> None:
    own = version("shop", table=TABLE)
    assert [served_threshold(own, t) for t in (0.7, 0.8, 0.9, 0.95)] == [0.0, 0.4, 0.6, 0.9]
    point = operating_point(own, replace(SHOP, precision_target=0.8))
    assert point.to_dict() == {
        "precision_target": 0.8, "threshold": 0.4, "source": "own_validation",
        "grid_target": None, "reaches_target": True, "expected_precision": 0.8,
        "share_called_abandoned": 0.6, "abandonment_rate": 0.7, "validation_carts": 100,
    }  # fmt: skip
    assert point.warnings == ()


@pytest.mark.parametrize("target", [0.5, 0.69, 0.7])
def test_a_target_at_or_below_the_abandonment_rate_is_warned_of(target: float) -> None:
    point = operating_point(version("shop", table=TABLE), replace(SHOP, precision_target=target))
    assert point.share_called_abandoned == 1.0
    assert len(point.warnings) == 1
    assert "at or below the abandonment rate of your validation carts" in point.warnings[0]
    assert "every cart is called abandoned" in point.warnings[0]


def test_above_the_abandonment_rate_nothing_is_warned_of() -> None:
    point = operating_point(version("shop", table=TABLE), replace(SHOP, precision_target=0.71))
    assert point.warnings == () and point.share_called_abandoned == 0.6


POOL = replace(TABLE, target_grid=0.01)


@pytest.mark.parametrize(
    ("target", "grid_target"),
    [(0.7, 0.7), (0.58, 0.58), (0.29, 0.29), (0.701, 0.71), (0.705, 0.71), (0.7999, 0.8),
     (0.8001, 0.81), (0.991, 1.0)],
)  # fmt: skip
def test_the_pooled_grid_reads_a_target_at_the_grid_point_at_or_above_it(
    target: float, grid_target: float
) -> None:
    assert POOL.target_for(target) == grid_target


def test_a_member_without_a_table_of_its_own_is_served_from_the_pooled_grid() -> None:
    pooled = version(POOLED_SCOPE, table=POOL)
    assert [served_threshold(pooled, t) for t in (0.7, 0.8, 0.801, 0.9)] == [0.0, 0.4, 0.6, 0.6]
    point = operating_point(pooled, replace(SHOP, precision_target=0.801))
    assert (point.source, point.grid_target, point.threshold) == ("pooled_grid", 0.81, 0.6)
    assert point.abandonment_rate is None and point.validation_carts is None  # not its carts
    assert (point.expected_precision, point.share_called_abandoned) == (0.9, 0.3)
    assert point.warnings == (
        "the pooled model offers thresholds for precision targets in steps of 0.01: 0.801 is "
        "served at 0.81, the step at or above it",
    )
    at_rate = operating_point(pooled, replace(SHOP, precision_target=0.7))
    assert len(at_rate.warnings) == 1
    assert "abandonment rate of the pooled model's validation carts" in at_rate.warnings[0]


def test_a_member_with_a_table_of_its_own_is_served_from_it_under_the_pooled_model() -> None:
    mine = ThresholdTable((Step(0.5, 40, 38, 40), Step(0.2, 50, 40, 50)), 50, 40, 50)
    pooled = version(POOLED_SCOPE, table=POOL,
                     thresholds_by_retailer={"shop": mine.to_dict()})  # fmt: skip
    assert served_threshold(pooled, 0.81) == 0.5  # the pooled grid would say 0.6
    point = operating_point(pooled, replace(SHOP, precision_target=0.81))
    assert (point.source, point.grid_target, point.validation_carts) == ("own_validation", None, 50)
    other = replace(SHOP, retailer_id="other", precision_target=0.81)
    assert operating_point(pooled, other).source == "pooled_grid"


def test_a_version_without_a_table_keeps_its_stored_threshold() -> None:
    old = version("shop", table=None, validation={"precision_target": 0.7})
    assert [served_threshold(old, t) for t in (0.6, 0.9)] == [0.55, 0.55]
    same = operating_point(old, SHOP)
    assert (same.source, same.threshold) == ("stored", 0.55)
    assert "chosen at training for this target (0.7)" in same.warnings[0]
    moved = operating_point(old, replace(SHOP, precision_target=0.9))
    assert "for a target of 0.7; retraining applies 0.9" in moved.warnings[0]


def test_the_baseline_rule_is_fixed_and_says_so() -> None:
    point = operating_point(None, SHOP)
    assert (point.source, point.threshold) == ("baseline_rule", None)
    assert point.warnings == (
        "the baseline rule is fixed (abandoned when cart_value < 20 USD): precision_target "
        "applies once a trained model serves",
    )


def test_a_table_survives_its_json() -> None:
    assert ThresholdTable.from_dict(POOL.to_dict()) == POOL
    with pytest.raises(ValueError, match="calls every row"):
        ThresholdTable((Step(0.5, 10, 9, 10),), rows=20, abandoned=15, carts=20)
