"""Training runs: the pooled model, then one model per retailer, each promoted only if it earns it.

* Pooled: a bounded sample of every opted-in retailer's carts (``pooled_sample``), cart + site
  features. Its weights are all that leaves a tenant; it serves opted-in retailers that have
  no model of their own.
* Per retailer: that retailer's carts only, cart features + its custom attributes, shrunk
  toward the pooled weights when it opted in (toward zero otherwise).
* Each retailer's carts are split by time (oldest 60 % train, next 20 % validate: penalty and
  threshold, then a refit on both with that penalty; newest 20 % test). A candidate is
  promoted only when its AUC-PR (purchased) on the retailer's own test carts beats both the
  baseline rule's and the served model's.
* Too little data (fewer than ``MIN_CARTS`` training carts or ``MIN_CLASS`` rows of a class):
  no per-retailer model; the pooled model serves (if opted in), else the baseline.
* Every version keeps a threshold table (``threshold_tables.py``) of its validation scores, so
  serving sets each retailer's operating point for its ``precision_target`` of the moment:
  a retailer's own model, over its own validation carts; the pooled model, over every member's
  (k-anonymous steps, a grid of targets), and, for each member with at least
  ``MIN_THRESHOLD_CARTS`` validation carts in the pooled sample (``MIN_CLASS`` rows of each
  class), over that member's own, kept in ``metrics["thresholds_by_retailer"]``: the
  threshold it is served at is then set on its own carts. The version's stored ``threshold``
  is the table's at the target of training time (the pooled model's: 0.70).
* Every version keeps, beside its held-out figures, its precision-recall curves and calibration
  bins and the baseline rule's, on the retailer's own test carts, in steps of at least
  ``K_ANONYMITY`` carts (``metrics["curves"]``; the pooled model's, per member, in
  ``metrics["by_retailer"]``): what the Model page draws.

The work runs on an executor (``executors.py``: this process, this machine's cores, a Dask
cluster), a few retailers in flight at a time, so memory is bounded by a few retailers' data,
not by all of them. A first pass reads each opted-in retailer's events and takes its share of
the pooled sample (``pooled_sample``: about ``POOLED_TRAIN_ROWS`` training rows over all
members); on one machine it also spills the retailer's snapshots to a temporary file for the
second pass. After the pooled fit, the second pass fits each retailer (reading its events
again where nothing was spilled) and the trainer records each result as it comes back. A fit
depends on nothing but its retailer's events and the models it is sent, so every executor
gives the same models.
"""

from __future__ import annotations

import pickle
import secrets
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cartpredict.learning.columns import design_matrix, profile_of, score
from cartpredict.learning.evaluation import curves_in_steps, headline
from cartpredict.learning.executors import Executor, InProcess
from cartpredict.learning.fit import fit_path, sigmoid
from cartpredict.learning.frames import (
    EventColumns,
    Parts,
    Snapshots,
    micros,
    sample_carts,
    snapshot_columns,
    split_by_time,
    without_treated,
)
from cartpredict.learning.threshold_tables import pooled_threshold_table, threshold_table
from cartpredict.models.base import ServedModel
from cartpredict.models.baseline import BaselineRule
from cartpredict.models.features import (
    SITE_FEATURES,
    SITE_PRODUCTS,
    FeatureSpec,
    site_features,
    spec_for,
)
from cartpredict.models.logistic import LogisticModel
from cartpredict.models.registry import ModelRegistry
from cartpredict.models.thresholds import ThresholdTable
from cartpredict.storage import POOLED_SCOPE, EventStore, ModelVersion, Retailer, Store, open_store

MIN_CARTS = 50
MIN_CLASS = 10
PENALTIES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
INTERACTION_FACTOR = 10.0  # pairwise products and shape terms are penalised this much harder
POOLED_PRECISION_TARGET = 0.70
POOLED_TRAIN_ROWS = 150_000  # about this many training rows for the pooled model, all members
MIN_POOLED_TRAIN_CARTS = 20  # however many members there are, each gives at least these
MIN_POOLED_TEST_CARTS = 50  # enough for the figures each member sees of the pooled model
MIN_THRESHOLD_CARTS = 50  # a member's own validation carts that set its pooled threshold
PARTS = ("train", "valid", "test")


@dataclass(frozen=True)
class Outcome:
    scope: str
    status: str  # "promoted" | "kept" | "insufficient_data"
    version_id: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)


# --- one retailer's fit: a pure function of what it is sent ------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a task reads a retailer's events: the database at ``url`` (each worker process
    opens it once), or, for a task run in the trainer's own process, the trainer's store."""

    as_of: datetime
    url: str | None = None
    store: EventStore | None = field(default=None, compare=False)
    spill: str | None = None  # a directory every worker sees (a local run): parts kept there

    def parts(self, retailer: Retailer) -> Parts:
        """The retailer's snapshots, split: as the first pass spilled them, or read anew."""
        path = None if self.spill is None else Path(self.spill) / f"{retailer.retailer_id}.pickle"
        if path is not None and path.exists():
            with path.open("rb") as f:
                parts: Parts = pickle.load(f)
            path.unlink()
            return parts
        return self.read(retailer)

    def keep(self, retailer: Retailer, parts: Parts) -> None:
        """Spill the parts for the second pass (where there is a place to)."""
        if self.spill is not None:
            path = Path(self.spill) / f"{retailer.retailer_id}.pickle"
            with path.open("wb") as f:
                pickle.dump(parts, f, protocol=pickle.HIGHEST_PROTOCOL)

    def read(self, retailer: Retailer) -> Parts:
        store = self.store if self.url is None else _opened(self.url)
        assert store is not None, "a source needs a database URL or a store"
        names = [name for name, _ in retailer.attributes]
        rows = store.event_rows(retailer_id=retailer.retailer_id, attributes=bool(names))
        events = EventColumns.from_rows(rows, names)
        treated = _treated_at(store, retailer.retailer_id)
        snapshots = without_treated(snapshot_columns(events, as_of=self.as_of), treated)
        return split_by_time(snapshots)


def _treated_at(store: EventStore, retailer_id: str) -> dict[str, int]:
    """Cart id -> µs of its first action, for carts in the treatment group."""
    first: dict[str, int] = {}
    for e in store.exposures(retailer_id=retailer_id):
        if e.group == "treatment":
            at = micros(e.at)
            first[e.cart_id] = min(at, first.get(e.cart_id, at))
    return first


@lru_cache(maxsize=4)
def _opened(url: str) -> EventStore:
    return open_store(url)


@dataclass(frozen=True)
class FitTask:
    retailer: Retailer
    source: Source
    served: ServedModel  # what serves the retailer now
    pooled: LogisticModel | None  # the pooled model to shrink toward (opted-in retailers)


@dataclass(frozen=True)
class ShareTask:
    retailer: Retailer
    source: Source
    carts: Mapping[str, int]  # carts per part (``pooled_sample``)
    spill: bool  # keep the parts for this retailer's own fit


@dataclass(frozen=True)
class Fitted:
    scope: str
    model: LogisticModel | None  # None: too little data
    report: dict[str, Any]
    promote: bool
    n_train: int = 0
    window: tuple[int, int] = (0, 0)  # µs
    profile: dict[str, Any] = field(default_factory=dict)
    thresholds: ThresholdTable | None = None  # over the validation carts


def fit_retailer(task: FitTask) -> Fitted:
    """Read, fit, test and judge one retailer's candidate (wherever the executor runs it)."""
    retailer, parts = task.retailer, task.source.parts(task.retailer)
    scope = retailer.retailer_id
    if not _enough(parts.train) or not _enough(parts.valid, carts=1) or not len(parts.test):
        return Fitted(scope, None, {}, promote=False)
    spec = spec_for(retailer, level_counts=_level_counts(retailer, parts.train))
    prior = None if task.pooled is None else _prior(task.pooled, retailer, spec)
    train = _matrix(spec, parts.train, retailer)
    valid = _matrix(spec, parts.valid, retailer)
    rows = (np.vstack([train[0], valid[0]]), np.concatenate([train[1], valid[1]]))
    model, valid_metrics, table = _fit(
        spec, rows, len(train[1]), retailer.precision_target, prior=prior,
        tabulate=lambda p, y: threshold_table(p, y, parts.valid.cart),
    )  # fmt: skip
    test = parts.test
    y = test.abandoned
    baseline = _baseline(parts.train, retailer)
    p_candidate, p_baseline = (score(m, test.carts, retailer) for m in (model, baseline))
    report: dict[str, Any] = {
        "candidate": metrics(y, p_candidate),
        "served": metrics(y, score(task.served, test.carts, retailer)),
        "served_version": task.served.version,
        "baseline": metrics(y, p_baseline),
        "validation": valid_metrics,
        "n_test_carts": test.n_carts(),
        "shrunk_toward_pooled": prior is not None,
        "n_train_carts": parts.train.n_carts(),
        "curves": curves(test, candidate=p_candidate, baseline=p_baseline),
    }
    auc = report["candidate"]["auc_pr_purchased"]
    promote = _beats(auc, report["baseline"]["auc_pr_purchased"], strictly=True) and _beats(
        auc, report["served"]["auc_pr_purchased"], strictly=True
    )
    return Fitted(
        scope, model, report, promote, n_train=len(parts.train),
        window=_window(parts.train), profile=profile_of(parts.train.carts), thresholds=table,
    )  # fmt: skip


def metrics(abandoned: np.ndarray, p_abandoned: np.ndarray) -> dict[str, float | None]:
    """The headline figures on one test set, from the abandoned-class arrays training uses."""
    return headline(abandoned == 0, 1.0 - p_abandoned)


def curves(rows: Snapshots, **p_abandoned: np.ndarray) -> dict[str, Any]:
    """Per model (its P(abandoned) of each row), its precision-recall curves and calibration
    bins on one retailer's test rows, in steps of at least k carts
    (``evaluation.curves_in_steps``): what the retailer is shown of how the model compares
    with the baseline rule on its own held-out carts."""
    return {name: curves_in_steps(rows.purchased, 1.0 - p, rows.cart)
            for name, p in p_abandoned.items()}  # fmt: skip


# --- the pooled model's sample -------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """One member's part of the pooled model's sample: training and validation rows as
    design-matrix blocks (and the cart of each validation row), test snapshots (any served
    model can score them), the profile of its training rows."""

    retailer: Retailer
    blocks: Mapping[str, tuple[np.ndarray, np.ndarray]]  # part -> (X, abandoned)
    valid_carts: np.ndarray  # int code of each validation row's cart
    below: np.ndarray  # training rows below the retailer's baseline threshold
    test: Snapshots
    carts: Mapping[str, int]
    profile: dict[str, Any] | None
    window: tuple[int, int] | None


POOLED_SPEC = FeatureSpec(cart=True, site=True)


def pooled_share(task: ShareTask) -> Share:
    """Read one member's events and take its share of the pooled sample (in a worker)."""
    parts = task.source.read(task.retailer)
    if task.spill:
        task.source.keep(task.retailer, parts)
    rows = {name: sample_carts(getattr(parts, name), task.carts[name]) for name in PARTS}
    train = rows["train"]
    blocks = {
        name: (design_matrix(POOLED_SPEC, rows[name].carts, task.retailer), rows[name].abandoned)
        for name in ("train", "valid")
    }
    return Share(
        retailer=task.retailer,
        blocks=blocks,
        valid_carts=rows["valid"].cart,
        below=train.carts.cart_value < task.retailer.baseline_threshold,
        test=rows["test"],
        carts={name: rows[name].n_carts() for name in PARTS},
        profile=profile_of(train.carts) if len(train) else None,
        window=_window(train) if len(train) else None,
    )


@dataclass
class PooledSample:
    """Every member's share, put together."""

    spec: FeatureSpec = POOLED_SPEC
    blocks: dict[str, list[np.ndarray]] = field(default_factory=lambda: {p: [] for p in PARTS})
    labels: dict[str, list[np.ndarray]] = field(default_factory=lambda: {p: [] for p in PARTS})
    below: list[np.ndarray] = field(default_factory=list)  # below the threshold (baseline)
    carts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTS, 0))
    tests: list[tuple[Retailer, Snapshots]] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    window: tuple[int, int] | None = None
    # Each validation row's cart, numbered across members; (member, its validation rows).
    valid_carts: list[np.ndarray] = field(default_factory=list)
    valid_of: list[tuple[str, int]] = field(default_factory=list)
    numbered: int = 0  # cart numbers given out so far

    def add(self, share: Share) -> None:
        for name, (X, y) in share.blocks.items():
            if len(y):
                self.blocks[name].append(X)
                self.labels[name].append(y)
        if len(share.valid_carts):
            self.valid_carts.append(share.valid_carts + self.numbered)
            self.numbered += int(share.valid_carts.max()) + 1
            self.valid_of.append((share.retailer.retailer_id, len(share.valid_carts)))
        for name, n in share.carts.items():
            self.carts[name] += n
        self.below.append(share.below)
        if len(share.test):
            self.tests.append((share.retailer, share.test))
        if share.profile is not None:
            self.profiles[share.retailer.retailer_id] = share.profile
        if share.window is not None:
            start, end = share.window
            self.window = (start, end) if self.window is None else (
                min(self.window[0], start), max(self.window[1], end))  # fmt: skip

    def rows(self) -> tuple[tuple[np.ndarray, np.ndarray], int]:
        """The training rows, then the validation rows, in one matrix (the blocks are let
        go: the fit's slices of it are views, so the pooled matrix is held once); and how
        many of its rows are training rows."""
        parts = ("train", "valid")
        blocks = [b for name in parts for b in self.blocks[name]]
        labels = [y for name in parts for y in self.labels[name]]
        n_train = sum(len(y) for y in self.labels["train"])
        for name in parts:
            self.blocks[name].clear()
            self.labels[name].clear()
        if not blocks:
            return (np.empty((0, len(self.spec.names()))), np.empty(0)), 0
        X = np.vstack(blocks)
        del blocks
        return (X, np.concatenate(labels)), n_train

    def test_scores(self, model: ServedModel) -> tuple[np.ndarray, np.ndarray]:
        """P(abandoned) by ``model`` over every member's test rows, and whether abandoned."""
        if not self.tests:
            return np.empty(0), np.empty(0)
        p = [score(model, rows.carts, retailer) for retailer, rows in self.tests]
        return np.concatenate(p), np.concatenate([rows.abandoned for _, rows in self.tests])


def pooled_sample(n_members: int) -> dict[str, int]:
    """Carts per member and part: ``POOLED_TRAIN_ROWS`` shared out evenly (a cart gives about
    3 snapshots), a third as many to validate and test; so memory stays bounded however many
    retailers opt in, and the largest stores cannot dominate the pooled model either."""
    train = max(MIN_POOLED_TRAIN_CARTS, POOLED_TRAIN_ROWS // (3 * max(n_members, 1)))
    return {"train": train, "valid": max(10, train // 3),
            "test": max(MIN_POOLED_TEST_CARTS, train // 3)}  # fmt: skip


# --- a run -------------------------------------------------------------------------------------


class Trainer:
    """``database_url``: where workers read events when fits run in other processes (the
    executor's); without it, everything runs in this process, on ``store``."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        progress: Callable[[Iterable[Any], int], Iterable[Any]] = lambda it, total: it,
        executor: Executor | None = None,
        database_url: str | None = None,
    ) -> None:
        self._store = store
        self._registry = ModelRegistry(store)
        self._clock = clock
        self._progress = progress
        self._executor = executor or InProcess()
        self._url = database_url
        if self._url is None and not isinstance(self._executor, InProcess):
            raise ValueError("fits in other processes read the database: pass database_url")

    def run(
        self, *, retailer_id: str | None = None, as_of: datetime | None = None
    ) -> list[Outcome]:
        """The pooled model, then each chosen retailer's (all when ``retailer_id`` is None)."""
        with tempfile.TemporaryDirectory(prefix="cartpredict-train-") as spill:
            return self._run(retailer_id, as_of or self._clock(), spill)

    def _run(self, retailer_id: str | None, as_of: datetime, spill: str) -> list[Outcome]:
        source = self._source(as_of)
        if self._executor.local:
            source = replace(source, spill=spill)
        retailers = self._store.list_retailers()
        chosen = [r for r in retailers if retailer_id in (None, r.retailer_id)]
        if retailer_id is not None and not chosen:
            raise LookupError(retailer_id)
        members = [r for r in retailers if r.pooled_learning]
        share = pooled_sample(len(members))
        with self._executor as pool:
            sample = PooledSample()
            wanted = {r.retailer_id for r in chosen}
            tasks = (ShareTask(r, source, share, r.retailer_id in wanted) for r in members)
            shares = dict(pool.map_unordered(pooled_share, tasks))
            for i in range(len(members)):  # in the members' order, whichever came back first
                sample.add(shares.pop(i))
            outcomes = [self._train_pooled(sample)]
            del sample
            pooled = self._served_pooled()
            fits = (self._task(r, source, pooled) for r in chosen)
            fitted: dict[int, Outcome] = {}
            for i, result in self._progress(pool.map_unordered(fit_retailer, fits), len(chosen)):
                fitted[i] = self._record(result)
        return outcomes + [fitted[i] for i in range(len(chosen))]

    def train_retailer(self, retailer_id: str, *, as_of: datetime | None = None) -> Outcome:
        """Only this retailer's model, shrunk toward the pooled model that serves now."""
        retailer = self._store.get_retailer(retailer_id=retailer_id)
        if retailer is None:
            raise LookupError(retailer_id)
        source = replace(self._source(as_of or self._clock()), url=None, store=self._store)
        return self._record(fit_retailer(self._task(retailer, source, self._served_pooled())))

    def _source(self, as_of: datetime) -> Source:
        if isinstance(self._executor, InProcess):
            return Source(as_of, store=self._store)
        return Source(as_of, url=self._url)

    def _served_pooled(self) -> LogisticModel | None:
        served = self._store.served_version(scope=POOLED_SCOPE)
        if served is None:
            return None
        return LogisticModel.from_dict(served.model, version=served.version_id)

    def _task(self, retailer: Retailer, source: Source, pooled: LogisticModel | None) -> FitTask:
        served = self._registry.served_model(retailer)
        return FitTask(retailer, source, served, pooled if retailer.pooled_learning else None)

    # --- pooled ------------------------------------------------------------------------------

    def _train_pooled(self, sample: PooledSample) -> Outcome:
        rows, n_train = sample.rows()
        train_y, valid_y = rows[1][:n_train], rows[1][n_train:]
        if not _enough_counts(sample.carts["train"], train_y) or not _enough_counts(
            sample.carts["valid"], valid_y, carts=1
        ):
            return Outcome(POOLED_SCOPE, "insufficient_data")
        carts = np.concatenate(sample.valid_carts)
        members: dict[str, ThresholdTable] = {}

        def tabulate(p: np.ndarray, y: np.ndarray) -> ThresholdTable:
            """The pooled table, and each member's own on the way."""
            members.update(_member_tables(sample.valid_of, p, y, carts))
            return pooled_threshold_table(p, y, carts)

        model, valid_metrics, table = _fit(sample.spec, rows, n_train, POOLED_PRECISION_TARGET,
                                           prior=None, tabulate=tabulate)  # fmt: skip
        del rows
        p_candidate, yt = sample.test_scores(model)
        report: dict[str, Any] = {
            "candidate": metrics(yt, p_candidate),
            "validation": valid_metrics,
            "n_test_carts": sample.carts["test"],
            "n_train_carts": sample.carts["train"],
            "thresholds_by_retailer": {rid: t.to_dict() for rid, t in members.items()},
        }
        served = self._store.served_version(scope=POOLED_SCOPE)
        if served is not None:
            current = LogisticModel.from_dict(served.model, version=served.version_id)
            report["served"] = metrics(yt, sample.test_scores(current)[0])
        baseline = _fitted_baseline(np.concatenate(sample.below), train_y)
        report["baseline"] = metrics(yt, sample.test_scores(baseline)[0])
        # What each member may see of this model: figures over its own test carts only.
        report["by_retailer"] = {
            retailer.retailer_id: _member_figures(model, baseline, retailer, rows)
            for retailer, rows in sample.tests
        }
        promote = _beats(
            report["candidate"]["auc_pr_purchased"],
            report["baseline"]["auc_pr_purchased"],
            strictly=True,
        ) and (served is None or _beats(
            report["candidate"]["auc_pr_purchased"],
            report["served"]["auc_pr_purchased"],
            strictly=True,
        ))  # fmt: skip
        return self._record(Fitted(
            POOLED_SCOPE, model, report, promote, n_train=n_train,
            window=sample.window or (0, 0), profile={"by_retailer": sample.profiles},
            thresholds=table,
        ))  # fmt: skip

    # --- shared ------------------------------------------------------------------------------

    def _record(self, fitted: Fitted) -> Outcome:
        if fitted.model is None:
            return Outcome(fitted.scope, "insufficient_data")
        model = fitted.model
        now = self._clock()
        report = {**fitted.report, "promoted": fitted.promote}
        self._store.add_model_version(
            version=ModelVersion(
                version_id=model.version,
                scope=fitted.scope,
                created_at=now,
                train_start=_datetime(fitted.window[0]),
                train_end=_datetime(fitted.window[1]),
                n_train=fitted.n_train,
                threshold=model.threshold,
                metrics=report,
                model=_with_table(model, fitted.thresholds),
                profile=fitted.profile,
            )
        )
        if fitted.promote:
            self._store.set_served(
                scope=fitted.scope, version_id=model.version, action="promote", at=now
            )
        status = "promoted" if fitted.promote else "kept"
        return Outcome(fitted.scope, status, model.version, report)


def _fit(
    spec: FeatureSpec,
    rows: tuple[np.ndarray, np.ndarray],
    n_train: int,
    precision_target: float,
    *,
    prior: tuple[np.ndarray, float] | None,
    tabulate: Callable[[np.ndarray, np.ndarray], ThresholdTable],
) -> tuple[LogisticModel, dict[str, Any], ThresholdTable]:
    """Fit on the first ``n_train`` rows for each penalty, choose the penalty on the rest
    (validation) and tabulate their scores (``tabulate(p_abandoned, abandoned)``), then refit
    on all rows with that penalty. The model's threshold is the table's at
    ``precision_target``; serving reads the table at the retailer's target of the moment."""
    X_all, y_all = rows
    X, y, Xv, yv = X_all[:n_train], y_all[:n_train], X_all[n_train:], y_all[n_train:]
    groups = np.array(spec.groups())
    harder = np.isin(groups, ("interaction", "shape"))
    lams = [np.where(harder, penalty * INTERACTION_FACTOR, penalty) for penalty in PENALTIES]
    toward, toward_intercept = (None, None) if prior is None else prior
    path = fit_path(X, y, lams, prior=toward, prior_intercept=toward_intercept)
    best: tuple[float, int] | None = None
    for i, fitted in enumerate(path):
        p = np.clip(sigmoid(fitted.intercept + Xv @ fitted.weights), 1e-12, 1 - 1e-12)
        loss = float(-np.mean(yv * np.log(p) + (1 - yv) * np.log(1 - p)))
        if best is None or loss < best[0]:
            best = (loss, i)
    assert best is not None
    loss, i = best
    penalty = PENALTIES[i]
    p_valid = sigmoid(path[i].intercept + Xv @ path[i].weights)
    table = tabulate(p_valid, yv)
    step, reached = table.step_for(table.target_for(precision_target))
    # The penalty chosen, refit on training and validation rows together: a small store's
    # model learns from 80 % of its carts instead of 60 %. The thresholds stay those of the
    # validation rows while they were still out of sample.
    fitted = fit_path(X_all, y_all, [lams[i]], start=path[i], prior=toward,
                      prior_intercept=toward_intercept)[0]  # fmt: skip
    model = LogisticModel(
        version=_new_version(),
        spec=spec,
        intercept=fitted.intercept,
        weights=tuple(float(w) for w in fitted.weights),
        threshold=step.threshold,
    )
    return model, {
        "log_loss": loss,
        "penalty": penalty,
        "precision_target": precision_target,
        "threshold_reaches_target": reached,
    }, table  # fmt: skip


def _member_figures(
    model: LogisticModel, baseline: BaselineRule, retailer: Retailer, rows: Snapshots
) -> dict[str, Any]:
    """The pooled model's and the baseline's held-out figures and curves over one member's
    own test carts: all that member is shown of them."""
    p_candidate, p_baseline = (score(m, rows.carts, retailer) for m in (model, baseline))
    return {
        "candidate": metrics(rows.abandoned, p_candidate),
        "baseline": metrics(rows.abandoned, p_baseline),
        "n_test_carts": rows.n_carts(),
        "curves": curves(rows, candidate=p_candidate, baseline=p_baseline),
    }


def _member_tables(
    valid_of: list[tuple[str, int]], p: np.ndarray, abandoned: np.ndarray, carts: np.ndarray
) -> dict[str, ThresholdTable]:
    """Each member's own table under the pooled model, for the members with at least
    ``MIN_THRESHOLD_CARTS`` validation carts and ``MIN_CLASS`` rows of each class in the
    sample (the rows are in the members' order, ``valid_of``)."""
    tables = {}
    start = 0
    for retailer_id, n in valid_of:
        rows = slice(start, start + n)
        start += n
        y = abandoned[rows]
        if (
            len(np.unique(carts[rows])) >= MIN_THRESHOLD_CARTS
            and min(int(y.sum()), n - int(y.sum())) >= MIN_CLASS
        ):
            tables[retailer_id] = threshold_table(p[rows], y, carts[rows])
    return tables


def _with_table(model: LogisticModel, table: ThresholdTable | None) -> dict[str, Any]:
    """The version's serialized model, with its threshold table (``models/thresholds.py``)."""
    data = model.to_dict()
    if table is not None:
        data["thresholds"] = table.to_dict()
    return data


def _prior(
    pooled: LogisticModel, retailer: Retailer, spec: FeatureSpec
) -> tuple[np.ndarray, float]:
    """The pooled model's weights for this retailer's features (zero for its own
    attributes), with this retailer's site features folded in: the constant ones into the
    intercept, the products of a cart feature and a site feature into that cart feature."""
    named = pooled.named_weights()
    site = dict(zip(SITE_FEATURES, site_features(retailer), strict=True))
    for product, cart_feature, site_feature in SITE_PRODUCTS:
        if product in named and cart_feature in named:
            named[cart_feature] += named[product] * site[site_feature]
    weights = np.array([named.get(name, 0.0) for name in spec.names()])
    intercept = pooled.intercept + sum(named.get(n, 0.0) * x for n, x in site.items())
    return weights, intercept


def _matrix(
    spec: FeatureSpec, rows: Snapshots, retailer: Retailer
) -> tuple[np.ndarray, np.ndarray]:
    return design_matrix(spec, rows.carts, retailer), rows.abandoned


def _level_counts(retailer: Retailer, train: Snapshots) -> dict[str, dict[str, int]]:
    """``features.level_counts`` over a column of values."""
    counts: dict[str, dict[str, int]] = {}
    for name, kind in retailer.attributes:
        if kind == "categorical":
            column = train.carts.attributes.get(name, np.empty(0, dtype=object))
            values = np.array([v for v in column if isinstance(v, str)], dtype=str)
            levels, n = np.unique(values, return_counts=True)
            counts[name] = {str(level): int(k) for level, k in zip(levels, n, strict=True)}
    return counts


def _baseline(train: Snapshots, retailer: Retailer) -> BaselineRule:
    return _fitted_baseline(train.carts.cart_value < retailer.baseline_threshold, train.abandoned)


def _fitted_baseline(below: np.ndarray, abandoned: np.ndarray) -> BaselineRule:
    """``BaselineRule.fit``, counted with numpy (``below``: each row's side of its retailer's
    threshold)."""
    rule = BaselineRule()
    sides = {name: [int(side.sum()), int(abandoned[side].sum())]
             for name, side in (("below", below), ("above", ~below))}  # fmt: skip
    return rule.fit_counts(below=sides["below"], above=sides["above"])


def _beats(candidate: float | None, other: float | None, *, strictly: bool) -> bool:
    if candidate is None:
        return False
    if other is None:
        return True
    return candidate > other if strictly else candidate >= other


def _enough(rows: Snapshots, *, carts: int = MIN_CARTS) -> bool:
    return _enough_counts(rows.n_carts(), rows.abandoned, carts=carts)


def _enough_counts(n_carts: int, abandoned: np.ndarray, *, carts: int = MIN_CARTS) -> bool:
    n_abandoned = int(abandoned.sum())
    fewest = min(n_abandoned, len(abandoned) - n_abandoned)
    return n_carts >= carts and fewest >= (MIN_CLASS if carts > 1 else 1)


def _window(rows: Snapshots) -> tuple[int, int]:
    return int(rows.at.min()), int(rows.at.max())


def _datetime(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def _new_version() -> str:
    return f"m-{secrets.token_hex(6)}"
