"""Does the experiment report's interval cover the truth? A run per seed, end to end.

Each run simulates ``RETAILERS`` retailers acting on their carts with control groups, and
reads the report of the largest (simulated store sizes vary by more than 10x; a small store's
days are mostly suppressed, see below): at 1 h of
inactivity, every unbought cart gets ``reminder_email`` at once when its shopper consented to
messages, ``popup_10`` otherwise, and the default policy's 10 % of carts hold the action out.
The simulation is loaded into a throwaway SQLite store through the service's own event
ingestion (exposure events included), its predictions are logged as a site would have asked,
the daily stats are rolled up once every day is final, and ``GET /retailer/{id}/experiment``'s
service answers. For each action the report shows, the truth is the simulator's expected
intent-to-treat effect (``treatments.itt_effect``) averaged over the carts the report counts
(both groups, the periods it shows): the interval should cover it in about 95 % of runs.

Where suppression binds (a period whose control group bought 1 to 9 carts is left out), it
selects periods by their outcome, and the estimate of what remains is biased; the larger the
store, the rarer that is.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from cartpredict.decisions.policy import DEFAULT_POLICY
from cartpredict.learning.simulate import Choice, SimulatedCart, Simulation, Treatment, simulate
from cartpredict.learning.treatments import (
    DECISION_HOURS,
    cart_arrays,
    is_contactable,
    itt_effect,
)
from cartpredict.models.registry import ModelRegistry
from cartpredict.monitoring.experiment import ExperimentService
from cartpredict.monitoring.rollup import rollup
from cartpredict.ops.experiments import load_simulation, log_simulated_predictions
from cartpredict.serving.cache import TenantCache
from cartpredict.serving.policies import policy_of
from cartpredict.serving.tenants import Tenants
from cartpredict.storage import NoSuchRetailer, open_store
from cartpredict.storage.migrate import upgrade

RETAILERS = 3


@dataclass(frozen=True)
class CoverageRun:
    seed: int
    retailer_id: str
    action: str
    treatment_carts: int
    control_carts: int
    estimate: float
    ci95: tuple[float, float]
    expected: float  # the simulator's expected intent-to-treat effect over the carts counted
    days: tuple[date, ...] = ()  # the days the report shows

    @property
    def covered(self) -> bool:
        return self.ci95[0] <= self.expected <= self.ci95[1]

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "retailer_id": self.retailer_id, "action": self.action,
                "treatment_carts": self.treatment_carts, "control_carts": self.control_carts,
                "estimate": self.estimate,
                "ci95": list(self.ci95), "expected": round(self.expected, 6),
                "covered": self.covered}  # fmt: skip


def _everyone(cart: SimulatedCart) -> Choice:
    if is_contactable(cart.retailer_id, cart.cart_id):
        return Choice("reminder_email", DECISION_HOURS)
    return Choice("popup_10", DECISION_HOURS)


def simulated(seed: int, *, days: int, carts_per_day: float, truth: str) -> Simulation:
    """``days`` of decisions and one more day of carts and purchases, so that every
    decision's 24 h window closes inside the simulation (purchases after its end are never
    sent, and would be missed)."""
    sim = simulate(retailers=RETAILERS, days=days + 1, carts_per_day=carts_per_day, seed=seed,
                   truth=truth, treatment=Treatment(_everyone))  # fmt: skip
    last = sim.start + timedelta(days=days)
    return replace(sim, exposures=[x for x in sim.exposures if x.at < last])


def coverage_run(
    seed: int, *, days: int = 7, carts_per_day: float = 1500.0, truth: str = "logistic"
) -> list[CoverageRun]:
    """One seed: the report's interval and the truth, per action shown, for the largest
    simulated retailer."""
    sim = simulated(seed, days=days, carts_per_day=carts_per_day, truth=truth)
    sizes = Counter(c.retailer_id for c in sim.carts)
    rid = max(sorted(sizes), key=lambda r: sizes[r])
    as_of = sim.end + timedelta(days=3)  # every day final
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'coverage.db'}"
        upgrade(url)
        store = open_store(url)
        try:
            load_simulation(sim, store, now=as_of)
            tenants = Tenants(store=store, cache=TenantCache(), registry=ModelRegistry(store))
            log_simulated_predictions(sim, tenants, store, retailer_ids=[rid], now=as_of)
            rollup(store, as_of=as_of)

            def retailer(retailer_id: str) -> Any:
                found = store.get_retailer(retailer_id=retailer_id)
                if found is None:
                    raise NoSuchRetailer(retailer_id)
                return found

            service = ExperimentService(store=store, retailer=retailer, policy=policy_of,
                                        clock=lambda: as_of)  # fmt: skip
            report = service.report(rid, days=days + 10)  # every simulated day
        finally:
            store.close()
    carts = {c.cart_id: c for c in sim.carts if c.retailer_id == rid}
    runs: list[CoverageRun] = []
    for name, shown in report["actions"].items():
        if shown["uplift"] is None:
            continue
        days_shown = {
            date.fromisoformat(p["start"]) + timedelta(days=i)
            for p in shown["periods"]
            for i in range((date.fromisoformat(p["end"]) - date.fromisoformat(p["start"])).days + 1)
        }
        counted = [x for x in sim.exposures
                   if x.retailer_id == rid and x.action == name and x.at <= sim.end
                   and x.at.astimezone(UTC).date() in days_shown]  # fmt: skip
        action = DEFAULT_POLICY.action(name)
        assert action is not None
        arrays = cart_arrays([carts[x.cart_id] for x in counted], sim.responsiveness)
        send = np.array([x.send_after_hours for x in counted])
        effect = itt_effect(arrays, action, send, decision_h=DECISION_HOURS)
        lo, hi = shown["uplift"]["ci95"]
        runs.append(
            CoverageRun(seed, rid, name, shown["treatment"]["carts"], shown["control"]["carts"],
                        shown["uplift"]["estimate"], (lo, hi), float(effect.mean()),
                        tuple(sorted(days_shown)))
        )  # fmt: skip
    return runs


def coverage(
    seeds: Iterable[int], *, days: int = 7, carts_per_day: float = 1500.0, truth: str = "logistic"
) -> list[CoverageRun]:
    return [
        run
        for seed in seeds
        for run in coverage_run(seed, days=days, carts_per_day=carts_per_day, truth=truth)
    ]
