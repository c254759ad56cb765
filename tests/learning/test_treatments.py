"""The simulator's true response to actions: it differs from the priors, its best send time
depends on the cart, its expected profit is what the simulator draws, and the oracle is best."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pytest

from cartpredict.decisions.experiment import newcombe
from cartpredict.decisions.gain import expected_gain
from cartpredict.decisions.policy import DEFAULT_POLICY, Action, RecoveryPolicy
from cartpredict.learning.simulate import (
    Choice,
    SimulatedCart,
    SimulatedExposure,
    Simulation,
    Treatment,
    simulate,
)
from cartpredict.learning.treatments import (
    CONTACTABLE_SHARE,
    DECISION_HOURS,
    NONE,
    Carts,
    cart_arrays,
    draw_responsiveness,
    expected_profit,
    is_contactable,
    itt_effect,
    no_action,
    no_action_profit,
    oracle_choices,
    policy_profit,
    rate_table,
    true_response,
    uniform_choices,
)

EMAIL, POPUP = DEFAULT_POLICY.actions
L = DECISION_HOURS
DAY = timedelta(hours=24)
MARGIN = DEFAULT_POLICY.margin


def bought_by(cart: SimulatedCart, hours: float) -> bool:
    return cart.purchased_at is not None and cart.purchased_at - cart.at <= timedelta(hours=hours)


def open_carts(sim: Simulation) -> list[SimulatedCart]:
    """The carts a site asks about: unbought at the decision moment."""
    return [c for c in sim.carts if not bought_by(c, L)]


def everyone(action: Action, hours: float = L) -> Treatment:
    return Treatment(choose=lambda cart: Choice(action.name, hours))


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(seed=3)


@pytest.fixture(scope="module")
def carts(sim: Simulation) -> Carts:
    return cart_arrays(open_carts(sim), sim.responsiveness)


@pytest.fixture(scope="module")
def plain() -> Simulation:
    """The simulation the Monte-Carlo tests treat, untreated."""
    return simulate(seed=5)


# --- the truth differs from the priors ---------------------------------------------------------


def test_true_rates_differ_from_the_priors_at_least_twofold_in_some_segments(carts: Carts) -> None:
    table = rate_table(carts, DEFAULT_POLICY, decision_h=L)
    email, popup = table["reminder_email"], table["popup_10"]
    assert email["prior"] == pytest.approx(0.05 * 0.96)  # the prior, reaching the cart at 1 h
    assert email["desktop, value 150 and over"] >= 2 * email["prior"]
    assert email["mobile, value under 150"] <= 0.75 * email["prior"]
    assert popup["mobile, value under 150"] >= 2 * popup["prior"]
    assert popup["value 150 and over"] <= 1.2 * popup["prior"]


def test_a_discount_works_better_on_cheap_single_item_mobile_carts(carts: Carts) -> None:
    popup = true_response(carts, POPUP).rate
    bare = true_response(carts, dataclasses.replace(POPUP, discount=0.0)).rate
    lift = popup - bare
    impulse = (carts.device == "mobile") & (carts.value < 150) & (carts.items == 1)
    considered = (carts.device == "desktop") & (carts.value >= 150)
    assert lift[impulse].mean() > 4 * lift[considered].mean()


def test_retailers_respond_differently_and_reproducibly(sim: Simulation) -> None:
    factors = list(sim.responsiveness.values())
    assert np.std(factors) > 0.05
    assert sim.responsiveness["sim_01"] == draw_responsiveness(3, 0)
    assert draw_responsiveness(3, 0) != draw_responsiveness(4, 0)


def test_a_fixed_share_of_carts_is_contactable(carts: Carts, sim: Simulation) -> None:
    assert abs(carts.contactable.mean() - CONTACTABLE_SHARE) < 0.02
    cart = sim.carts[0]
    assert is_contactable(cart.retailer_id, cart.cart_id) == is_contactable(
        cart.retailer_id, cart.cart_id
    )


def test_the_true_best_send_time_varies_across_carts(carts: Carts) -> None:
    reminders = RecoveryPolicy(MARGIN, 0.1, None, (EMAIL,))
    reachable = dataclasses.replace(carts, contactable=np.ones(len(carts), dtype=bool))
    chosen = oracle_choices(reachable, reminders, decision_h=L)
    sent = chosen.action == 0
    hours, counts = np.unique(chosen.send_h[sent], return_counts=True)
    shares = {float(h): round(float(k / sent.sum()), 3) for h, k in zip(hours, counts, strict=True)}
    print(f"true best send time of the reminder, hours after the last activity: {shares}")
    assert sent.mean() > 0.9
    assert sum(share >= 0.05 for share in shares.values()) >= 3
    cheap = chosen.send_h[sent & (carts.value < 30)]
    dear = chosen.send_h[sent & (carts.value >= 150)]
    assert np.median(cheap) == L and np.median(dear) >= 3.0


# --- the formulas agree with the draws ---------------------------------------------------------


def realised_profit(
    cart: SimulatedCart, exposure: SimulatedExposure | None, action: Action | None
) -> float:
    """What the cart earned: margin on a purchase in 24 h, less the discount and cost of an
    action that reached it (none on a cart bought before the send)."""
    bought = bought_by(cart, 24.0)
    if action is None or exposure is None or not exposure.delivered:
        return cart.cart_value * MARGIN if bought else 0.0
    return cart.cart_value * (MARGIN - action.discount) * bought - action.cost


@pytest.mark.parametrize(("action", "hours"), [(POPUP, L), (EMAIL, 3.0), (EMAIL, 12.0)])
def test_expected_profit_matches_the_simulators_draws(
    plain: Simulation, action: Action, hours: float
) -> None:
    treated = simulate(seed=5, treatment=everyone(action, hours))
    exposed = {x.cart_id + x.retailer_id: x for x in treated.exposures if x.group == "treatment"}
    pairs = [
        (before, after, exposed[after.cart_id + after.retailer_id])
        for before, after in zip(plain.carts, treated.carts, strict=True)
        if after.cart_id + after.retailer_id in exposed
    ]
    assert len(pairs) > 20_000
    truth = cart_arrays([before for before, _, _ in pairs], plain.responsiveness)
    expected = expected_profit(truth, action, hours, margin=MARGIN, decision_h=L)
    realised = np.array([realised_profit(after, x, action) for _, after, x in pairs])
    untreated = np.array([realised_profit(before, None, None) for before, _, _ in pairs])
    # what the carts earn with the action
    error = realised - expected
    assert abs(error.mean()) < 4 * error.std() / np.sqrt(error.size)
    # what the action adds, on the same carts and the same draws: a much sharper test
    gain = realised - untreated
    expected_gain_ = expected - no_action_profit(truth, margin=MARGIN, decision_h=L)
    error = gain - expected_gain_
    assert abs(error.mean()) < 4 * error.std() / np.sqrt(error.size)
    assert abs(expected_gain_.mean()) > 10 * error.std() / np.sqrt(error.size)  # the test has teeth


def test_a_treatment_against_control_comparison_estimates_the_intent_to_treat_effect() -> None:
    halves = RecoveryPolicy(MARGIN, 0.5, None, DEFAULT_POLICY.actions)
    treated = simulate(seed=6, treatment=Treatment(lambda c: Choice(EMAIL.name, L), halves))
    carts = {(c.retailer_id, c.cart_id): c for c in treated.carts}
    counts = {"treatment": [0, 0], "control": [0, 0]}
    for x in treated.exposures:
        cart = carts[(x.retailer_id, x.cart_id)]
        bought = cart.purchased_at is not None and x.at < cart.purchased_at <= x.at + DAY
        counts[x.group][0] += 1
        counts[x.group][1] += bought
    (n_t, k_t), (n_c, k_c) = counts["treatment"], counts["control"]
    assert min(n_t, n_c) > 15_000
    low, high = newcombe(k_t, n_t, k_c, n_c, z=3.29)  # 99.9 %
    decided = [carts[(x.retailer_id, x.cart_id)] for x in treated.exposures]
    truth = cart_arrays(decided, treated.responsiveness)  # a treatment leaves p and μ as drawn
    effect = float(itt_effect(truth, EMAIL, L, decision_h=L).mean())
    assert low < effect < high
    assert low > 0.0  # the reminder truly works, and the comparison sees it


def test_the_products_gain_formula_told_the_truth_is_the_true_gain(
    sim: Simulation, carts: Carts
) -> None:
    """For an on-site action (no timing), the product's expected gain with the oracle's p0 and
    the true rate equals the true expected profit over no action, cart by cart."""
    truth = expected_profit(carts, POPUP, L, margin=MARGIN, decision_h=L)
    gain = truth - no_action_profit(carts, margin=MARGIN, decision_h=L)
    p0 = sim.oracle_many(open_carts(sim), np.full(len(carts), L))
    rate = true_response(carts, POPUP).at(L)
    product = [
        expected_gain(p, v, MARGIN, POPUP, rate=r)
        for p, v, r in zip(p0[:2000], carts.value[:2000], rate[:2000], strict=True)
    ]
    assert gain[:2000] == pytest.approx(product, rel=1e-9, abs=1e-9)


# --- policies ------------------------------------------------------------------------------------


def test_the_oracle_beats_every_policy_on_every_cart_and_messages_only_contactable_carts(
    carts: Carts,
) -> None:
    policy = DEFAULT_POLICY
    oracle = oracle_choices(carts, policy, decision_h=L)
    best = policy_profit(carts, policy, oracle, decision_h=L)
    rivals = [no_action(carts, L), *(uniform_choices(carts, policy, i, decision_h=L)
                                     for i in range(len(policy.actions)))]  # fmt: skip
    for rival in rivals:
        assert np.all(best >= policy_profit(carts, policy, rival, decision_h=L) - 1e-9)
    emailed = oracle.action == 0
    assert emailed.any() and not np.any(emailed & ~carts.contactable)
    assert np.any(oracle.action == NONE) and np.any(oracle.action == 1)


def test_uniform_policies_message_only_contactable_carts(carts: Carts) -> None:
    email = uniform_choices(carts, DEFAULT_POLICY, 0, decision_h=L)
    popup = uniform_choices(carts, DEFAULT_POLICY, 1, decision_h=L)
    assert np.array_equal(email.action == 0, carts.contactable)
    assert np.all(popup.action == 1) and np.all(popup.send_h == L)
