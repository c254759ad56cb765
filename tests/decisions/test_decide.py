"""Decisions: the expected-gain rule, the send time, the reasons, the control group."""

from __future__ import annotations

import math
import secrets

import pytest

from cartpredict.decisions.decide import decide, group_of, unit_draw
from cartpredict.decisions.gain import SEND_GRID, best_time, expected_gain
from cartpredict.decisions.policy import DEFAULT_POLICY, Action, RecoveryPolicy

EMAIL = Action("reminder_email", "email", cost=0.01, discount=0.0, recovery_rate=0.10,
               decay_per_hour=0.0)  # fmt: skip
POPUP = Action("popup_10", "onsite", cost=0.0, discount=0.10, recovery_rate=0.20)


def policy(*actions: Action, margin: float = 0.35, control: float = 0.1) -> RecoveryPolicy:
    return RecoveryPolicy(margin, control, None, actions)


def flat(p0: float):  # a model whose p0 does not depend on inactivity
    return lambda hours: p0


def test_expected_gain_is_recovered_margin_less_giveaways_and_cost() -> None:
    # r (1 - p0) v (m - d) - p0 v d - c
    assert expected_gain(0.2, 100.0, 0.35, POPUP, rate=0.2) == pytest.approx(
        0.2 * 0.8 * 100 * 0.25 - 0.2 * 100 * 0.10
    )
    assert expected_gain(0.9, 100.0, 0.35, EMAIL, rate=0.1) == pytest.approx(
        0.1 * 0.1 * 100 * 0.35 - 0.01
    )


def test_a_discount_pays_only_where_shoppers_would_not_have_bought_anyway() -> None:
    rules = policy(POPUP)
    low = decide(p0_at=flat(0.05), value=80.0, inactivity_hours=1.0, policy=rules,
                 policy_version=1, group="treatment", contactable=False)  # fmt: skip
    high = decide(p0_at=flat(0.6), value=80.0, inactivity_hours=1.0, policy=rules,
                  policy_version=1, group="treatment", contactable=False)  # fmt: skip
    assert (low.action, low.reason) == ("popup_10", "gain") and low.expected_gain > 0
    assert (high.action, high.reason) == ("none", "no_gain")


def test_without_consent_only_onsite_actions() -> None:
    rules = policy(EMAIL)
    barred = decide(p0_at=flat(0.1), value=80.0, inactivity_hours=0.0, policy=rules,
                    policy_version=3, group="treatment", contactable=False)  # fmt: skip
    assert (barred.action, barred.reason) == ("none", "not_contactable")
    allowed = decide(p0_at=flat(0.1), value=80.0, inactivity_hours=0.0, policy=rules,
                     policy_version=3, group="treatment", contactable=True)  # fmt: skip
    assert (allowed.action, allowed.reason, allowed.policy_version) == ("reminder_email", "gain", 3)


def test_control_carts_hold_out_the_action_they_would_have_had() -> None:
    rules = policy(EMAIL, POPUP)
    treated = decide(p0_at=flat(0.1), value=80.0, inactivity_hours=2.0, policy=rules,
                     policy_version=1, group="treatment", contactable=True)  # fmt: skip
    held = decide(p0_at=flat(0.1), value=80.0, inactivity_hours=2.0, policy=rules,
                  policy_version=1, group="control", contactable=True)  # fmt: skip
    assert held.action == "none" and held.reason == "control"
    assert held.held_out == treated.action != "none"
    assert held.expected_gain == treated.expected_gain
    nothing = decide(p0_at=flat(0.99), value=5.0, inactivity_hours=2.0, policy=rules,
                     policy_version=1, group="control", contactable=True)  # fmt: skip
    assert (nothing.held_out, nothing.reason, nothing.expected_gain) == ("none", "control", 0.0)


def test_the_budget_cuts_actions_below_its_gain() -> None:
    rules = policy(POPUP)
    cut = decide(p0_at=flat(0.05), value=80.0, inactivity_hours=1.0, policy=rules,
                 policy_version=1, group="treatment", contactable=False, cutoff=1e6)  # fmt: skip
    assert (cut.action, cut.reason) == ("none", "budget")
    empty = decide(p0_at=flat(0.05), value=80.0, inactivity_hours=1.0, policy=policy(),
                   policy_version=1, group="treatment", contactable=True)  # fmt: skip
    assert (empty.action, empty.reason) == ("none", "no_policy")


def test_a_message_waits_when_shoppers_come_back_by_themselves_and_the_rate_holds() -> None:
    # p0 falls with inactivity: early on, many shoppers still buy unaided, and a discounted
    # message would be given to them; by 6 h the rest is mostly lost.
    def p0_at(hours: float) -> float:
        return 0.5 * math.exp(-hours / 2.0)

    coupon = Action("coupon_email", "email", cost=0.01, discount=0.15, recovery_rate=0.3,
                    decay_per_hour=0.0)  # fmt: skip
    timed = best_time(p0_at, 100.0, 0.35, coupon, now=0.0)
    assert timed.send_after_hours > 0.0 and timed.send_after_hours in SEND_GRID
    decaying = Action("coupon_email", "email", cost=0.01, discount=0.15, recovery_rate=0.3,
                      decay_per_hour=0.15)  # fmt: skip
    assert best_time(p0_at, 100.0, 0.35, decaying, now=0.0).send_after_hours < (
        timed.send_after_hours
    )
    late = best_time(p0_at, 100.0, 0.35, coupon, now=4.5)  # never earlier than now
    assert late.send_after_hours >= 4.5
    onsite = best_time(p0_at, 100.0, 0.35, POPUP, now=4.5)  # the next page view
    assert onsite.send_after_hours == 4.5


def test_groups_are_stable_secret_and_of_the_asked_share() -> None:
    salt = secrets.token_bytes(16)
    ids = [f"c-{i}" for i in range(20_000)]
    groups = [group_of(salt, cart, 0.1) for cart in ids]
    assert groups == [group_of(salt, cart, 0.1) for cart in ids]
    share = groups.count("control") / len(ids)
    assert abs(share - 0.1) < 4 * math.sqrt(0.1 * 0.9 / len(ids))
    other = [group_of(secrets.token_bytes(16), cart, 0.1) for cart in ids[:2000]]
    assert other != groups[:2000]  # another retailer's salt, another assignment
    wider = [group_of(salt, cart, 0.2) for cart in ids]
    assert all(w == "control" for g, w in zip(groups, wider, strict=True) if g == "control")
    assert 0.0 <= min(unit_draw(salt, c) for c in ids[:100]) < 1.0


def test_the_default_policy_is_the_documented_one() -> None:
    assert DEFAULT_POLICY.to_dict() == {
        "margin": 0.35, "control_share": 0.10, "max_action_share": None, "explore_share": 0.10,
        "actions": [
            {"name": "reminder_email", "channel": "email", "cost": 0.01, "discount": 0.0},
            {"name": "popup_10", "channel": "onsite", "cost": 0.0, "discount": 0.10},
        ],
    }  # fmt: skip
    assert RecoveryPolicy.from_dict(DEFAULT_POLICY.to_dict()) == DEFAULT_POLICY
    assert DEFAULT_POLICY.actions[0].rate == 0.05 and DEFAULT_POLICY.actions[1].decay == 0.0
