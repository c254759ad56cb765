"""Training learns P(purchase | no action) when the retailers act on half their carts.

The same seed is simulated twice: untreated, and with every retailer acting on half its carts
(chosen by a hash of the cart id) at the decision moment, 1 h into their inactivity. Each world
is loaded into its own throwaway SQLite store and trained as the product trains, which leaves a
treated cart out from its action on. A third store holds the treated world's events without
their ``action`` events, so that its training cannot tell which carts were treated. The served
models of the three stores then score the same snapshots, the untreated world's newest (test)
carts at and after the decision moment, and their mean P(purchase) is set beside the mean
oracle probability, the truth without action.

Size: 8 retailers, 14 days, 30 carts a day on average, seed 1: 5,430 carts, of which 2,479 are
decided the action (2,242 in the treatment group, the rest held out as control); 3,391
snapshots scored.

The action must bring back enough carts for the bias it would cause to stand out from the
sampling error. The default reminder email and 10 % pop-up bring back 1–2 % of all carts, which
moves the labels by less than the sampling error of a model of a few thousand carts; so the
simulated sites' pop-up gives the whole cart value away (discount 1.0; the store checks an
action's name and group, not its terms), close to the largest true recovery the simulator
allows: 686 carts (13 % of all) are bought because of it.

Only snapshots at and after the decision moment are compared: the earlier ones (a cart's first
minutes) come before any action, so the rule keeps them whole, although their 24-hour label
window spans the action and a treated cart's label there counts what the action brought back.

Tolerance: what a model inherits from the labels it is fitted to. A retailer's model follows
the mean label of its own training and validation snapshots, which departs from their mean
oracle probability by sampling error (the snapshots of one cart are correlated: the error
is summed per cart). Over the scored snapshots that is ``SE = √(Σ w_r² Var_r)``, with ``w_r``
retailer r's share of them; a bias is tolerated up to 3 SE, and a difference of two models'
biases up to 3 √(SE₁² + SE₂²) (as if independent, which is conservative: the worlds share their
carts). Here SE ≈ 0.004 (untreated), 0.006 (treated, fewer rows), 0.005 (blind).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from cartpredict.decisions.decide import unit_draw
from cartpredict.decisions.policy import DEFAULT_POLICY, NO_ACTION
from cartpredict.learning.simulate import Choice, SimulatedCart, Simulation, Treatment, simulate
from cartpredict.learning.snapshots import snapshots, split_by_time
from cartpredict.learning.training import Source, Trainer
from cartpredict.learning.treatments import DECISION_HOURS
from cartpredict.models.registry import ModelRegistry
from cartpredict.ops.experiments import load_simulation
from cartpredict.storage import Store, open_store
from cartpredict.storage.migrate import upgrade

RETAILERS, DAYS, CARTS_PER_DAY, SEED = 8, 14, 30.0, 1
ACTION = "popup_10"
GIVEAWAY_POPUP = replace(
    DEFAULT_POLICY,
    actions=tuple(
        replace(a, discount=1.0) if a.name == ACTION else a for a in DEFAULT_POLICY.actions
    ),
)
SIGMAS = 3.0

Carts = dict[tuple[str, str], SimulatedCart]


def half_shown_the_popup(cart: SimulatedCart) -> Choice:
    """The pop-up at the decision moment for half the carts, by a hash of the cart id."""
    if unit_draw(b"half", cart.cart_id) < 0.5:
        return Choice(ACTION, DECISION_HOURS)
    return Choice(NO_ACTION, DECISION_HOURS)


@dataclass(frozen=True)
class Scored:
    """The scored snapshots: the oracle, each world's served model, each model's standard
    error; and how much the treated world was treated."""

    oracle: np.ndarray
    predicted: dict[str, np.ndarray]  # world -> P(purchase)
    standard_error: dict[str, float]  # world -> of its model's bias, from its fitted rows
    treated_share: float  # of all carts, in the treatment group
    recovered_share: float  # of all carts, bought because of the action

    def bias(self, world: str) -> float:
        """Mean predicted P(purchase) less mean oracle probability."""
        return float(self.predicted[world].mean() - self.oracle.mean())

    def tolerance(self, *worlds: str) -> float:
        """``SIGMAS`` standard errors of one world's bias, or of a difference of two."""
        return SIGMAS * float(np.sqrt(sum(self.standard_error[w] ** 2 for w in worlds)))


def trained(sim: Simulation, path: Path, as_of: datetime) -> Store:
    url = f"sqlite:///{path}"
    upgrade(url)
    store = open_store(url)
    load_simulation(sim, store, now=as_of)
    Trainer(store, clock=lambda: as_of).run(as_of=as_of)
    return store


def score(
    untreated: Simulation, stores: dict[str, Store], as_of: datetime
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
    """As ``ops.experiments._score`` scores: each retailer's snapshots (here the untreated
    world's) split by time, and the newest carts' scored by each world's served models; only
    those at and after the decision moment. The oracle, each world's P(purchase) and its
    model's standard error."""
    reference = stores["untreated"]
    carts = {(c.retailer_id, c.cart_id): c for c in untreated.carts}
    served = {
        world: {r.retailer_id: (ModelRegistry(s).served_model(r), r) for r in s.list_retailers()}
        for world, s in stores.items()
    }
    oracle: list[np.ndarray] = []
    predicted: dict[str, list[float]] = {world: [] for world in stores}
    counts: dict[str, int] = {}
    for retailer in reference.list_retailers():
        rid = retailer.retailer_id
        split = split_by_time(snapshots(reference.events(retailer_id=rid), as_of=as_of))
        test = [row for row in split.test if row.inactivity_hours >= DECISION_HOURS]
        if not test:
            continue
        levels = np.array([row.inactivity_hours for row in test])
        oracle.append(untreated.oracle_many([carts[(rid, r.cart_id)] for r in test], levels))
        counts[rid] = len(test)
        for world, models in served.items():
            model, record = models[rid]
            predicted[world] += [1.0 - model.score(row, record).p_abandoned for row in test]
    weights = {rid: n / sum(counts.values()) for rid, n in counts.items()}
    errors = {
        world: standard_error(untreated, carts, store, as_of, weights)
        for world, store in stores.items()
    }
    return np.concatenate(oracle), {w: np.array(p) for w, p in predicted.items()}, errors


def standard_error(
    sim: Simulation, carts: Carts, store: Store, as_of: datetime, weights: dict[str, float]
) -> float:
    """``√(Σ w_r² Var_r)``: ``Var_r`` the variance of the mean of label − oracle over the rows
    retailer r's model was fitted to as training reads them (training and validation, at and
    after the decision moment), the rows of one cart summed together."""
    source = Source(as_of, store=store)
    total = 0.0
    for retailer in store.list_retailers():
        weight = weights.get(retailer.retailer_id, 0.0)
        if not weight:
            continue
        parts = source.read(retailer)
        fitted = [
            part.take(np.flatnonzero(part.carts.inactivity_hours >= DECISION_HOURS))
            for part in (parts.train, parts.valid)
        ]
        ids = np.concatenate([rows.cart_ids[rows.cart] for rows in fitted])
        if not len(ids):
            continue
        levels = np.concatenate([rows.carts.inactivity_hours for rows in fitted])
        truth = sim.oracle_many([carts[(retailer.retailer_id, c)] for c in ids], levels)
        residual = np.concatenate([rows.purchased for rows in fitted]) - truth
        _, cart = np.unique(ids, return_inverse=True)
        per_cart = np.bincount(cart, weights=residual - residual.mean())
        total += weight**2 * float(np.sum(per_cart**2)) / len(ids) ** 2
    return float(np.sqrt(total))


def simulated(treatment: Treatment | None = None) -> Simulation:
    return simulate(retailers=RETAILERS, days=DAYS, carts_per_day=CARTS_PER_DAY, seed=SEED,
                    treatment=treatment)  # fmt: skip


def run(root: Path) -> Scored:
    """Simulate both worlds, train the three stores under ``root``, score."""
    untreated = simulated()
    treated = simulated(Treatment(half_shown_the_popup, policy=GIVEAWAY_POPUP))
    worlds = {"untreated": untreated, "treated": treated, "blind": replace(treated, exposures=[])}
    # Every label window closes within the data: a later as_of would label the last day's
    # carts without the purchases that fall after the simulation's end.
    as_of = untreated.end
    stores: dict[str, Store] = {}
    try:
        for world, sim in worlds.items():
            stores[world] = trained(sim, root / f"{world}.db", as_of)
        figures = score(untreated, stores, as_of)
    finally:
        for store in stores.values():
            store.close()
    in_treatment = [x for x in treated.exposures if x.group == "treatment"]
    return Scored(
        *figures,
        treated_share=len(in_treatment) / len(treated.carts),
        recovered_share=sum(x.recovered for x in in_treatment) / len(treated.carts),
    )


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Scored:
    return run(tmp_path_factory.mktemp("treated_training"))


def test_the_action_brings_back_many_carts(scored: Scored) -> None:
    assert scored.treated_share > 0.35
    assert scored.recovered_share > 0.10


def test_the_model_trained_with_treated_carts_left_out_is_unbiased(scored: Scored) -> None:
    assert abs(scored.bias("untreated")) < scored.tolerance("untreated")
    assert abs(scored.bias("treated")) < scored.tolerance("treated")
    difference = scored.bias("treated") - scored.bias("untreated")
    assert abs(difference) < scored.tolerance("treated", "untreated")


def test_a_model_that_cannot_leave_treated_carts_out_overpredicts(scored: Scored) -> None:
    assert scored.bias("blind") > scored.tolerance("blind")
    difference = scored.bias("blind") - scored.bias("untreated")
    assert difference > scored.tolerance("blind", "untreated")
