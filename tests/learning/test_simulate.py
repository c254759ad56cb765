"""The simulator: determinism, valid configs, calibration, events, and the oracle."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cartpredict.core.errors import InvalidInput
from cartpredict.decisions.decide import group_of
from cartpredict.decisions.policy import DEFAULT_POLICY
from cartpredict.learning.simulate import (
    DEVICES,
    SHIPPING_SPEEDS,
    Choice,
    SimulatedCart,
    Simulation,
    Treatment,
    draw_purchase_delays,
    oracle_probability,
    simulate,
)
from cartpredict.ops.experiments import load_simulation
from cartpredict.serving.schemas import EventsIn
from cartpredict.storage import open_store

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
RETAILER_KEYS = {
    "retailer_id",
    "requires_account",
    "payment_options",
    "shipping_speeds",
    "pooled_learning",
    "precision_target",
}
DAY = timedelta(hours=24)


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate()


@pytest.fixture(scope="module")
def events(sim: Simulation) -> list[dict]:
    return list(sim.events())


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def abandonment(carts: list[SimulatedCart]) -> float:
    """Share of carts not purchased within 24 h of their last activity (the label at 0 h)."""
    bought = sum(c.purchased_at is not None and c.purchased_at - c.at <= DAY for c in carts)
    return 1 - bought / len(carts)


def small(seed: int) -> Simulation:
    return simulate(retailers=4, days=3, carts_per_day=40, seed=seed)


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_identical_output() -> None:
    a, b = small(7), small(7)
    assert list(a.events()) == list(b.events())
    assert a.carts == b.carts
    assert a.retailers == b.retailers


def test_different_seed_gives_different_output() -> None:
    assert list(small(7).events()) != list(small(8).events())


def test_a_retailer_does_not_depend_on_how_many_are_simulated() -> None:
    few, many = simulate(retailers=2, days=2, seed=3), simulate(retailers=5, days=2, seed=3)
    assert many.retailers[:2] == few.retailers
    assert [c for c in many.carts if c.retailer_id in {"sim_01", "sim_02"}] == few.carts


def test_naive_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        simulate(retailers=1, days=1, start=datetime(2026, 1, 1))


# --- retailers and carts ---------------------------------------------------------------------


def test_defaults_cover_twenty_retailers_and_fourteen_days(sim: Simulation) -> None:
    assert len(sim.retailers) >= 20
    assert sim.end - sim.start >= timedelta(days=14)
    assert sim.start == datetime(2026, 10, 1, tzinfo=UTC)
    assert {c.retailer_id for c in sim.carts} == {r["retailer_id"] for r in sim.retailers}


def test_retailer_configs_are_valid(sim: Simulation) -> None:
    ids = [r["retailer_id"] for r in sim.retailers]
    assert ids == [f"sim_{i:02d}" for i in range(1, len(ids) + 1)]
    for r in sim.retailers:
        assert set(r) == RETAILER_KEYS
        assert isinstance(r["requires_account"], bool)
        assert isinstance(r["pooled_learning"], bool)
        assert r["precision_target"] == 0.70
        assert 1 <= len(r["payment_options"]) <= 5
        assert len(set(r["payment_options"])) == len(r["payment_options"])
        assert all(re.fullmatch(r"[a-z_]+", p) for p in r["payment_options"])
        assert 1 <= len(r["shipping_speeds"]) <= 4
        assert "standard" in r["shipping_speeds"]
        assert set(r["shipping_speeds"]) <= set(SHIPPING_SPEEDS)
        assert len(set(r["shipping_speeds"])) == len(r["shipping_speeds"])


def test_retailers_differ_in_config_size_and_effect(sim: Simulation) -> None:
    rs = sim.retailers
    assert 0.6 <= sum(r["pooled_learning"] for r in rs) / len(rs) <= 0.8
    assert len({r["requires_account"] for r in rs}) == 2
    assert len({len(r["payment_options"]) for r in rs}) >= 3
    assert len({tuple(r["shipping_speeds"]) for r in rs}) >= 3
    sizes = Counter(c.retailer_id for c in sim.carts)
    assert max(sizes.values()) > 5 * min(sizes.values())
    assert set(sim.effects) == set(sizes)
    assert np.std([e.intercept for e in sim.effects.values()]) > 0.1
    assert np.std([e.log_value_slope for e in sim.effects.values()]) > 0.1


def test_carts_are_valid(sim: Simulation) -> None:
    speeds = {r["retailer_id"]: set(r["shipping_speeds"]) for r in sim.retailers}
    for c in sim.carts:
        assert c.at.tzinfo is not None and c.at.utcoffset() == timedelta(0)
        assert sim.start <= c.at < sim.end
        assert c.cart_value >= 0 and round(c.cart_value, 2) == c.cart_value
        assert c.item_count >= 1
        assert c.device_type in DEVICES
        assert c.shipping_speed in speeds[c.retailer_id]
        assert 0 < c.p_convert < 1 and c.delay_mean_h > 0
        assert c.purchased_at is None or c.purchased_at > c.at
    ids = Counter((c.retailer_id, c.cart_id) for c in sim.carts)
    assert max(ids.values()) == 1


def test_cart_features_have_the_documented_shape(sim: Simulation) -> None:
    values = np.array([c.cart_value for c in sim.carts])
    items = np.array([c.item_count for c in sim.carts])
    assert 45 <= np.median(values) <= 75
    assert np.quantile(values, 0.9) > 3 * np.median(values)
    assert np.corrcoef(np.log(values), items)[0, 1] > 0.2
    shares = Counter(c.device_type for c in sim.carts)
    assert 0.55 <= shares["mobile"] / len(sim.carts) <= 0.65
    assert 0.30 <= shares["desktop"] / len(sim.carts) <= 0.40
    assert shares["tablet"] > 0 and shares["unknown"] > 0


# --- calibration -----------------------------------------------------------------------------


def test_overall_abandonment_is_about_seventy_percent(sim: Simulation) -> None:
    assert 0.65 <= abandonment(sim.carts) <= 0.75


def test_mobile_abandons_more_than_desktop(sim: Simulation) -> None:
    mobile = abandonment([c for c in sim.carts if c.device_type == "mobile"])
    desktop = abandonment([c for c in sim.carts if c.device_type == "desktop"])
    assert mobile > desktop + 0.08


def test_requiring_an_account_raises_abandonment(sim: Simulation) -> None:
    account = {r["retailer_id"] for r in sim.retailers if r["requires_account"]}
    required = abandonment([c for c in sim.carts if c.retailer_id in account])
    not_required = abandonment([c for c in sim.carts if c.retailer_id not in account])
    assert required > not_required + 0.02


def test_some_purchases_come_after_the_24_hour_window(sim: Simulation) -> None:
    late = [c for c in sim.carts if c.purchased_at is not None and c.purchased_at - c.at > DAY]
    assert late
    assert np.median([c.cart_value for c in late]) > 2 * np.median(
        [c.cart_value for c in sim.carts]
    )


# --- events ----------------------------------------------------------------------------------


def test_one_update_per_cart_and_purchases_only_within_the_horizon(
    sim: Simulation, events: list[dict]
) -> None:
    updates = [e for e in events if e["type"] == "cart_updated"]
    purchases = {(e["retailer_id"], e["cart_id"]): e for e in events if e["type"] == "purchased"}
    assert len(updates) == len(sim.carts)
    assert Counter((e["retailer_id"], e["cart_id"]) for e in updates).most_common(1)[0][1] == 1
    expected = {
        (c.retailer_id, c.cart_id): c
        for c in sim.carts
        if c.purchased_at is not None and c.purchased_at <= sim.end
    }
    assert set(purchases) == set(expected)
    assert any(c.purchased_at is not None and c.purchased_at > sim.end for c in sim.carts)
    for key, event in purchases.items():
        assert parse(event["at"]) == expected[key].purchased_at
        assert set(event) == {"retailer_id", "event_id", "type", "cart_id", "at"}


def test_update_events_carry_the_full_cart_state(sim: Simulation, events: list[dict]) -> None:
    by_key = {(c.retailer_id, c.cart_id): c for c in sim.carts}
    for e in events:
        if e["type"] != "cart_updated":
            continue
        cart = by_key[(e["retailer_id"], e["cart_id"])]
        assert e["event_id"] == f"e-{cart.cart_id}-u"
        assert parse(e["at"]) == cart.at
        state = (e["cart_value"], e["item_count"], e["device_type"], e["shipping_speed"])
        assert state == (cart.cart_value, cart.item_count, cart.device_type, cart.shipping_speed)


def test_event_ids_unique_per_retailer_times_ordered_and_rfc3339(events: list[dict]) -> None:
    ids = Counter((e["retailer_id"], e["event_id"]) for e in events)
    assert max(ids.values()) == 1
    assert all(RFC3339_Z.match(e["at"]) for e in events)
    times = [parse(e["at"]) for e in events]
    assert times == sorted(times)
    first_seen: dict[tuple[str, str], str] = {}
    for e in events:
        first_seen.setdefault((e["retailer_id"], e["cart_id"]), e["type"])
    assert set(first_seen.values()) == {"cart_updated"}


# --- oracle ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "inactivity"), [(15.0, 0.0), (15.0, 2.0), (400.0, 6.0)])
def test_oracle_matches_monte_carlo(sim: Simulation, value: float, inactivity: float) -> None:
    template = next(c for c in sim.carts if c.cart_value >= value)
    rng = np.random.default_rng(12345)
    delays = draw_purchase_delays(rng, np.full(400_000, template.p_convert), template.delay_mean_h)
    alive = delays > inactivity
    empirical = float(np.mean(delays[alive] <= 24.0))
    expected = sim.oracle(template, inactivity)
    stderr = math.sqrt(expected * (1 - expected) / alive.sum())
    assert abs(empirical - expected) < 4 * stderr + 1e-4


def test_oracle_matches_the_simulated_carts(sim: Simulation) -> None:
    """Across the real simulation, among carts still open at L, the oracle is calibrated."""
    for inactivity in (0.0, 3.0, 12.0):
        open_carts = [
            c
            for c in sim.carts
            if c.purchased_at is None or c.purchased_at - c.at > timedelta(hours=inactivity)
        ]
        predicted = sim.oracle_many(open_carts, np.full(len(open_carts), inactivity))
        observed = np.array(
            [c.purchased_at is not None and c.purchased_at - c.at <= DAY for c in open_carts]
        )
        stderr = math.sqrt(np.sum(predicted * (1 - predicted))) / len(open_carts)
        assert abs(observed.mean() - predicted.mean()) < 4 * stderr


def test_oracle_many_agrees_with_oracle(sim: Simulation) -> None:
    carts = sim.carts[:500]
    hours = np.linspace(0, 30, len(carts))
    many = sim.oracle_many(carts, hours)
    assert many == pytest.approx([sim.oracle(c, h) for c, h in zip(carts, hours, strict=True)])
    assert np.all(many[hours >= 24] == 0)


def test_oracle_edges() -> None:
    assert oracle_probability(0.4, 3.0, 24.0) == 0.0
    assert oracle_probability(0.4, 3.0, 0.0) == pytest.approx(0.4 * (1 - math.exp(-8)))
    with pytest.raises(ValueError):
        oracle_probability(0.4, 3.0, -1.0)


def test_cheap_carts_die_faster_than_expensive_ones(sim: Simulation) -> None:
    cheap = min(sim.carts, key=lambda c: abs(c.cart_value - 15))
    dear = min(sim.carts, key=lambda c: abs(c.cart_value - 600))
    assert dear.delay_mean_h > 3 * cheap.delay_mean_h
    ratio_cheap = sim.oracle(cheap, 6.0) / sim.oracle(cheap, 0.0)
    ratio_dear = sim.oracle(dear, 6.0) / sim.oracle(dear, 0.0)
    assert ratio_cheap < 0.1 < 0.5 < ratio_dear
    for hours in (1.0, 3.0, 6.0, 12.0):
        assert sim.oracle(cheap, hours) < sim.oracle(cheap, hours - 1.0)
        assert sim.oracle(dear, hours) < sim.oracle(dear, hours - 1.0)


# --- speed -----------------------------------------------------------------------------------


def test_default_simulation_is_fast() -> None:
    began = time.perf_counter()
    events = sum(1 for _ in simulate(seed=1).events())
    assert events > 0
    assert time.perf_counter() - began < 5.0


# --- the second truth ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def curved() -> Simulation:
    return simulate(truth="curved")


def test_the_curved_truth_keeps_the_carts_and_changes_only_who_buys(
    sim: Simulation, curved: Simulation
) -> None:
    assert [(c.cart_id, c.at, c.cart_value, c.device_type) for c in curved.carts[:500]] == [
        (c.cart_id, c.at, c.cart_value, c.device_type) for c in sim.carts[:500]
    ]
    assert [c.p_convert for c in curved.carts] != [c.p_convert for c in sim.carts]
    assert 0.65 <= abandonment(curved.carts) <= 0.75
    with pytest.raises(ValueError, match="truth"):
        simulate(truth="linear")


def test_under_the_curved_truth_value_rises_then_falls(curved: Simulation) -> None:
    def bought(low: float, high: float) -> float:
        return 1 - abandonment([c for c in curved.carts if low <= c.cart_value < high])

    cheap, middle, dear = bought(0, 15), bought(60, 150), bought(800, 1e9)
    assert middle > cheap + 0.05 and middle > dear + 0.05


def test_under_the_curved_truth_an_account_hurts_mobile_shoppers_most(curved: Simulation) -> None:
    account = {r["retailer_id"] for r in curved.retailers if r["requires_account"]}

    def cost_of_an_account(device: str) -> float:
        mine = [c for c in curved.carts if c.device_type == device]
        required = abandonment([c for c in mine if c.retailer_id in account])
        return required - abandonment([c for c in mine if c.retailer_id not in account])

    assert cost_of_an_account("mobile") > cost_of_an_account("desktop") + 0.08


# --- treatments --------------------------------------------------------------------------------

# Simulations drawn by the simulator before it had treatments: without one, it must still draw
# exactly these (events, the true parameters, the retailers).
UNTREATED = [
    ({"retailers": 4, "days": 3, "carts_per_day": 40, "seed": 7},
     "be52732a7d9e60d27291abc7b12a5b27bf1c9340ce53233aafc1e71499156382"),
    ({"retailers": 3, "days": 5, "seed": 2, "truth": "curved"},
     "5a87a0887e7f3787d6bdb6c8d8b2b85b51827b747fb9d24369acd2d2dff7bcc7"),
]  # fmt: skip
POPUP = DEFAULT_POLICY.actions[1]
EMAIL = DEFAULT_POLICY.actions[0]


def fingerprint(run: Simulation) -> str:
    digest = hashlib.sha256()
    for event in run.events():
        digest.update(json.dumps(event, sort_keys=True).encode())
    for c in run.carts:
        digest.update(repr((round(c.p_convert, 12), round(c.delay_mean_h, 12))).encode())
    digest.update(json.dumps(run.retailers, sort_keys=True).encode())
    return digest.hexdigest()


def alternate(cart: SimulatedCart) -> Choice:
    """An email at 3 h to even carts, the pop-up to the rest."""
    if int(cart.cart_id[2:]) % 2:
        return Choice(POPUP.name, 0.0)
    return Choice(EMAIL.name, 3.0)


@pytest.fixture(scope="module")
def treated() -> Simulation:
    return simulate(retailers=4, days=3, carts_per_day=40, seed=7,
                    treatment=Treatment(alternate))  # fmt: skip


@pytest.mark.parametrize(("arguments", "expected"), UNTREATED)
def test_without_a_treatment_the_simulation_is_what_it_was(arguments: dict, expected: str) -> None:
    run = simulate(**arguments)
    assert fingerprint(run) == expected
    assert run.exposures == []


def test_a_treatment_only_brings_purchases_of_treated_carts_forward(treated: Simulation) -> None:
    plain = small(7)
    assert treated.retailers == plain.retailers and treated.salts == plain.salts
    assert len(set(treated.salts.values())) == len(treated.salts)
    exposures = {(x.retailer_id, x.cart_id): x for x in treated.exposures}
    changed = 0
    for before, after in zip(plain.carts, treated.carts, strict=True):
        if before == after:
            continue
        changed += 1
        assert dataclasses.replace(after, purchased_at=before.purchased_at) == before
        exposure = exposures[(after.retailer_id, after.cart_id)]
        assert exposure.group == "treatment" and exposure.recovered
        assert before.purchased_at is None or before.purchased_at - before.at > DAY
        assert after.purchased_at is not None
        sent = after.at + timedelta(hours=exposure.send_after_hours)
        assert sent < after.purchased_at <= sent + timedelta(hours=2)
    assert changed == sum(x.recovered for x in treated.exposures) > 0


def test_every_cart_open_at_the_decision_is_exposed_in_the_group_the_service_assigns(
    treated: Simulation,
) -> None:
    open_carts = [c for c in treated.carts if c.purchased_at is None
                  or c.purchased_at - c.at > timedelta(hours=1)]  # fmt: skip
    recovered = {x.cart_id for x in treated.exposures if x.recovered}
    assert len(treated.exposures) >= len([c for c in open_carts if c.cart_id not in recovered])
    for x in treated.exposures:
        salt = treated.salts[x.retailer_id].encode()
        assert x.group == group_of(salt, x.cart_id, DEFAULT_POLICY.control_share)
        assert x.send_after_hours == (1.0 if x.action == POPUP.name else 3.0)
        assert (x.delivered is None) == (x.group == "control")
    groups = Counter(x.group for x in treated.exposures)
    assert 0.05 < groups["control"] / len(treated.exposures) < 0.15
    assert any(x.delivered is False for x in treated.exposures)  # bought before the send


def test_exposure_events_have_the_service_format_and_pass_its_schema(treated: Simulation) -> None:
    actions = [e for e in treated.events() if e["type"] == "action"]
    assert len(actions) == sum(x.at <= treated.end for x in treated.exposures) > 0
    for event in actions:
        assert {"retailer_id", "event_id", "type", "cart_id", "at", "action", "group"} <= set(event)
        assert RFC3339_Z.match(event["at"]) and event["action"] in {EMAIL.name, POPUP.name}
        assert ("delivered" in event) == (event["group"] == "treatment")
    for retailer_id in {e["retailer_id"] for e in actions}:
        mine = [{k: v for k, v in e.items() if k != "retailer_id"} for e in actions
                if e["retailer_id"] == retailer_id]  # fmt: skip
        EventsIn.model_validate({"retailer_id": retailer_id, "events": mine})


def test_the_service_stores_the_exposures_it_would_have_assigned(
    treated: Simulation, sqlite_url: str
) -> None:
    store = open_store(sqlite_url)
    try:
        stored = load_simulation(treated, store, now=treated.end + DAY)
        assert sum(stored.values()) == sum(1 for _ in treated.events())
        salts = {r.retailer_id: r.assignment_salt for r in store.list_retailers()}
        assert salts == treated.salts
    finally:
        store.close()


def test_exposures_under_another_salt_are_refused(treated: Simulation, sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    other = {r: "0" * 32 for r in treated.salts}
    try:  # onboarded earlier, under other salts
        load_simulation(dataclasses.replace(small(7), salts=other), store, now=treated.end + DAY)
        with pytest.raises(InvalidInput) as refused:
            load_simulation(treated, store, now=treated.end + DAY)
        assert "group" in json.dumps(refused.value.details)
    finally:
        store.close()
