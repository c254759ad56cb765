"""Operating points: the threshold on P(abandoned) for any precision target, without retraining.

Training keeps, with every model version, a *threshold table*: its validation carts' scores
reduced to a precision-versus-threshold step table (``learning/threshold_tables.py`` builds
it). Each
step is a threshold with, at or above it, how many validation rows (cart snapshots) are called
abandoned, how many of them were abandoned and how many distinct carts they come from. So the
operating point of SPEC §2 (the highest recall whose validation precision reaches the target)
is read off the table for whatever ``precision_target`` the retailer has now: serving resolves
it once per tenant load, and a PATCH, which reloads the tenant everywhere through the change
feed, takes effect within the feed's bound.

Which table serves whom (``registry.operating_point``):

* a retailer's own model: the table over its own validation carts (``own_validation``),
  however few (a model of its own has at least a few dozen; the pooled table, over another
  model's scores, would not apply); their figures are shown from k carts on, as its metrics;
* the pooled model serving a member that had enough validation carts of its own in the
  pooled sample: the pooled model's scores on those carts (``own_validation`` too);
* the pooled model serving any other member: the table over every member's validation carts
  (``pooled_grid``). Those are other tenants' carts, so this table is coarse on purpose: its
  steps are at least ``K_ANONYMITY`` carts apart (and the top one covers as many), and targets
  are taken on a fixed grid (``target_grid``, 0.01), a target rounding *up* to the grid point
  at or above it (so the precision promised is kept). Sweeping the target can therefore reveal
  nothing finer than a step of 10 carts, nor any precision finer than the grid;
* a version trained before tables existed: its stored threshold, chosen at training for the
  target of the time (``stored``);
* the baseline rule: a fixed rule, which no precision target moves (``baseline_rule``).

When no step reaches the target, the most precise step serves (its recall the highest among
equally precise ones), with a warning: better than the fixed 0.5 a version used to fall back
to, since its precision is the nearest to what was asked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OWN = "own_validation"
POOLED_GRID = "pooled_grid"
STORED = "stored"
BASELINE_RULE = "baseline_rule"
TIE = 1e-12  # a precision within this of the target reaches it (as ``choose_threshold``)


@dataclass(frozen=True)
class Step:
    threshold: float
    called: int  # validation rows with P(abandoned) >= threshold
    hits: int  # of them, abandoned
    carts: int  # distinct carts among them

    @property
    def precision(self) -> float:
        return self.hits / self.called if self.called else 0.0


@dataclass(frozen=True)
class ThresholdTable:
    """Steps by decreasing threshold (so called, hits and carts never decrease); the last one
    calls every validation row abandoned. ``target_grid``: targets are rounded up to multiples
    of it (the pooled table); None: taken as they are."""

    steps: tuple[Step, ...]
    rows: int
    abandoned: int
    carts: int
    target_grid: float | None = None

    def __post_init__(self) -> None:
        if not self.steps or self.steps[-1].called != self.rows:
            raise ValueError("a threshold table ends with the step that calls every row")

    @property
    def abandonment_rate(self) -> float:
        return self.abandoned / self.rows if self.rows else 0.0

    def target_for(self, precision_target: float) -> float:
        """The target the table is read at: on the grid, the grid point at or above it."""
        grid = self.target_grid
        if grid is None:
            return precision_target
        points = math.ceil(round(precision_target / grid, 9))  # 0.7 / 0.01 is 69.99999...
        return round(min(points * grid, 1.0), 9)

    def step_for(self, target: float) -> tuple[Step, bool]:
        """The step of highest recall whose precision reaches ``target`` (the highest threshold
        among equal recalls), and True; else the most precise step, and False."""
        reaching = [s for s in self.steps if s.precision >= target - TIE]
        if reaching:
            most = max(s.hits for s in reaching)
            return next(s for s in reaching if s.hits == most), True
        best = max(s.precision for s in self.steps)
        return next(s for s in self.steps if s.precision == best), False

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds": [s.threshold for s in self.steps],
            "called": [s.called for s in self.steps],
            "hits": [s.hits for s in self.steps],
            "carts_called": [s.carts for s in self.steps],
            "rows": self.rows,
            "abandoned": self.abandoned,
            "carts": self.carts,
            "target_grid": self.target_grid,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThresholdTable:
        columns = zip(data["thresholds"], data["called"], data["hits"], data["carts_called"],
                      strict=True)  # fmt: skip
        grid = data.get("target_grid")
        return cls(
            steps=tuple(Step(float(t), int(n), int(h), int(c)) for t, n, h, c in columns),
            rows=int(data["rows"]),
            abandoned=int(data["abandoned"]),
            carts=int(data["carts"]),
            target_grid=None if grid is None else float(grid),
        )


@dataclass(frozen=True)
class OperatingPoint:
    """The threshold serving a retailer, where it came from and what it is expected to do."""

    precision_target: float
    threshold: float | None
    source: str  # OWN | POOLED_GRID | STORED | BASELINE_RULE
    grid_target: float | None = None  # POOLED_GRID: the grid point the target was read at
    reaches_target: bool | None = None
    expected_precision: float | None = None  # on the validation carts, at the threshold
    share_called_abandoned: float | None = None  # of the validation carts (snapshots)
    abandonment_rate: float | None = None  # of the retailer's own validation carts
    validation_carts: int | None = None  # the retailer's own (OWN only)
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision_target": self.precision_target,
            "threshold": self.threshold,
            "source": self.source,
            "grid_target": self.grid_target,
            "reaches_target": self.reaches_target,
            "expected_precision": self.expected_precision,
            "share_called_abandoned": self.share_called_abandoned,
            "abandonment_rate": self.abandonment_rate,
            "validation_carts": self.validation_carts,
        }


def own_point(table: ThresholdTable, precision_target: float) -> OperatingPoint:
    """From a table over the retailer's own validation carts (whichever model scored them)."""
    step, reached = table.step_for(precision_target)
    return OperatingPoint(
        precision_target=precision_target,
        threshold=step.threshold,
        source=OWN,
        reaches_target=reached,
        expected_precision=round(step.precision, 4),
        share_called_abandoned=round(step.called / table.rows, 4),
        abandonment_rate=round(table.abandonment_rate, 4),
        validation_carts=table.carts,
        warnings=tuple(_common_warnings(table, precision_target, step, reached, "your")),
    )


def pooled_point(table: ThresholdTable, precision_target: float) -> OperatingPoint:
    """From the pooled table (every member's validation carts): read at the grid point at or
    above the target; its figures are shown to the grid's resolution, and the pool's
    abandonment rate only through the warning, which the grid quantises as well."""
    grid_target = table.target_for(precision_target)
    step, reached = table.step_for(grid_target)
    warnings = []
    if grid_target != precision_target:
        warnings.append(
            f"the pooled model offers thresholds for precision targets in steps of "
            f"{table.target_grid:g}: {precision_target:g} is served at {grid_target:g}, the "
            f"step at or above it"
        )
    warnings += _common_warnings(table, grid_target, step, reached, "the pooled model's",
                                 asked=precision_target)  # fmt: skip
    digits = _digits(table.target_grid)
    return OperatingPoint(
        precision_target=precision_target,
        threshold=step.threshold,
        source=POOLED_GRID,
        grid_target=grid_target,
        reaches_target=reached,
        expected_precision=round(step.precision, digits),
        share_called_abandoned=round(step.called / table.rows, digits),
        warnings=tuple(warnings),
    )


def stored_point(
    threshold: float, precision_target: float, trained_at: float | None
) -> OperatingPoint:
    """A version without a table: the threshold chosen at training (for ``trained_at``)."""
    if trained_at == precision_target:
        why = f"it was chosen at training for this target ({precision_target:g})"
    else:
        at = "an unrecorded target" if trained_at is None else f"a target of {trained_at:g}"
        why = f"it was chosen at training for {at}; retraining applies {precision_target:g}"
    warning = f"this model version predates threshold tables, so its threshold is fixed: {why}"
    return OperatingPoint(
        precision_target=precision_target, threshold=threshold, source=STORED, warnings=(warning,)
    )


def baseline_point(precision_target: float, description: str) -> OperatingPoint:
    warning = (
        f"the baseline rule is fixed ({description}): precision_target applies once a trained "
        "model serves"
    )
    return OperatingPoint(
        precision_target=precision_target, threshold=None, source=BASELINE_RULE,
        warnings=(warning,),
    )  # fmt: skip


def _common_warnings(
    table: ThresholdTable,
    target: float,
    step: Step,
    reached: bool,
    whose: str,
    *,
    asked: float | None = None,
) -> list[str]:
    """What the step read at ``target`` does not do as asked (``asked``: the retailer's
    target, when the table was read at another)."""
    warnings = []
    if target <= table.abandonment_rate + TIE:
        shown = target if asked is None else asked
        warnings.append(
            f"precision_target {shown:g} is at or below the abandonment rate of {whose} "
            "validation carts: calling every cart abandoned meets it, so (nearly) every cart is "
            "called abandoned; a target above that rate singles out the carts most likely abandoned"
        )
    if not reached:
        warnings.append(
            f"no threshold reaches precision {target:g} on {whose} validation carts: the most "
            f"precise one serves (threshold {step.threshold:g})"
        )
    return warnings


def _digits(grid: float | None) -> int:
    return 4 if grid is None else max(0, round(-math.log10(grid)))
