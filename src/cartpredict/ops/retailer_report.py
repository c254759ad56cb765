"""One retailer's own evaluation, to share offline: the model serving it against the baseline
rule on its held-out carts, as an HTML page with PNG figures (``cartpredict report``).

The carts are the retailer's events in the store (the raw window: 14 days at most), made into
labelled snapshots and split by time exactly as training does (``training.Source``: a treated
cart is left out from its first action on; the oldest 60 % of carts train, the newest 20 % are
held out). The served model scores the held-out snapshots as it serves the retailer, at its
operating point for the retailer's ``precision_target`` of now; the baseline rule (the
retailer's own threshold) is fitted on the training carts, as training's promotion gate does.

Every curve, calibration bin and score band covers at least ``K_ANONYMITY`` carts
(``evaluation.evaluate_in_steps``); with fewer held-out carts there is no figure at all, only
the page saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from cartpredict.learning.columns import score
from cartpredict.learning.evaluation import (
    BASELINE,
    EvaluationReport,
    ModelPredictions,
    ScoreBand,
    evaluate_in_steps,
    score_bands,
    steps_called,
)
from cartpredict.learning.plots import write_retailer_report
from cartpredict.learning.training import Source
from cartpredict.models.baseline import BaselineRule
from cartpredict.models.logistic import LogisticModel
from cartpredict.models.registry import ModelRegistry
from cartpredict.privacy.anonymity import K_ANONYMITY
from cartpredict.storage import POOLED_SCOPE, Retailer, Store

SERVED = "served model"
FIGURES = ("auc_pr_purchased", "auc_pr_abandoned", "roc_auc", "brier")


class ReportError(Exception):
    """Why there is no report, in one line."""


@dataclass(frozen=True)
class RetailerReport:
    retailer_id: str
    model_version: str
    model_kind: str  # "retailer" (its own model) or "pooled"
    threshold: float  # the served operating point, on P(abandoned)
    baseline_rule: str  # in words, in the retailer's currency
    as_of: datetime
    held_out_days: tuple[str, str] | None  # first and last day of the held-out snapshots
    evaluation: EvaluationReport | None  # None: fewer than k held-out carts
    bands: tuple[ScoreBand, ...]
    k: int = K_ANONYMITY

    def figures(self) -> dict[str, dict[str, float | None]]:
        """Model name -> the headline figures over every held-out snapshot."""
        if self.evaluation is None:
            return {}
        return {m.name: {f: getattr(m, f) for f in FIGURES} for m in self.evaluation.models}


def retailer_report(
    store: Store, retailer_id: str, *, as_of: datetime, k: int = K_ANONYMITY
) -> RetailerReport:
    """The report of one retailer (``ReportError``: an unknown retailer, no served model, no
    events)."""
    retailer = store.get_retailer(retailer_id=retailer_id)
    if retailer is None:
        raise ReportError(f"no retailer '{retailer_id}'")
    registry = ModelRegistry(store)
    version = registry.served_version(retailer)
    served = registry.served_model(retailer)
    if version is None or not isinstance(served, LogisticModel):
        raise ReportError(
            f"retailer '{retailer_id}' has no served model yet (the baseline rule serves it): "
            "train one with `cartpredict train`"
        )
    if not _has_events(store, retailer_id):
        raise ReportError(f"retailer '{retailer_id}' has no events in the store")
    parts = Source(as_of, store=store).read(retailer)
    test = parts.test
    report = RetailerReport(
        retailer_id=retailer_id, model_version=version.version_id,
        model_kind="pooled" if version.scope == POOLED_SCOPE else "retailer",
        threshold=float(served.threshold), baseline_rule=BaselineRule().describe(retailer),
        as_of=as_of, held_out_days=None, evaluation=None, bands=(), k=k,
    )  # fmt: skip
    if test.n_carts() < k:
        return report
    baseline = BaselineRule().fit(
        parts.train.carts.cart_value.tolist(), parts.train.abandoned.astype(bool).tolist(),
        threshold=retailer.baseline_threshold,
    )  # fmt: skip
    carts = test.cart_ids[test.cart]
    p_served = score(served, test.carts, retailer)  # P(abandoned)
    called = steps_called(1.0 - p_served, test.purchased, carts, served.threshold, k=k)
    below = np.asarray(test.carts.cart_value) < baseline.threshold_for(retailer)
    evaluation = evaluate_in_steps(
        purchased=test.purchased,
        models=[ModelPredictions(SERVED, 1.0 - p_served, called, served.threshold),
                ModelPredictions(BASELINE, 1.0 - score(baseline, test.carts, retailer), below)],
        cart_ids=carts,
        retailer_id=retailer_id,
        k=k,
        weights={SERVED: served.named_weights()},
        n_train=len(parts.train),
        context=_context(report, retailer),
    )  # fmt: skip
    return replace(
        report,
        held_out_days=(_day(int(test.at.min())), _day(int(test.at.max()))),
        evaluation=evaluation,
        bands=score_bands(p_served, ~test.purchased, carts, k=k),
    )


def _context(report: RetailerReport, retailer: Retailer) -> dict[str, str]:
    return {
        "retailer": retailer.retailer_id,
        "served model": f"{report.model_version} ({_served_as(report)}), threshold "
        f"{report.threshold:.3f} on P(abandoned) for precision_target "
        f"{retailer.precision_target:g}",
        "baseline": f"{report.baseline_rule}, its rates fitted on the training carts",
        "as of": f"{report.as_of:%Y-%m-%dT%H:%M:%SZ}",
        "split": "the retailer's carts by time: oldest 60 % train, next 20 % validate, newest "
        "20 % held out (scored here); treated carts left out from their first action",
        "k-anonymity": f"every curve point, calibration bin and score band covers at least "
        f"{report.k} carts",
    }


def _served_as(report: RetailerReport) -> str:
    return "the pooled model" if report.model_kind == "pooled" else "its own model"


def _has_events(store: Store, retailer_id: str) -> bool:
    rows = store.event_rows(retailer_id=retailer_id)
    try:
        return next(rows, None) is not None
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()


def _day(micros: int) -> str:
    return f"{datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros):%Y-%m-%d}"


# --- output ----------------------------------------------------------------------------------


def write(report: RetailerReport, out_dir: Path) -> dict[str, Path]:
    """The HTML page and its PNG figures (and report.json) in ``out_dir``."""
    return write_retailer_report(
        report.evaluation, report.bands, out_dir,
        title=f"cartpredict report: {report.retailer_id}", facts=_facts(report),
        notes=_notes(report),
    )  # fmt: skip


def _facts(report: RetailerReport) -> list[tuple[str, str]]:
    facts = [
        ("Retailer", report.retailer_id),
        ("Served model", f"{report.model_version} ({_served_as(report)})"),
        ("Threshold on P(abandoned)", f"{report.threshold:.3f}"),
        ("Baseline rule", report.baseline_rule),
        ("As of", f"{report.as_of:%Y-%m-%d %H:%M} UTC"),
    ]
    e = report.evaluation
    if e is None:
        return [*facts, ("Held-out carts", f"fewer than {report.k}")]
    assert report.held_out_days is not None
    first, last = report.held_out_days
    return [
        *facts,
        ("Held-out carts", f"{e.n_test_carts:,} ({e.n_test:,} snapshots), {first} to {last}"),
        ("Bought within 24 h", f"{e.prevalence_purchased:.1%} of the held-out snapshots"),
    ]


def _notes(report: RetailerReport) -> list[str]:
    if report.evaluation is None:
        return [
            f"Fewer than {report.k} of the retailer's carts are held out (the newest 20 % of "
            "its carts with a known outcome): too few to show any figure or curve "
            f"(k-anonymity: every figure covers at least {report.k} carts). Send more events "
            "and run the report again."
        ]
    return [
        "The served model and the baseline rule on the retailer's own held-out carts: carts "
        "it was not trained on, newer than every cart it was. AUC-PR, ROC-AUC and Brier score "
        f"cover every held-out snapshot; curves, calibration bins and bands move in steps of "
        f"at least {report.k} carts, and the operating point shown is the step of the curve "
        "where the served threshold falls."
    ]


def summary(report: RetailerReport) -> str:
    """What the command prints: the figures of both models, or why there are none."""
    lines = [f"{report.retailer_id}: served model {report.model_version} ({_served_as(report)}), "
             f"threshold {report.threshold:.3f} on P(abandoned)"]  # fmt: skip
    e = report.evaluation
    if e is None:
        lines.append(f"fewer than {report.k} held-out carts: no figures and no curves "
                     "(k-anonymity)")  # fmt: skip
        return "\n".join(lines)
    assert report.held_out_days is not None
    first, last = report.held_out_days
    lines.append(f"held-out carts: {e.n_test_carts:,} ({e.n_test:,} snapshots, {first} to "
                 f"{last}), bought within 24 h: {e.prevalence_purchased:.4f}")  # fmt: skip
    lines.append(f"{'model':<16}{'AUC-PR purchased':>18}{'AUC-PR abandoned':>18}"
                 f"{'ROC-AUC':>9}{'Brier':>9}")  # fmt: skip
    names = {SERVED: "served", BASELINE: "baseline"}
    for name, figures in report.figures().items():
        cells = "".join(f"{_fmt(figures[f]):>{w}}" for f, w in zip(FIGURES, (18, 18, 9, 9),
                                                                     strict=True))  # fmt: skip
        lines.append(f"{names.get(name, name):<16}{cells}")
    lines.append(f"{'prevalence':<16}{_fmt(e.prevalence.auc_pr_purchased):>18}"
                 f"{_fmt(e.prevalence.auc_pr_abandoned):>18}")  # fmt: skip
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
