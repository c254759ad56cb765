"""The learning pipeline: isolation between tenants, training/serving parity, promotion."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cartpredict.learning.fit import fit_logistic
from cartpredict.learning.simulate import Simulation, simulate
from cartpredict.learning.snapshots import snapshots
from cartpredict.learning.training import Trainer
from cartpredict.models.features import FeatureSpec, level_counts, spec_for
from cartpredict.models.logistic import LogisticModel
from cartpredict.models.registry import ModelRegistry
from cartpredict.ops.experiments import load_simulation
from cartpredict.serving.schemas import CartIn
from cartpredict.storage import POOLED_SCOPE, Store, open_store
from cartpredict.storage.migrate import upgrade


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
