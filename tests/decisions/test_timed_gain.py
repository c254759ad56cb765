"""The request path's send-time search (pairs) is ``best_time``'s, and ``decide`` chooses as
the reasons say, over random carts, policies and consent."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from cartpredict.decisions.decide import decide
from cartpredict.decisions.gain import SEND_GRID, Timed, best_time, expected_gain, timed_gain
from cartpredict.decisions.policy import Action, RecoveryPolicy

ACTIONS = st.builds(
    Action,
    name=st.sampled_from(["a", "b", "c", "d"]),
    channel=st.sampled_from(["email", "sms", "push", "onsite"]),
    cost=st.floats(0, 2),
    discount=st.floats(0, 0.3),
    recovery_rate=st.one_of(st.none(), st.floats(0, 0.5)),
    decay_per_hour=st.one_of(st.none(), st.floats(0, 0.2)),
)
NOW = st.sampled_from([0.0, 0.5, 1.0, 2.0, 4.5, 12.0, 30.0])


def curve(a: float, b: float):  # a p0 that moves with inactivity, as a model's does
    return lambda hours: 1.0 / (1.0 + math.exp(-(a + b * math.log1p(hours))))


@given(action=ACTIONS, now=NOW, a=st.floats(-4, 4), b=st.floats(-2, 2),
       value=st.floats(0, 5000), margin=st.floats(0.05, 0.9))  # fmt: skip
def test_timed_gain_is_best_time(
    action: Action, now: float, a: float, b: float, value: float, margin: float
) -> None:
    p0_at = curve(a, b)
    when, gain = timed_gain(p0_at, value, margin, action, now)
    assert best_time(p0_at, value, margin, action, now) == Timed(when, gain)
    assert when == now or (when in SEND_GRID and when > now)
    if when == now:
        onsite = action.channel == "onsite"
        rate = action.rate * (1.0 if onsite else (1.0 - action.decay) ** now)
        direct = expected_gain(p0_at(now), value, margin, action, rate=rate)
        assert math.isclose(gain, direct, rel_tol=1e-9, abs_tol=1e-9)


@given(actions=st.lists(ACTIONS, max_size=4), now=NOW, a=st.floats(-4, 4), b=st.floats(-2, 2),
       value=st.floats(0, 5000), contactable=st.booleans(),
       group=st.sampled_from(["treatment", "control"]),
       cutoff=st.one_of(st.none(), st.floats(0, 5)))  # fmt: skip
def test_decide_takes_the_best_allowed_action_for_its_reason(
    actions: list[Action], now: float, a: float, b: float, value: float, contactable: bool,
    group: str, cutoff: float | None,
) -> None:  # fmt: skip
    policy = RecoveryPolicy(0.35, 0.1, None, tuple(actions))
    p0_at = curve(a, b)
    d = decide(p0_at=p0_at, value=value, inactivity_hours=now, policy=policy, policy_version=4,
               group=group, contactable=contactable, cutoff=cutoff)  # fmt: skip
    timed = [(x, best_time(p0_at, value, 0.35, x, now)) for x in actions]
    allowed = [(x, t) for x, t in timed if contactable or not x.needs_consent]
    barred = [(x, t) for x, t in timed if not (contactable or x.needs_consent is False)]
    best = max(allowed, key=lambda xt: xt[1].gain, default=None)  # the first among equals
    if not actions:
        reason = "no_policy"
    elif best is None or best[1].gain <= 0:
        reason = "not_contactable" if any(t.gain > 0 for _, t in barred) else "no_gain"
    elif cutoff is not None and best[1].gain < cutoff:
        reason = "budget"
    else:
        reason = "gain"
    acting = best if reason == "gain" else None
    assert d.policy_version == 4 and d.group == group
    assert d.send_after_hours == (now if acting is None else acting[1].send_after_hours)
    if group == "control":
        assert (d.action, d.reason) == ("none", "control")
        assert d.held_out == ("none" if acting is None else acting[0].name)
        assert d.expected_gain == (0.0 if acting is None else acting[1].gain)
    else:
        assert (d.action, d.held_out, d.reason) == (
            "none" if acting is None else acting[0].name, "none", reason
        )  # fmt: skip
        gain = 0.0 if best is None or reason in {"no_gain", "not_contactable"} else best[1].gain
        assert d.expected_gain == gain
