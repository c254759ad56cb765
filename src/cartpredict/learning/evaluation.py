"""Metrics into an :class:`EvaluationReport`; ``plots.py`` draws from the report.

Compute, then draw: this module never imports matplotlib. Every number in a report is a plain
``float``, ``int`` or ``None`` (``None`` where a metric is undefined, e.g. AUC-PR on test rows
of a single class), so ``json.dumps(report.to_dict(), allow_nan=False)`` always works.

Classes: ``purchased`` is 1, ``abandoned`` is 0. Models give P(purchased); the abandoned class
is scored with ``1 - P(purchased)``. AUC-PR is scikit-learn's ``average_precision_score``;
scikit-learn is imported when a report is computed, not with this module (serving code must
not pay for it).

On simulated data a report may also hold a ``decisions`` section (:class:`DecisionReport`, made
by ``treatments.decision_report``): the true expected profit per 1,000 carts of decision
policies. Schema version 2 added it; a version 1 report reads as one without it.

A report on one retailer's carts, to be shared (``evaluate_in_steps``, what ``cartpredict
report`` draws), has its curves, calibration bins, score bands and operating point in steps of
at least ``K_ANONYMITY`` carts, as every figure a retailer sees. Training keeps the same curves
and bins of each model version on each retailer's own held-out carts (``curves_in_steps``),
for the model info and the dashboard's Model page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

import numpy as np

from cartpredict.learning.threshold_tables import threshold_table
from cartpredict.privacy.anonymity import K_ANONYMITY, merge_small

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: before the decisions section
BASELINE = "baseline"
ORACLE = "oracle"
PREVALENCE = "prevalence"
MAX_CURVE_POINTS = 200
CALIBRATION_BINS = 10


@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity
class ModelPredictions:
    name: str
    p_purchased: np.ndarray
    abandoned: np.ndarray | None
    threshold: float | None = None  # on P(abandoned), reported beside the decisions


@dataclass(frozen=True)
class Curve:
    """A precision-recall curve as scikit-learn returns it (recall decreasing)."""

    precision: tuple[float, ...]
    recall: tuple[float, ...]


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    mean_predicted: float
    observed_rate: float
    count: int


@dataclass(frozen=True)
class ModelMetrics:
    name: str
    auc_pr_purchased: float | None
    auc_pr_abandoned: float | None
    roc_auc: float | None
    brier: float | None
    threshold: float | None
    n_predicted_abandoned: int | None
    precision_abandoned: float | None
    recall_abandoned: float | None
    lift_abandoned: float | None
    precision_purchased: float | None
    recall_purchased: float | None
    pr_purchased: Curve | None
    pr_abandoned: Curve | None
    calibration: tuple[CalibrationBin, ...]


@dataclass(frozen=True)
class ChanceLevel:
    """What a constant predictor scores; its decision is "abandoned" for every cart."""

    auc_pr_purchased: float | None
    auc_pr_abandoned: float | None
    roc_auc: float | None
    brier: float | None
    precision_abandoned: float | None
    recall_abandoned: float | None
    lift_abandoned: float | None


@dataclass(frozen=True)
class RetailerRow:
    retailer_id: str
    n_test_carts: int
    n_rows: int
    prevalence_purchased: float
    auc_pr_purchased: dict[str, float | None]
    auc_pr_abandoned: dict[str, float | None]


@dataclass(frozen=True)
class Suppressed:
    """Retailers left out of ``per_retailer`` (fewer than ``min_carts`` test carts)."""

    min_carts: int
    n_retailers: int
    n_rows: int


@dataclass(frozen=True)
class PolicyValue:
    """One decision policy's true expected outcome over the same carts."""

    name: str
    rule: str  # how it decides, in words
    profit_per_1000: float  # margin less discounts and costs, per 1,000 carts
    gain_per_1000: float | None  # over no action
    recovered_per_1000: float  # carts bought because of the action, per 1,000 carts
    ratio_to_oracle: float | None  # profit ÷ the oracle's (None: the oracle's is not > 0)
    gain_ratio_to_oracle: float | None  # gain over no action ÷ the oracle's
    acted: dict[str, float]  # share of the carts given each action
    send_hours: dict[str, float]  # of the carts sent a message: share per send time (hours)


@dataclass(frozen=True)
class DecisionReport:
    """Decision policies compared by true expected profit on the simulator's carts."""

    n_carts: int  # the carts decided (unbought at the decision moment)
    decision_hours: float  # the decision moment, in hours of inactivity
    contactable_share: float  # of the carts, those that may be sent messages
    margin: float
    policies: tuple[PolicyValue, ...]
    # per action: its prior rate and the true mean rate per segment, at the decision moment
    true_rates: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def policy(self, name: str) -> PolicyValue | None:
        return next((p for p in self.policies if p.name == name), None)


@dataclass(frozen=True)
class EvaluationReport:
    n_test: int
    n_train: int | None
    n_test_carts: int | None
    prevalence_purchased: float | None
    prevalence_abandoned: float | None
    models: tuple[ModelMetrics, ...]
    prevalence: ChanceLevel
    per_retailer: tuple[RetailerRow, ...]
    suppressed: Suppressed
    weights: dict[str, dict[str, float | None]] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    decisions: DecisionReport | None = None
    schema_version: int = SCHEMA_VERSION

    def model(self, name: str) -> ModelMetrics | None:
        return next((m for m in self.models if m.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        result = _plain(self)
        assert isinstance(result, dict)
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationReport:
        if data.get("schema_version") not in READABLE_VERSIONS:
            raise ValueError(f"unsupported report schema_version {data.get('schema_version')!r}")
        return cls(
            n_test=data["n_test"],
            n_train=data["n_train"],
            n_test_carts=data["n_test_carts"],
            prevalence_purchased=data["prevalence_purchased"],
            prevalence_abandoned=data["prevalence_abandoned"],
            models=tuple(_model_from_dict(m) for m in data["models"]),
            prevalence=ChanceLevel(**data["prevalence"]),
            per_retailer=tuple(RetailerRow(**row) for row in data["per_retailer"]),
            suppressed=Suppressed(**data["suppressed"]),
            weights={m: dict(w) for m, w in data["weights"].items()},
            context=dict(data["context"]),
            decisions=_decisions_from_dict(data.get("decisions")),
        )


def choose_threshold(
    p_abandoned: np.ndarray, is_abandoned: np.ndarray, precision_target: float
) -> float | None:
    """The threshold on P(abandoned) with the highest recall of 'abandoned' whose precision is
    >= precision_target (predict abandoned when p >= threshold). None when no threshold reaches
    the target. Among thresholds of equal recall, the highest (most precise) one wins."""
    if not 0.0 <= precision_target <= 1.0:
        raise ValueError("precision_target must be within [0, 1]")
    scores = _probabilities(p_abandoned, "p_abandoned")
    truth = _binary(is_abandoned, "is_abandoned", scores.size)
    if not truth.any():
        return None
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    ends = np.append(np.flatnonzero(np.diff(ranked)), ranked.size - 1)  # last row of each score
    hits = np.cumsum(truth[order])[ends]
    precision = hits / (ends + 1)
    recall = hits / truth.sum()
    reaching = np.flatnonzero(precision >= precision_target - 1e-12)
    if reaching.size == 0:
        return None
    best = reaching[np.argmax(recall[reaching])]  # argmax: first, i.e. highest threshold
    return float(ranked[ends[best]])


def evaluate(
    *,
    purchased: np.ndarray,
    models: Sequence[ModelPredictions],
    retailer_ids: np.ndarray | None = None,
    cart_ids: np.ndarray | None = None,
    min_carts: int = K_ANONYMITY,
    weights: Mapping[str, Mapping[str, float]] | None = None,
    n_train: int | None = None,
    context: Mapping[str, Any] | None = None,
    decisions: DecisionReport | None = None,
) -> EvaluationReport:
    """Score every model on the same test rows; per-retailer rows only for retailers with at
    least ``min_carts`` distinct test carts (rows count as carts when ``cart_ids`` is None);
    ``decisions``: the section comparing decision policies, when there is one."""
    y = _binary(purchased, "purchased", None)
    _check_models(models, y.size)
    prevalence = float(y.mean()) if y.size else None
    abandoned_rate = None if prevalence is None else 1.0 - prevalence
    rows, suppressed = _per_retailer(y, models, retailer_ids, cart_ids, min_carts)
    return EvaluationReport(
        n_test=int(y.size),
        n_train=n_train,
        n_test_carts=_count_carts(cart_ids, retailer_ids, y.size),
        prevalence_purchased=prevalence,
        prevalence_abandoned=abandoned_rate,
        models=tuple(_model_metrics(m, y, abandoned_rate) for m in models),
        prevalence=_chance_level(y),
        per_retailer=rows,
        suppressed=suppressed,
        weights={name: {f: _num(w) for f, w in ws.items()} for name, ws in (weights or {}).items()},
        context=_plain(dict(context or {})),
        decisions=decisions,
    )


# --- per model ---------------------------------------------------------------------------------


def headline(purchased: np.ndarray, p_purchased: np.ndarray) -> dict[str, float | None]:
    """AUC-PR of both classes, ROC-AUC and Brier score of P(purchased); None where undefined
    (a test set with one class has no ranking figures). The figures are scikit-learn's
    ``average_precision_score`` and ``roc_auc_score`` (a test holds them equal), computed here
    with numpy alone: training takes them on every retailer's test carts, where
    scikit-learn's input checks cost more than the figures."""
    y = np.asarray(purchased, dtype=bool)
    p = np.asarray(p_purchased, dtype=float)
    both = _both_classes(y)
    return {
        "auc_pr_purchased": _num(average_precision(y, p)) if both else None,
        "auc_pr_abandoned": _num(average_precision(~y, 1.0 - p)) if both else None,
        "roc_auc": _num(roc_auc(y, p)) if both else None,
        "brier": _num(np.mean((p - y) ** 2)) if y.size else None,
    }


def _ranked(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, highest score first."""
    order = np.argsort(-score, kind="mergesort")
    ranked = score[order]
    ends = np.append(np.flatnonzero(np.diff(ranked)), ranked.size - 1)
    tps = np.cumsum(positive[order])[ends]
    return tps, ends + 1 - tps


def average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision-recall curve as a step function: sum of precision x the
    recall gained, at each distinct score (scikit-learn's ``average_precision_score``)."""
    tps, fps = _ranked(positive, score)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * tps / (tps + fps)))


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve, by the trapezoid rule over distinct scores."""
    tps, fps = _ranked(positive, score)
    tpr = np.concatenate([[0.0], tps / tps[-1]])
    fpr = np.concatenate([[0.0], fps / fps[-1]])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def _model_metrics(
    m: ModelPredictions, y: np.ndarray, abandoned_rate: float | None
) -> ModelMetrics:
    p = _probabilities(m.p_purchased, f"{m.name}.p_purchased")
    decided = None if m.abandoned is None else _binary(m.abandoned, f"{m.name}.abandoned", y.size)
    ops = _operating_point(decided, y, abandoned_rate)
    return ModelMetrics(
        name=m.name,
        **headline(y, p),  # type: ignore[arg-type]  # four float figures, by name
        threshold=_num(m.threshold),
        pr_purchased=_pr(y, p),
        pr_abandoned=_pr(~y, 1.0 - p),
        calibration=_calibration(p, y),
        **ops,
    )


def _pr(positive: np.ndarray, score: np.ndarray) -> Curve | None:
    from sklearn.metrics import precision_recall_curve

    if not _both_classes(positive):
        return None
    precision, recall, _ = precision_recall_curve(positive, score, drop_intermediate=True)
    keep = _spread(precision.size, MAX_CURVE_POINTS)
    return Curve(_floats(precision[keep]), _floats(recall[keep]))


def _operating_point(
    decided: np.ndarray | None, y: np.ndarray, abandoned_rate: float | None
) -> dict[str, Any]:
    if decided is None:
        names = (
            "precision_abandoned", "recall_abandoned", "lift_abandoned",
            "precision_purchased", "recall_purchased", "n_predicted_abandoned",
        )  # fmt: skip
        return dict.fromkeys(names)
    precision = _ratio(decided & ~y, decided)
    lift = precision / abandoned_rate if precision is not None and abandoned_rate else None
    return {
        "n_predicted_abandoned": int(decided.sum()),
        "precision_abandoned": precision,
        "recall_abandoned": _ratio(decided & ~y, ~y),
        "lift_abandoned": _num(lift),
        "precision_purchased": _ratio(~decided & y, ~decided),
        "recall_purchased": _ratio(~decided & y, y),
    }


def _calibration(p: np.ndarray, y: np.ndarray) -> tuple[CalibrationBin, ...]:
    """Equal-width bins of P(purchased) over [0, 1]; empty bins are left out, and a bin with
    fewer than ``K_ANONYMITY`` rows is merged with its neighbours (as every figure shown is)."""
    n = CALIBRATION_BINS
    index = np.minimum(np.floor(p * n).astype(int), n - 1)
    counts = np.bincount(index, minlength=n)
    predicted = np.bincount(index, weights=p, minlength=n)
    observed = np.bincount(index, weights=y.astype(float), minlength=n)
    bins = [i for i in range(n) if counts[i]]
    merged = merge_small(bins, lambda i: int(counts[i]), K_ANONYMITY)
    return tuple(
        CalibrationBin(
            group[0] / n,
            (group[-1] + 1) / n,
            float(sum(predicted[i] for i in group) / sum(counts[i] for i in group)),
            float(sum(observed[i] for i in group) / sum(counts[i] for i in group)),
            int(sum(counts[i] for i in group)),
        )
        for group in merged
    )


def _chance_level(y: np.ndarray) -> ChanceLevel:
    if not y.size:
        return ChanceLevel(None, None, None, None, None, None, None)
    rate = float(y.mean())
    both = _both_classes(y)
    return ChanceLevel(
        auc_pr_purchased=rate if both else None,
        auc_pr_abandoned=1.0 - rate if both else None,
        roc_auc=0.5 if both else None,
        brier=rate * (1.0 - rate),
        precision_abandoned=1.0 - rate,
        recall_abandoned=1.0 if rate < 1.0 else None,
        lift_abandoned=1.0 if rate < 1.0 else None,
    )


# --- in steps of k carts: one retailer's figures, to share -----------------------------------


@dataclass(frozen=True)
class ScoreBand:
    """Test rows whose P(abandoned) lies in [lower, upper) (the last band includes 1.0), and
    what became of them."""

    lower: float
    upper: float
    carts: int  # distinct carts among the rows
    rows: int
    mean_p_abandoned: float
    abandoned_rate: float  # observed: the share of the rows not bought within 24 h


def evaluate_in_steps(
    *,
    purchased: np.ndarray,
    models: Sequence[ModelPredictions],
    cart_ids: np.ndarray,
    retailer_id: str,
    k: int = K_ANONYMITY,
    weights: Mapping[str, Mapping[str, float]] | None = None,
    n_train: int | None = None,
    context: Mapping[str, Any] | None = None,
) -> EvaluationReport:
    """``evaluate`` on one retailer's test rows, with every curve in steps of at least ``k``
    carts: the precision-recall curves (``pr_in_steps``), the calibration bins
    (``calibration_in_steps``) and the operating point, shown only when the carts called
    abandoned and the others are each none or at least ``k`` (``operating_point_in_steps``).
    The areas, ROC-AUC and Brier score cover every test row."""
    y = _binary(purchased, "purchased", None)
    carts = _strings(cart_ids, y.size, "cart_ids")
    report = evaluate(
        purchased=y.astype(int),
        models=[replace(m, abandoned=None) for m in models],
        retailer_ids=np.full(y.size, retailer_id),
        cart_ids=carts,
        min_carts=k,
        weights=weights,
        n_train=n_train,
        context=context,
    )
    metrics = []
    for m, computed in zip(models, report.models, strict=True):
        p = _probabilities(m.p_purchased, f"{m.name}.p_purchased")
        point = operating_point_in_steps(m.abandoned, y, carts, report.prevalence_abandoned, k=k)
        metrics.append(replace(
            computed, pr_purchased=pr_in_steps(y, p, carts, k=k),
            pr_abandoned=pr_in_steps(~y, 1.0 - p, carts, k=k),
            calibration=calibration_in_steps(p, y, carts, k=k), **point,
        ))  # fmt: skip
    return replace(report, models=tuple(metrics))


def pr_in_steps(
    positive: np.ndarray,
    score: np.ndarray,
    cart: np.ndarray,
    *,
    k: int = K_ANONYMITY,
    most: int | None = None,
) -> Curve | None:
    """The precision-recall curve of ``score`` for the ``positive`` rows, one point per step of
    a threshold table (``threshold_tables.threshold_table``) whose every step calls at least
    ``k`` carts more than the one above (the first at least ``k``): no two neighbouring points
    differ by fewer than ``k`` carts. In scikit-learn's order (recall decreasing), ending at
    recall 0 with the first step's precision. None without both classes or ``k`` carts.
    ``most``: at most that many points, the steps then each calling at least 1 / (``most`` - 1)
    of the carts (and still at least ``k``)."""
    y = np.asarray(positive, dtype=bool)
    carts = np.asarray(cart)
    n_carts = np.unique(carts).size
    if not _both_classes(y) or n_carts < k:
        return None
    step = k if most is None else max(k, math.ceil(n_carts / max(most - 1, 1)))
    table = threshold_table(np.asarray(score, dtype=float), y, carts, min_carts=step)
    precision = [s.hits / s.called for s in reversed(table.steps)]
    recall = [s.hits / table.abandoned for s in reversed(table.steps)]
    return Curve(_floats(np.array([*precision, precision[-1]])),
                 _floats(np.array([*recall, 0.0])))  # fmt: skip


CURVE_POINTS = 25  # of each precision-recall curve a model version keeps


def curves_in_steps(
    purchased: np.ndarray,
    p_purchased: np.ndarray,
    cart: np.ndarray,
    *,
    k: int = K_ANONYMITY,
    most: int = CURVE_POINTS,
) -> dict[str, Any]:
    """What a model version keeps of one model on one retailer's held-out rows, to be drawn
    where the retailer sees it: the precision-recall curve of either class (``pr_in_steps``,
    at most ``most`` points) and the calibration bins of P(purchased)
    (``calibration_in_steps``), as plain values (a curve is None without both classes or ``k``
    carts; no bins under ``k`` carts)."""
    y = _binary(purchased, "purchased", None)
    p = _probabilities(p_purchased, "p_purchased")
    carts = np.asarray(cart)
    found = {
        "pr_purchased": pr_in_steps(y, p, carts, k=k, most=most),
        "pr_abandoned": pr_in_steps(~y, 1.0 - p, carts, k=k, most=most),
        "calibration": calibration_in_steps(p, y, carts, k=k),
    }
    plain = _plain(found)
    assert isinstance(plain, dict)
    return plain


def steps_called(
    p_purchased: np.ndarray,
    purchased: np.ndarray,
    cart: np.ndarray,
    threshold: float,
    *,
    k: int = K_ANONYMITY,
) -> np.ndarray:
    """The rows called abandoned at the step of the abandoned class's curve
    (``pr_in_steps``) where a threshold on P(abandoned) falls: the step that calls the
    fewest rows among those calling every row the threshold calls (none when the threshold
    calls none), so that the operating point shown is a point of the curve."""
    p_abandoned = 1.0 - _probabilities(p_purchased, "p_purchased")
    y = _binary(purchased, "purchased", p_abandoned.size)
    if not (p_abandoned >= threshold).any():
        return np.zeros(p_abandoned.size, dtype=bool)
    steps = threshold_table(p_abandoned, ~y, np.asarray(cart), min_carts=k).steps
    chosen = next((s for s in steps if s.threshold <= threshold), steps[-1])
    return np.asarray(p_abandoned >= chosen.threshold)


def operating_point_in_steps(
    decided: np.ndarray | None,
    purchased: np.ndarray,
    cart: np.ndarray,
    abandoned_rate: float | None,
    *,
    k: int = K_ANONYMITY,
) -> dict[str, Any]:
    """The operating-point figures of ``ModelMetrics`` for the rows ``decided`` abandoned;
    all None when the carts called abandoned, or the others, are 1 to ``k`` - 1."""
    y = _binary(purchased, "purchased", None)
    called = None if decided is None else _binary(decided, "decided", y.size)
    carts = np.asarray(cart)
    if called is not None and not all(
        n == 0 or n >= k for n in (np.unique(carts[called]).size, np.unique(carts[~called]).size)
    ):
        called = None
    return _operating_point(called, y, abandoned_rate)


def calibration_in_steps(
    p_purchased: np.ndarray, purchased: np.ndarray, cart: np.ndarray, *, k: int = K_ANONYMITY
) -> tuple[CalibrationBin, ...]:
    """``CALIBRATION_BINS`` equal-width bins of P(purchased), neighbours merged until each
    holds rows of at least ``k`` distinct carts (a remainder joins the bin before it); no bin
    with fewer than ``k`` carts in all."""
    p = _probabilities(p_purchased, "p_purchased")
    y = _binary(purchased, "purchased", p.size).astype(float)
    index = _bin_index(p)
    bins = []
    for group in _merged_by_carts(index, np.asarray(cart), k):
        rows = np.isin(index, group)
        bins.append(CalibrationBin(group[0] / CALIBRATION_BINS, (group[-1] + 1) / CALIBRATION_BINS,
                                   float(p[rows].mean()), float(y[rows].mean()),
                                   int(rows.sum())))  # fmt: skip
    return tuple(bins)


def score_bands(
    p_abandoned: np.ndarray, abandoned: np.ndarray, cart: np.ndarray, *, k: int = K_ANONYMITY
) -> tuple[ScoreBand, ...]:
    """Outcomes per band of P(abandoned): bands 0.1 wide, neighbours merged until each holds
    rows of at least ``k`` distinct carts, as ``calibration_in_steps``."""
    p = _probabilities(p_abandoned, "p_abandoned")
    y = _binary(abandoned, "abandoned", p.size).astype(float)
    carts = np.asarray(cart)
    index = _bin_index(p)
    bands = []
    for group in _merged_by_carts(index, carts, k):
        rows = np.isin(index, group)
        bands.append(ScoreBand(group[0] / CALIBRATION_BINS, (group[-1] + 1) / CALIBRATION_BINS,
                               int(np.unique(carts[rows]).size), int(rows.sum()),
                               float(p[rows].mean()), float(y[rows].mean())))  # fmt: skip
    return tuple(bands)


def _bin_index(p: np.ndarray) -> np.ndarray:
    """Each value's bin of ``CALIBRATION_BINS`` equal-width bins over [0, 1]."""
    return np.asarray(np.minimum(np.floor(p * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1))


def _merged_by_carts(index: np.ndarray, cart: np.ndarray, k: int) -> list[list[int]]:
    """Consecutive non-empty bins grouped until the rows of each group come from at least
    ``k`` distinct carts (a cart's snapshots may fall in several bins, so carts are counted
    per group, not added up); a remainder joins the group before it. Empty when all the rows
    together come from fewer than ``k`` carts."""
    groups: list[list[int]] = []
    current: list[int] = []
    seen: set[Any] = set()
    for i in range(CALIBRATION_BINS):
        rows = index == i
        if not rows.any():
            continue
        current.append(i)
        seen.update(cart[rows].tolist())
        if len(seen) >= k:
            groups.append(current)
            current, seen = [], set()
    if current:
        if not groups:
            return []
        groups[-1].extend(current)
    return groups


# --- per retailer ------------------------------------------------------------------------------


def _per_retailer(
    y: np.ndarray,
    models: Sequence[ModelPredictions],
    retailer_ids: np.ndarray | None,
    cart_ids: np.ndarray | None,
    min_carts: int,
) -> tuple[tuple[RetailerRow, ...], Suppressed]:
    if retailer_ids is None:
        return (), Suppressed(min_carts, 0, 0)
    ids = _strings(retailer_ids, y.size, "retailer_ids")
    carts = (
        np.arange(y.size).astype(str)
        if cart_ids is None
        else _strings(cart_ids, y.size, "cart_ids")
    )
    rows: list[RetailerRow] = []
    hidden_retailers = hidden_rows = 0
    for retailer in np.unique(ids):
        mask = ids == retailer
        n_carts = int(np.unique(carts[mask]).size)
        if n_carts < min_carts:
            hidden_retailers += 1
            hidden_rows += int(mask.sum())
            continue
        rows.append(_retailer_row(str(retailer), n_carts, mask, y, models))
    return tuple(rows), Suppressed(min_carts, hidden_retailers, hidden_rows)


def _retailer_row(
    retailer: str, n_carts: int, mask: np.ndarray, y: np.ndarray, models: Sequence[ModelPredictions]
) -> RetailerRow:
    mine = y[mask]
    both = _both_classes(mine)

    def auc(positive: np.ndarray, score: np.ndarray) -> float | None:
        return _num(average_precision(positive, score)) if both else None

    p = {m.name: np.asarray(m.p_purchased, dtype=float)[mask] for m in models}
    return RetailerRow(
        retailer_id=retailer,
        n_test_carts=n_carts,
        n_rows=int(mine.size),
        prevalence_purchased=float(mine.mean()),
        auc_pr_purchased={name: auc(mine, s) for name, s in p.items()},
        auc_pr_abandoned={name: auc(~mine, 1.0 - s) for name, s in p.items()},
    )


# --- validation and plain values ---------------------------------------------------------------


def _check_models(models: Sequence[ModelPredictions], n: int) -> None:
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    for m in models:
        if np.shape(m.p_purchased) != (n,):
            raise ValueError(f"{m.name}.p_purchased must have one value per test row ({n})")


def _probabilities(values: np.ndarray, what: str) -> np.ndarray:
    p = np.asarray(values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional")
    if not np.all((p >= 0.0) & (p <= 1.0)):  # also rejects NaN
        raise ValueError(f"{what} must be probabilities within [0, 1]")
    return p


def _binary(values: np.ndarray, what: str, n: int | None) -> np.ndarray:
    raw = np.asarray(values)
    if raw.ndim != 1 or (n is not None and raw.size != n):
        raise ValueError(f"{what} must have one value per test row")
    if raw.size and not np.isin(raw, (0, 1)).all():
        raise ValueError(f"{what} must hold booleans or 0/1")
    return raw.astype(bool)


def _strings(values: np.ndarray, n: int, what: str) -> np.ndarray:
    out = np.asarray(values).astype(str)
    if out.shape != (n,):
        raise ValueError(f"{what} must have one value per test row ({n})")
    return out


def _count_carts(
    cart_ids: np.ndarray | None, retailer_ids: np.ndarray | None, n: int
) -> int | None:
    """Distinct carts; a cart id is the retailer's own, so it counts per retailer."""
    if cart_ids is None:
        return None
    carts = _strings(cart_ids, n, "cart_ids")
    if retailer_ids is not None:
        carts = np.char.add(np.char.add(_strings(retailer_ids, n, "retailer_ids"), "\x00"), carts)
    return int(np.unique(carts).size)


def _both_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < y.size


def _ratio(hits: np.ndarray, among: np.ndarray) -> float | None:
    total = int(among.sum())
    return int(hits.sum()) / total if total else None


def _spread(n: int, most: int) -> np.ndarray:
    """Indices of at most ``most`` points spread evenly over ``n``, both ends kept."""
    if n <= most:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, most).round().astype(int))


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(v), 6) for v in values)


def _num(x: Any) -> float | None:
    if x is None:
        return None
    value = float(x)
    return value if math.isfinite(value) else None


def _plain(obj: Any) -> Any:
    """Dataclasses, mappings, sequences and numpy values as JSON-able Python; NaN/inf as None."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray | list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _num(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def _model_from_dict(data: Mapping[str, Any]) -> ModelMetrics:
    def curve(c: Mapping[str, Any] | None) -> Curve | None:
        return None if c is None else Curve(tuple(c["precision"]), tuple(c["recall"]))

    return ModelMetrics(
        **{
            **data,
            "pr_purchased": curve(data["pr_purchased"]),
            "pr_abandoned": curve(data["pr_abandoned"]),
            "calibration": tuple(CalibrationBin(**b) for b in data["calibration"]),
        }
    )


def _decisions_from_dict(data: Mapping[str, Any] | None) -> DecisionReport | None:
    if data is None:
        return None
    return DecisionReport(
        **{
            **data,
            "policies": tuple(PolicyValue(**p) for p in data["policies"]),
            "true_rates": {a: dict(r) for a, r in data["true_rates"].items()},
        }
    )
