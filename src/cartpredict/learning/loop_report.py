"""The closed loop's report: Qini curves, profit per policy and send time, as JSON, PNG and HTML.

Input: the closed loop's runs as plain dicts (``ops/closed_loop.LoopRun.to_dict``), one per
seed. Output, in one directory: ``loop.json`` (every figure), ``qini.png`` (per action, the
first seed's expected Qini curves of the learnt model, the prior, random targeting and the
oracle), ``profit.png`` (per policy, the share of the oracle's gain over no action, each seed a
dot and the median a bar) and ``index.html`` (the tables: per seed, the profit per 1,000
carts of every policy, the Qini coefficients with their intervals, and the send time).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import median
from typing import Any

from cartpredict.learning.plots import CSS, _e, _figure, _fmt, _save, _style, _table

CURVES = (  # name, label, colour (Okabe-Ito), line style; the learnt one drawn last, on top
    ("prior", "prior", "#E69F00", "-"),
    ("random", "random", "#999999", ":"),
    ("oracle", "oracle (true uplift)", "#009E73", "--"),
    ("model", "learnt", "#0072B2", "-."),
)
POLICY_ORDER = ("no_action", "prior", "learnt", "pooled", "true_rates", "oracle")


def write_loop_report(runs: Sequence[Mapping[str, Any]], out_dir: Path) -> dict[str, Path]:
    """Write the report of ``runs`` into ``out_dir``; returns name -> path."""
    if not runs:
        raise ValueError("no runs to report")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "loop.json"}
    paths["json"].write_text(json.dumps(list(runs), indent=1), encoding="utf-8")
    with _style():
        paths["qini"] = _save(qini_figure(runs[0]), out_dir / "qini.png")
        paths["profit"] = _save(profit_figure(runs), out_dir / "profit.png")
    paths["index"] = out_dir / "index.html"
    paths["index"].write_text(render_html(runs), encoding="utf-8")
    return paths


def qini_figure(run: Mapping[str, Any]) -> Any:
    actions = list(run["qini"])
    fig = _figure(4.6 * len(actions), 3.6)
    for ax, action in zip(fig.subplots(1, len(actions), squeeze=False)[0], actions, strict=True):
        curves = run["qini"][action]
        for name, label, colour, style in CURVES:
            if name == "random":
                model = curves["model"]
                ends = [model["shares"][0], model["shares"][-1]]
                ax.plot(ends, [0.0, model["uplift"][-1]], style, color=colour, label=label)
                continue
            q = curves[name]
            ax.plot(q["shares"], q["uplift"], style, color=colour, lw=2,
                    label=f"{label} ({q['coefficient']:+.4f})")  # fmt: skip
        ax.set_title(f"{action}, seed {run['seed']}")
        ax.set_xlabel("share of carts treated, best first")
        ax.set_ylabel("incremental purchases per cart")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8, title="Qini coefficient", title_fontsize=8)
    return fig


def profit_figure(runs: Sequence[Mapping[str, Any]]) -> Any:
    names = _policies(runs[0])
    fig = _figure(7.5, 0.45 * len(names) + 1.2)
    ax = fig.subplots()
    for row, name in enumerate(names):
        shares = [r["gain_share"][name] for r in runs if r["gain_share"].get(name) is not None]
        if not shares:
            continue
        middle = median(shares)
        ax.barh(row, middle, color="#56B4E9", alpha=0.6)
        ax.plot(shares, [row] * len(shares), "o", color="#0072B2", ms=3)
        ax.annotate(f"{middle:.3f}", (max(middle, 0.0), row), xytext=(4, 6),
                    textcoords="offset points", fontsize=8)  # fmt: skip
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.axvline(0.0, color="#444", lw=0.8)
    ax.axvline(1.0, color="#009E73", lw=0.8, ls="--")
    ax.set_xlabel("share of the oracle's gain over no action (bar: median; dots: seeds)")
    ax.grid(axis="x", alpha=0.3)
    return fig


def render_html(runs: Sequence[Mapping[str, Any]]) -> str:
    first = runs[0]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>cartpredict closed loop</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Learning who responds: the closed loop</h1>",
        f'<p class="note">{len(runs)} seed(s); {first["stores"]} simulated stores; '
        f"{first['history_carts']:,} carts of history in the largest; decisions over "
        f"{first['test_carts']:,} unbought carts of the week after (seed {first['seed']}). "
        "Profit is the simulator's true expected profit per 1,000 carts.</p>",
        "<h2>Profit by policy</h2>",
        '<img src="profit.png" alt="share of the oracle\'s gain by policy">',
        _summary(runs),
        _profit_table(runs),
        "<h2>Who responds: Qini curves</h2>",
        f'<img src="qini.png" alt="Qini curves of seed {first["seed"]}">',
        _qini_table(runs),
        "<h2>When to send</h2>",
        _send_table(runs),
        '<p class="note">All numbers: <a href="loop.json">loop.json</a>.</p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _policies(run: Mapping[str, Any]) -> list[str]:
    uniform = sorted(k for k in run["profit_per_1000"] if k.startswith("uniform:"))
    return (
        [p for p in POLICY_ORDER if p in run["profit_per_1000"]][:2]
        + uniform
        + [p for p in POLICY_ORDER[2:] if p in run["profit_per_1000"]]
    )


def _summary(runs: Sequence[Mapping[str, Any]]) -> str:
    beat_prior = sum(r["profit_per_1000"]["learnt"] > r["profit_per_1000"]["prior"] for r in runs)
    beat_uniform = sum(r["profit_per_1000"]["learnt"] > _best_uniform(r) for r in runs)
    to_oracle = [r["learnt_to_oracle"] for r in runs]
    return (
        f"<p>The learnt decisions earn a median {100 * median(to_oracle):.1f} % of the "
        f"oracle policy's profit (lowest {100 * min(to_oracle):.1f} %), more than the "
        f"prior-based decisions in {beat_prior} of {len(runs)} seeds and more than every "
        f"uniform policy (and no action) in {beat_uniform} of {len(runs)}.</p>"
    )


def _best_uniform(run: Mapping[str, Any]) -> float:
    profit = run["profit_per_1000"]
    return float(max(v for k, v in profit.items() if k.startswith("uniform:") or k == "no_action"))


def _profit_table(runs: Sequence[Mapping[str, Any]]) -> str:
    names = _policies(runs[0])
    rows = [
        [str(r["seed"])]
        + [_fmt(r["profit_per_1000"].get(n), "{:,.0f}") for n in names]
        + [_fmt(r["learnt_to_oracle"], "{:.3f}"), _fmt(r["explored_profit_per_1000"], "{:,.0f}")]
        for r in runs
    ]
    header = ["seed", *names, "learnt / oracle", "prior, exploring"]
    return _table(header, rows, [])


def _qini_table(runs: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for r in runs:
        for action, curves in r["qini"].items():
            coefficients = [_coefficient(curves[n]) for n in ("model", "prior", "oracle")]
            rows.append([str(r["seed"]), _e(action), *coefficients])
    return _table(["seed", "action", "learnt", "prior", "oracle"], rows, [])


def _coefficient(q: Mapping[str, Any]) -> str:
    ci = q.get("ci95")
    interval = "" if not ci else f" [{ci[0]:+.4f}, {ci[1]:+.4f}]"
    return f"{q['coefficient']:+.4f}{interval}"


def _send_table(runs: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for r in runs:
        s = r["send_time"]
        spread = ", ".join(f"{h} h: {n:,}" for h, n in s["true_best_spread"].items())
        rows.append([str(r["seed"]), f"{s['carts']:,}", _fmt(s["within_one_step"]), _e(spread)])
    return (
        '<p class="note">For each cart the learnt decisions send a message: is the learnt send '
        "time within one step of the send grid of the true best one?</p>"
        + _table(
            ["seed", "carts sent a message", "within one step", "true best send times"], rows, []
        )
    )
