"""The closed loop end to end on a small pool of stores: every policy is valued on the same
carts, none beats the oracle, and deciding with the true recovery rates (the served model's
p₀) earns what the oracle earns: the product's gain formula and the simulator's truth agree."""

from __future__ import annotations

import json

import pytest

from cartpredict.ops.closed_loop import run


@pytest.fixture(scope="module")
def loop():
    return run(3, stores=2, carts_per_day=250.0)


def test_no_policy_beats_the_oracle_and_the_truth_reaches_it(loop) -> None:
    profit = loop.profit_per_1000
    assert {"no_action", "prior", "learnt", "pooled", "true_rates", "oracle"} <= set(profit)
    assert all(v <= profit["oracle"] + 1e-6 for v in profit.values())
    gain = profit["oracle"] - profit["no_action"]
    assert gain > 0
    assert profit["true_rates"] - profit["no_action"] >= 0.97 * gain
    assert loop.explored_profit_per_1000 <= profit["prior"] + 1e-6  # exploring costs


def test_the_report_names_every_store_and_curve(loop) -> None:
    assert loop.stores == 2 and 0 < loop.history_carts <= 20_000
    for action, learnt in loop.learnt.items():
        assert set(learnt["stores"]) == {"sim_01", "sim_02"}, action
        for store in learnt["stores"].values():
            assert store["reason"] in {"promoted", "pooled", "not_better", "too_few_treated",
                                       "too_few_control"}  # fmt: skip
    for curves in loop.qini.values():
        assert {"prior", "model", "oracle"} <= set(curves)
        oracle = curves["oracle"]["coefficient"]
        assert all(c["coefficient"] <= oracle + 1e-12 for c in curves.values())
        low, high = curves["oracle"]["ci95"]
        assert low <= oracle <= high
    share = loop.send_time["within_one_step"]
    assert share is None or 0.0 <= share <= 1.0
    json.dumps(loop.to_dict())  # the report is plain JSON


def test_the_html_report_shows_the_qini_curves_profit_and_send_time(loop, tmp_path) -> None:
    from cartpredict.learning.loop_report import write_loop_report

    paths = write_loop_report([loop.to_dict()], tmp_path)
    assert json.loads(paths["json"].read_text())[0]["seed"] == 3
    for image in ("qini", "profit"):
        assert paths[image].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = paths["index"].read_text()
    assert 'src="qini.png"' in page and 'src="profit.png"' in page
    for action in loop.qini:
        assert action in page
    oracle = f"{loop.profit_per_1000['oracle']:,.0f}"
    assert oracle in page  # the profit table holds the figures of the run
    assert "within one step" in page
    with pytest.raises(ValueError):
        write_loop_report([], tmp_path)
