"""Exploration: the explored share of carts, drawn independently of the group, picks every
action and send time the cart may get with the probability it logs."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cartpredict.decisions.decide import Decision, group_of
from cartpredict.decisions.exploration import (
    explore,
    exploring,
    is_explored,
    propensity,
    send_times,
)
from cartpredict.decisions.policy import Action

EMAIL = Action("reminder_email", "email", cost=0.01, discount=0.0)
POPUP = Action("popup_10", "onsite", cost=0.0, discount=0.10)
SALT = b"0123456789abcdef"


def test_the_explored_share_is_drawn_independently_of_the_group() -> None:
    ids = [f"c-{i}" for i in range(40_000)]
    explored = [is_explored(SALT, i, 0.2) for i in ids]
    control = [group_of(SALT, i, 0.1) == "control" for i in ids]
    assert sum(explored) / len(ids) == pytest.approx(0.2, abs=0.01)
    both = sum(e and c for e, c in zip(explored, control, strict=True)) / len(ids)
    assert both == pytest.approx(0.2 * 0.1, abs=0.004)
    assert not any(is_explored(SALT, i, 0.0) for i in ids[:1000])


def test_every_action_and_send_time_is_drawn_as_often_as_its_propensity_says() -> None:
    actions, now = [EMAIL, POPUP], 1.0
    drawn = Counter()
    n = 0
    for i in range(60_000):
        x = explore(SALT, f"c-{i}", actions, now, share=1.0, greedy=None)
        assert x is not None
        drawn[(x.action.name, x.send_after_hours)] += 1
        n += 1
    pairs = [(a.name, h) for a in actions for h in send_times(a, now)]
    assert set(drawn) == set(pairs)
    for pair in pairs:
        expected = propensity(actions, now, pair, 1.0, None)
        assert drawn[pair] / n == pytest.approx(expected, abs=0.01), pair


@given(share=st.floats(0.0, 1.0), now=st.sampled_from([0.0, 1.0, 2.5, 12.0, 30.0]),
       greedy=st.sampled_from([None, ("reminder_email", 1.0), ("popup_10", 1.0)]),
       time_share=st.floats(0.0, 1.0))  # fmt: skip
def test_the_propensities_of_every_choice_sum_to_one(
    share: float, now: float, greedy: tuple[str, float] | None, time_share: float
) -> None:
    actions = [EMAIL, POPUP]
    if greedy is not None:
        greedy = (greedy[0], now)
    pairs = [(a.name, h) for a in actions for h in send_times(a, now)]
    total = sum(propensity(actions, now, p, share, greedy, time_share) for p in pairs)
    if greedy is None:  # the policy would do nothing: exploration alone names an action
        assert total == pytest.approx(share)
    else:
        assert total == pytest.approx(1.0)


def test_a_cart_is_explored_the_same_way_on_every_call() -> None:
    for i, share in itertools.product(range(200), (0.1, 0.5)):
        first = explore(SALT, f"c-{i}", [EMAIL, POPUP], 0.0, share=share, greedy=None)
        assert explore(SALT, f"c-{i}", [EMAIL, POPUP], 0.0, share=share, greedy=None) == first
    assert explore(SALT, "c-1", [], 0.0, share=1.0, greedy=None) is None


def test_a_message_is_sent_at_each_time_as_often_as_its_propensity_says() -> None:
    actions, now, greedy = [EMAIL, POPUP], 1.0, ("reminder_email", 1.0)
    drawn: Counter = Counter()
    n = 60_000
    for i in range(n):
        x = explore(SALT, f"c-{i}", actions, now, share=0.1, greedy=greedy, time_share=0.3)
        drawn[greedy if x is None else (x.action.name, x.send_after_hours)] += 1
    pairs = [(a.name, h) for a in actions for h in send_times(a, now)]
    assert set(drawn) == set(pairs)
    for pair in pairs:
        expected = propensity(actions, now, pair, 0.1, greedy, 0.3)
        assert drawn[pair] / n == pytest.approx(expected, abs=0.01), pair
    # an on-site choice is never moved in time
    assert explore(SALT, "c-1", [POPUP], now, share=0.0, greedy=("popup_10", now),
                   time_share=1.0) is None  # fmt: skip


def test_a_decision_once_explored_names_the_drawn_action_and_logs_its_odds() -> None:
    actions, now, share = [EMAIL, POPUP], 0.0, 0.25
    gains = {(EMAIL.name, h): 0.1 * h - 0.2 for h in (0.0, 1.0, 2.0, 3.0, 6.0, 12.0)}
    gains[(POPUP.name, now)] = -1.0

    def gain_of(action: Action, h: float) -> float:
        return gains[(action.name, h)]

    explored = []
    for i in range(4000):
        cart_id = f"c-{i}"
        group = group_of(SALT, cart_id, 0.3)
        control = group == "control"
        greedy = Decision(1, group, "none" if control else "reminder_email",
                          "reminder_email" if control else "none", 0.0, 0.5,
                          "control" if control else "gain")  # fmt: skip
        got = exploring(greedy, SALT, cart_id, actions, now, share=share, gain_of=gain_of,
                        time_share=0.0)  # fmt: skip
        named = got.held_out if control else got.action
        assert (got.action == "none") == control and got.reason == greedy.reason
        if not got.explored:
            odds = propensity(actions, now, ("reminder_email", 0.0), share, ("reminder_email", 0.0))
            assert got == greedy._replace(propensity=odds)
            continue
        explored.append(got)
        assert got.expected_gain == gains[(named, got.send_after_hours)]
        assert got.propensity == pytest.approx(
            propensity(actions, now, (named, got.send_after_hours), share,
                       ("reminder_email", 0.0))
        )  # fmt: skip
    assert len(explored) / 4000 == pytest.approx(share, abs=0.03)
    assert {e.held_out for e in explored if e.group == "control"} == {"reminder_email", "popup_10"}
    none = Decision(1, "treatment", "none", "none", 0.0, 0.0, "no_gain")
    kept = exploring(none, SALT, "never-explored", actions, now, share=0.0, gain_of=gain_of)
    assert kept.propensity == 1.0 and not kept.explored
