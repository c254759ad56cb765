"""The learning pipeline: isolation between tenants, training/serving parity, promotion."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cartpredict.learning import training
from cartpredict.learning.columns import score
from cartpredict.learning.evaluation import CURVE_POINTS
from cartpredict.learning.fit import fit_logistic
from cartpredict.learning.simulate import Simulation, simulate
from cartpredict.learning.snapshots import snapshots, split_by_time
from cartpredict.learning.threshold_tables import (
    MAX_STEPS,
    pooled_threshold_table,
    threshold_table,
)
from cartpredict.learning.training import MIN_THRESHOLD_CARTS, Trainer
from cartpredict.models.baseline import BaselineRule
from cartpredict.models.features import FeatureSpec, level_counts, spec_for
from cartpredict.models.logistic import LogisticModel
from cartpredict.models.registry import ModelRegistry, operating_point
from cartpredict.models.thresholds import ThresholdTable
from cartpredict.ops.experiments import load_simulation
from cartpredict.serving.schemas import CartIn
from cartpredict.storage import POOLED_SCOPE, Store, open_store
from cartpredict.storage.migrate import upgrade
from tests.support.curves import bins_cover_k_carts, curve_steps_cover_k_carts


def config(retailer_id: str, *, pooled: bool, **changes: Any) -> dict[str, Any]:
    return {
        "retailer_id": retailer_id,
        "requires_account": False,
        "payment_options": ["credit_card", "paypal"],
        "shipping_speeds": ["standard", "express"],
        "pooled_learning": pooled,
        "precision_target": 0.7,
        **changes,
    }


class Lab:
    """Fresh SQLite stores under one temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.stores: list[Store] = []

    def store(self) -> Store:
        url = f"sqlite:///{self.root / f'lab{len(self.stores)}.db'}"
        upgrade(url)
        store = open_store(url)
        self.stores.append(store)
        return store

    def trained(self, sim: Simulation) -> tuple[Store, Trainer]:
        store = self.store()
        as_of = sim.end + timedelta(days=1)
        load_simulation(sim, store, now=as_of)
        trainer = Trainer(store, clock=lambda: as_of)
        trainer.run(as_of=as_of)
        return store, trainer


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = Lab(tmp_path)
    yield made
    for store in made.stores:
        store.close()


def latest(store: Store, scope: str) -> dict[str, Any]:
    """The newest model trained for the scope, without its (random) version id."""
    version = store.model_versions(scope=scope)[0]
    return {k: v for k, v in version.model.items()}


def sim(*configs: dict[str, Any], seed: int = 11) -> Simulation:
    return simulate(retailers=len(configs), days=14, seed=seed, carts_per_day=150, configs=configs)


def test_a_retailers_model_is_the_same_whatever_another_retailer_sends(lab: Lab) -> None:
    alpha = config("alpha", pooled=False)
    runs = [
        sim(alpha, config("beta", pooled=True)),
        sim(alpha, config("beta", pooled=True, requires_account=True), seed=11),
        sim(alpha),
    ]
    # beta altered: same seed, other config, so other carts; absent: alpha alone
    beta_events = [[e for e in run.events() if e["retailer_id"] == "beta"] for run in runs[:2]]
    assert beta_events[0] != beta_events[1]
    models = [latest(lab.trained(run)[0], "alpha") for run in runs]
    assert models[0] == models[1] == models[2]


def test_with_both_opted_in_the_other_reaches_a_model_only_through_the_pooled_prior(
    lab: Lab,
) -> None:
    alpha = config("alpha", pooled=True)
    first, _ = lab.trained(sim(alpha, config("beta", pooled=True)))
    altered, _ = lab.trained(sim(alpha, config("beta", pooled=True, requires_account=True)))
    assert latest(first, "alpha") != latest(altered, "alpha")  # beta moved the prior

    # Alpha's own events plus the pooled model's weights, and nothing of beta, rebuild it.
    alone = lab.store()
    run = sim(alpha)
    as_of = run.end + timedelta(days=1)
    load_simulation(run, alone, now=as_of)
    pooled = first.served_version(scope=POOLED_SCOPE)
    assert pooled is not None
    alone.add_model_version(version=pooled)
    alone.set_served(scope=POOLED_SCOPE, version_id=pooled.version_id, action="promote", at=as_of)
    Trainer(alone, clock=lambda: as_of).train_retailer("alpha", as_of=as_of)
    assert latest(alone, "alpha") == latest(first, "alpha")


def test_training_and_serving_build_the_same_vector_for_the_same_cart(lab: Lab) -> None:
    store, _ = lab.trained(sim(config("alpha", pooled=True), config("beta", pooled=True)))
    retailer = store.get_retailer(retailer_id="alpha")
    assert retailer is not None
    row = snapshots(store.events(retailer_id="alpha"), as_of=run_end(store))[7]
    request = CartIn(
        retailer_id="alpha",
        cart_value=row.cart_value,
        item_count=row.item_count,
        inactivity_hours=row.inactivity_hours,
        device_type=row.device_type,
        shipping_speed=row.shipping_speed,
        attributes=dict(row.attributes),
    )
    own = spec_for(retailer, level_counts=level_counts(retailer, [row]))
    for spec in (own, FeatureSpec(cart=True, site=True)):
        assert spec.row(row, retailer) == spec.row(request, retailer)
    served = ModelRegistry(store).served_model(retailer)
    assert isinstance(served, LogisticModel)
    assert served.p_abandoned(row, retailer) == served.p_abandoned(request, retailer)
    contributions = served.contributions(request, retailer)
    logit = sum(contributions.values())
    assert 1 / (1 + np.exp(-logit)) == pytest.approx(served.p_abandoned(request, retailer))


def run_end(store: Store) -> Any:
    return max(
        e.at for r in store.list_retailers() for e in store.events(retailer_id=r.retailer_id)
    ) + timedelta(days=2)


def test_a_retrained_model_that_only_ties_is_not_promoted_and_rollback_restores(
    lab: Lab,
) -> None:
    run = sim(config("alpha", pooled=False))
    store, trainer = lab.trained(run)
    first = store.served_version(scope="alpha")
    assert first is not None and first.metrics["promoted"] is True
    as_of = run.end + timedelta(days=1)
    again = trainer.train_retailer("alpha", as_of=as_of)  # same data: a tie does not beat it
    assert again.status == "kept"
    assert store.served_version(scope="alpha").version_id == first.version_id  # type: ignore[union-attr]
    # promote the kept candidate by hand, then roll back to the first
    assert again.version_id is not None
    store.set_served(scope="alpha", version_id=again.version_id, action="promote", at=as_of)
    registry = ModelRegistry(store)
    assert registry.rollback("alpha", at=as_of) == first.version_id
    assert store.served_version(scope="alpha").version_id == first.version_id  # type: ignore[union-attr]
    with pytest.raises(LookupError):
        registry.rollback("alpha", at=as_of)


def test_too_little_data_falls_back_to_pooled_then_baseline(lab: Lab) -> None:
    full = sim(config("big", pooled=True), config("small_in", pooled=True),
               config("small_out", pooled=False))  # fmt: skip
    counts: dict[str, int] = {}
    carts = []
    for cart in full.carts:  # the small retailers keep 20 carts each
        counts[cart.retailer_id] = counts.get(cart.retailer_id, 0) + 1
        if cart.retailer_id == "big" or counts[cart.retailer_id] <= 20:
            carts.append(cart)
    thin = Simulation(full.retailers, carts, full.start, full.end, full.effects)
    store, _ = lab.trained(thin)
    statuses = {v.scope: v for v in store.model_versions(scope="small_in")}
    assert statuses == {}  # no per-retailer model was even recorded
    registry = ModelRegistry(store)
    pooled = store.served_version(scope=POOLED_SCOPE)
    assert pooled is not None
    small_in = store.get_retailer(retailer_id="small_in")
    small_out = store.get_retailer(retailer_id="small_out")
    assert small_in is not None and small_out is not None
    assert registry.served_model(small_in).version == pooled.version_id
    assert registry.served_model(small_out).version == "baseline"


def test_the_trainer_matches_an_independent_fit() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4)) * [1, 3, 0.2, 1] + [0, 5, 1, -2]
    y = (rng.random(3000) < 1 / (1 + np.exp(-(X - X.mean(0)) @ [1.0, -0.3, 2.0, 0.0]))).astype(
        float
    )
    ours = fit_logistic(X, y, penalty=1e-8)
    theirs = LogisticRegression(C=1e8, max_iter=10_000, tol=1e-10).fit(X, y)
    assert ours.converged
    assert ours.intercept == pytest.approx(theirs.intercept_[0], abs=1e-3)
    assert ours.weights == pytest.approx(theirs.coef_[0], abs=1e-3)


def test_new_attributes_retire_the_retailers_own_model(lab: Lab) -> None:
    from cartpredict.core.settings import Settings
    from cartpredict.serving.container import build_services

    run = sim(config("alpha", pooled=False))
    store, _ = lab.trained(run)
    assert store.served_version(scope="alpha") is not None
    url = str(store.url)  # type: ignore[attr-defined]
    svc = build_services(Settings(database_url=url), lambda: run.end + timedelta(days=1))
    try:
        svc.retailers.update("alpha", {"precision_target": 0.8})  # not attributes: kept
        assert store.served_version(scope="alpha") is not None
        svc.retailers.update("alpha", {"attributes": [("coupon", "categorical")]})
        assert store.served_version(scope="alpha") is None
        assert svc.models.info("alpha")["kind"] == "baseline"
        assert store.promotions(scope="alpha")[0].action == "retire"
    finally:
        svc.close()


def test_every_version_keeps_the_profile_of_its_training_carts(lab: Lab) -> None:
    """What drift compares against: one count per training row in every feature."""
    store, _ = lab.trained(sim(config("alpha", pooled=True), config("beta", pooled=True)))
    own = store.model_versions(scope="alpha")[0]
    assert {sum(counts) for counts in own.profile.values()} == {own.n_train}
    assert own.metrics["n_test_carts"] >= 10
    pooled = store.model_versions(scope=POOLED_SCOPE)[0]
    members = pooled.profile["by_retailer"]  # one per member: drift compares like with like
    assert set(members) == {"alpha", "beta"}
    assert sum(sum(m["cart_value"]) for m in members.values()) == pooled.n_train
    assert pooled.metrics["n_test_carts"] >= 10


def test_the_newton_fit_reaches_the_penalised_optimum_with_a_prior() -> None:
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    X = rng.normal(size=(800, 5)) * [1, 3, 0.2, 1, 2] + [0, 5, 1, -2, 0]
    X[:, 4] = 3.0  # a constant column: its weight stays 0
    y = rng.random(800) < 1 / (1 + np.exp(-(X - X.mean(0)) @ [1.0, -0.3, 2.0, 0.0, 0.0]))
    penalty, prior = np.array([0.05, 0.01, 0.2, 0.1, 0.1]), np.array([0.5, 0.1, -1.0, 0.3, 0.0])
    ours = fit_logistic(X, y.astype(float), penalty=penalty, prior=prior, prior_intercept=0.2)
    assert ours.converged and ours.weights[4] == 0.0
    mean, scale = X[:, :4].mean(0), X[:, :4].std(0)
    Z = (X[:, :4] - mean) / scale

    def objective(theta: np.ndarray) -> float:
        eta = theta[0] + Z @ theta[1:]
        diff = theta[1:] - prior[:4] * scale
        return float(np.mean(np.logaddexp(0, eta) - y * eta) + 0.5 * np.sum(penalty[:4] * diff**2))

    best = minimize(objective, np.zeros(5), method="BFGS", options={"gtol": 1e-12}).x
    assert ours.weights[:4] == pytest.approx(best[1:] / scale, abs=1e-6)
    assert ours.intercept == pytest.approx(best[0] - np.sum(best[1:] / scale * mean), abs=1e-6)
    warm = fit_logistic(X, y.astype(float), penalty=penalty, prior=prior, prior_intercept=0.2,
                        start=fit_logistic(X, y.astype(float), penalty=1e-4))  # fmt: skip
    assert warm.weights == pytest.approx(ours.weights, abs=1e-9)


# --- threshold tables: precision_target applied without retraining -----------------------------


def carts_called(threshold: float, p: np.ndarray, carts: np.ndarray) -> int:
    """Distinct carts with a validation row called abandoned at ``threshold``."""
    return len(np.unique(carts[p >= threshold]))


def test_a_table_holds_the_validation_rows_precision_at_each_of_its_thresholds() -> None:
    rng = np.random.default_rng(3)
    carts = np.repeat(np.arange(600), 3)  # three snapshots a cart
    p = rng.beta(5, 2, size=carts.size)
    y = rng.random(carts.size) < p
    table = threshold_table(p, y, carts)
    assert 20 <= len(table.steps) <= MAX_STEPS + 1
    assert (table.rows, table.abandoned, table.carts) == (carts.size, int(y.sum()), 600)
    assert table.steps[-1].called == carts.size  # the last step calls every row
    for step in table.steps:
        called = p >= step.threshold
        assert step.threshold == round(step.threshold, 3)  # a round number, no cart's score
        assert (step.called, step.hits) == (int(called.sum()), int(y[called].sum()))
        assert step.carts == carts_called(step.threshold, p, carts)


def test_swept_over_every_target_the_pooled_thresholds_are_at_least_10_carts_apart(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member sweeping its precision_target 0.01..0.99 gets thresholds between which lie at
    least 10 validation carts of the pool (and 10 above the highest): nothing finer."""
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def spied(p: np.ndarray, y: np.ndarray, carts: np.ndarray) -> Any:
        seen.append((p, y, carts))
        return pooled_threshold_table(p, y, carts)

    monkeypatch.setattr(training, "pooled_threshold_table", spied)
    members = [config(f"m{i}", pooled=True) for i in range(3)]
    few = simulate(retailers=3, days=14, seed=11, carts_per_day=40, configs=members)
    store, _ = lab.trained(few)  # a small pool: steps of 1 % of its rows hold only a few carts
    pooled = store.served_version(scope=POOLED_SCOPE)
    assert pooled is not None and pooled.model["thresholds"]["target_grid"] == 0.01
    ((p, y, carts),) = seen
    newcomer = replace(store.get_retailer(retailer_id="m0"), retailer_id="newcomer")  # type: ignore[arg-type]
    registry = ModelRegistry(store)
    by_target = {}
    for percent in range(1, 100):
        retailer = replace(newcomer, precision_target=percent / 100)
        by_target[percent / 100] = registry.served_model(retailer).threshold
        assert operating_point(pooled, retailer).source == "pooled_grid"
    thresholds = sorted({t for t in by_target.values() if t is not None}, reverse=True)
    assert len(thresholds) >= 5, thresholds  # the sweep moved the threshold: not vacuous
    counts = [carts_called(t, p, carts) for t in thresholds]
    assert counts[0] >= 10
    assert all(lower - higher >= 10 for higher, lower in itertools.pairwise(counts)), counts
    for target, threshold in by_target.items():  # and each keeps its promise where it can
        called = p >= threshold
        if y[called].mean() < target - 1e-9:
            assert y[called].mean() == max(
                y[p >= s.threshold].mean()
                for s in ThresholdTable.from_dict(pooled.model["thresholds"]).steps
            )


def test_a_retailers_own_model_follows_its_target_without_retraining(lab: Lab) -> None:
    run = sim(config("alpha", pooled=False))
    store, _ = lab.trained(run)
    version = store.served_version(scope="alpha")
    retailer = store.get_retailer(retailer_id="alpha")
    assert version is not None and retailer is not None
    table = ThresholdTable.from_dict(version.model["thresholds"])
    valid = training.Source(run.end + timedelta(days=1), store=store).read(retailer).valid
    assert table.target_grid is None  # its own carts: any target, as it is
    assert (table.rows, table.carts) == (len(valid), valid.n_carts())
    registry = ModelRegistry(store)
    assert registry.served_model(retailer).threshold == version.threshold  # trained at 0.7
    points = [operating_point(version, replace(retailer, precision_target=t))
              for t in (0.7, 0.9, 0.95)]  # fmt: skip
    assert [p.threshold for p in points] == [
        registry.served_model(replace(retailer, precision_target=t)).threshold
        for t in (0.7, 0.9, 0.95)
    ]
    shares = [p.share_called_abandoned for p in points]
    assert shares[0] > shares[1] > shares[2]  # type: ignore[operator]
    assert all(p.expected_precision >= t for p, t in zip(points[1:], (0.9, 0.95), strict=True))  # type: ignore[operator]


def test_a_member_with_enough_validation_carts_is_served_on_its_own_carts(lab: Lab) -> None:
    store, _ = lab.trained(sim(config("big", pooled=True), config("other", pooled=True)))
    pooled = store.served_version(scope=POOLED_SCOPE)
    assert pooled is not None
    assert set(pooled.metrics["thresholds_by_retailer"]) == {"big", "other"}
    big = store.get_retailer(retailer_id="big")
    assert big is not None
    point = operating_point(pooled, replace(big, precision_target=0.9))
    assert point.source == "own_validation" and point.validation_carts >= MIN_THRESHOLD_CARTS  # type: ignore[operator]
    # what a member sees of the pooled model's figures does not include the tables
    assert "thresholds" not in pooled.metrics["by_retailer"]["big"]


def held_out(store: Store, retailer_id: str, as_of: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """A retailer's snapshots split by time, and its test snapshots' purchases and cart ids,
    made row at a time (``learning/snapshots.py``): another path than training's columns."""
    split = split_by_time(snapshots(store.events(retailer_id=retailer_id), as_of=as_of))
    purchased = np.array([r.purchased for r in split.test])
    return split, purchased, np.array([r.cart_id for r in split.test])


def shows_k_carts_a_step(
    curves: dict[str, Any], p_purchased: np.ndarray, y: np.ndarray, carts: np.ndarray
) -> None:
    for name, positive, p in (("pr_purchased", y, p_purchased),
                              ("pr_abandoned", ~y, 1 - p_purchased)):  # fmt: skip
        curve = curves[name]
        assert curve is not None and 2 <= len(curve["precision"]) <= CURVE_POINTS
        curve_steps_cover_k_carts(curve, positive, p, carts)
    bins_cover_k_carts(curves["calibration"], p_purchased, y, carts)


def test_a_version_keeps_its_curves_and_the_rules_on_held_out_carts_in_steps_of_10(
    lab: Lab,
) -> None:
    """What the Model page draws: the precision-recall curves and calibration bins of the model
    and of the baseline rule on the retailer's own test carts, every point 10 carts or more
    from the next, as ``cartpredict report`` draws them."""
    run = sim(config("alpha", pooled=False), config("beta", pooled=True))
    store, _ = lab.trained(run)
    as_of = run.end + timedelta(days=1)
    version = store.model_versions(scope="alpha")[0]
    retailer = store.get_retailer(retailer_id="alpha")
    assert retailer is not None
    split, y, carts = held_out(store, "alpha", as_of)
    assert version.metrics["n_test_carts"] == len(set(carts.tolist())) >= 10
    model = LogisticModel.from_dict(version.model, version=version.version_id)
    rule = BaselineRule().fit([r.cart_value for r in split.train],
                              [not r.purchased for r in split.train],
                              threshold=retailer.baseline_threshold)  # fmt: skip
    kept = version.metrics["curves"]
    assert set(kept) == {"candidate", "baseline"}
    for name, scorer in (("candidate", model), ("baseline", rule)):
        p = np.array([1.0 - scorer.score(r, retailer).p_abandoned for r in split.test])
        shows_k_carts_a_step(kept[name], p, y, carts)
    assert len(kept["baseline"]["pr_purchased"]["precision"]) <= 3  # a rule of two scores

    # The pooled model's, per member, on the member's own test carts in the pooled sample.
    pooled = store.served_version(scope=POOLED_SCOPE)
    assert pooled is not None and "curves" not in pooled.metrics  # none over every member's
    beta = store.get_retailer(retailer_id="beta")
    assert beta is not None
    member = pooled.metrics["by_retailer"]["beta"]
    source = training.Source(as_of, store=store)
    share = training.pooled_share(
        training.ShareTask(beta, source, training.pooled_sample(1), spill=False)
    )
    test = share.test
    assert member["n_test_carts"] == test.n_carts() >= 10
    served = LogisticModel.from_dict(pooled.model, version=pooled.version_id)
    p = 1.0 - score(served, test.carts, beta)
    shows_k_carts_a_step(member["curves"]["candidate"], p, test.purchased,
                         test.cart_ids[test.cart])  # fmt: skip
