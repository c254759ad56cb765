"""Insights from a fresh evaluation run, and the audit of the seed's hypotheses
(``cartpredict insights`` writes them to ``docs/insights.md``).

What is measured, each time:

* the simulated evaluation (``experiments.simulated_evaluation``): the served logistic models,
  the baseline rule, the prevalence and the oracle on every retailer's held-out snapshots,
  and the decision policies' true expected profit per 1,000 carts;
* the same simulation's carts (drawn again with the same seed): the share not bought within
  24 h, and among the carts still open after an hour;
* when the files are there, real data: UCI Online Shoppers (trained Feb–Oct, scored Nov, as
  the README's example) and the REES46 head (its carts: sessions with a cart event);
* the latency of ``/predict_cart``: a ``cartpredict serve`` process on a loopback port, over a
  small simulated store's trained models, under ``loadtest.run``, with the server's CPU time
  and peak memory (``loadtest.ServerWatch``);
* what serving costs: the cost model (``cost.estimate``) on that load test's figures.

Every verdict compares a measured number with the hypothesis's bound in code
(``Hypothesis.verdict``); the insights are worded from the numbers as well.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cartpredict.learning.datasets import online_shoppers
from cartpredict.learning.evaluation import BASELINE, ORACLE, EvaluationReport, ModelMetrics
from cartpredict.learning.simulate import simulate
from cartpredict.learning.training import Trainer
from cartpredict.ops import cost, loadtest
from cartpredict.ops.experiments import load_simulation, simulated_evaluation
from cartpredict.storage import open_store
from cartpredict.storage.migrate import upgrade

HELD = "held"
NOT_HELD = "not held"
NOT_MEASURED = "not measured"
SERVED = "logistic (served)"  # the served models' name in the simulated evaluation
TRAIN_MONTHS = ("Feb", "Mar", "May", "June", "Jul", "Aug", "Sep", "Oct")
TEST_MONTHS = ("Nov",)
DECISION_MOMENT_H = 1.0
LATENCY_STORE = {"retailers": 3, "days": 7, "carts_per_day": 150.0}
NARROW = 0.05  # a margin under this share of the oracle's gain over no action is narrow


@dataclass(frozen=True)
class Hypothesis:
    """One of the seed's hypotheses, and the bound a measured number must keep to hold it:
    ``compare`` is ``<``, ``<=`` or ``>`` against ``bound``, or ``within`` [``bound``,
    ``upper``]."""

    key: str
    claim: str  # as the seed puts it
    measure: str  # what is measured against it
    compare: str
    bound: float
    upper: float | None = None

    def holds(self, value: float) -> bool:
        if self.compare == "<":
            return value < self.bound
        if self.compare == "<=":
            return value <= self.bound
        if self.compare == ">":
            return value > self.bound
        if self.compare == "within":
            assert self.upper is not None
            return self.bound <= value <= self.upper
        raise ValueError(f"unknown comparison {self.compare!r}")

    def verdict(self, measured: Sequence[float]) -> str:
        """Held when every measured number keeps to the bound; not measured without any."""
        if not measured:
            return NOT_MEASURED
        return HELD if all(self.holds(v) for v in measured) else NOT_HELD


HYPOTHESES = (
    Hypothesis("a", "Logistic regression outperforms the baseline (abandoned below $20)",
               "AUC-PR of the served logistic models ÷ the rule's, for each class", ">", 1.0),
    Hypothesis("b", "Abandonment is about 70 % of carts (Baymard)",
               "share of carts not bought within 24 h; about: within 10 points", "within",
               0.60, 0.80),
    Hypothesis("c", "p95 latency of /predict_cart < 100 ms",
               "p95 of a load test against a local server, in ms", "<", 100.0),
    Hypothesis("d", "≤ $1 per 10k predictions at a 50k requests/hour spike (serverless)",
               "the cost model's $ per 10k on Lambda + API Gateway in a 50,000-request hour",
               "<=", 1.0),
    Hypothesis("e", "Deciding per cart beats treating everyone",
               "expected profit per 1,000 carts: the product's decisions − the best uniform "
               "policy's", ">", 0.0),
)  # fmt: skip


# --- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CartRates:
    carts: int
    abandoned: float  # share not bought within 24 h of the last activity
    open_at_moment: int  # carts still unbought after DECISION_MOMENT_H
    abandoned_of_open: float  # of them, the share not bought within 24 h


@dataclass(frozen=True)
class Options:
    retailers: int = 20
    days: int = 14
    seed: int = 0
    requests: int = 2000
    concurrency: int = 16


@dataclass(frozen=True)
class Measurements:
    options: Options
    when: datetime
    evaluation: EvaluationReport
    simulated_carts: CartRates
    online_shoppers: EvaluationReport | None = None
    online_shoppers_sessions: CartRates | None = None  # sessions without a purchase
    rees46: CartRates | None = None
    latency: dict[str, Any] | None = None  # the load test's summary, with "server"
    costs: dict[str, Any] | None = None  # cost.estimate of the load test
    machine: dict[str, Any] | None = None


def measure(
    options: Options,
    *,
    real_data: Path | None,
    latency: bool,
    now: datetime,
    say: Callable[[str], None] = lambda line: None,
) -> Measurements:
    """Run everything the memo reports (see the module's docstring)."""
    o = options
    say(f"evaluating {o.retailers} simulated retailers over {o.days} days (seed {o.seed})")
    evaluation, _ = simulated_evaluation(retailers=o.retailers, days=o.days, seed=o.seed)
    sim = simulate(retailers=o.retailers, days=o.days, seed=o.seed)
    rates = cart_rates((c.at, c.purchased_at) for c in sim.carts)
    shoppers = rees = sessions = None
    found = _real_files(real_data)
    if "online_shoppers" in found:
        path = found["online_shoppers"]
        say(f"evaluating {path.name}")
        shoppers = online_shoppers.evaluate_files(path, path, train_months=TRAIN_MONTHS,
                                                  test_months=TEST_MONTHS)  # fmt: skip
        read = online_shoppers.read(path)
        sessions = CartRates(len(read), sum(not s.purchased for s in read) / len(read), 0, 0.0)
    if "rees46" in found:
        rees = rees46_carts(found["rees46"])
    summary = estimate = machine = None
    if latency:
        say(f"load test: {o.requests:,} requests at concurrency {o.concurrency}")
        machine = {"cores": os.cpu_count(), "load_before": os.getloadavg()[0]}
        summary = measure_latency(requests=o.requests, concurrency=o.concurrency, seed=o.seed,
                                  now=now)  # fmt: skip
        machine["load_after"] = os.getloadavg()[0]
        estimate = cost.estimate(
            cost.measured_from(summary, source="cartpredict insights"), cost.load_prices()
        )
    return Measurements(o, now, evaluation, rates, shoppers, sessions, rees, summary, estimate,
                        machine)  # fmt: skip


def cart_rates(
    carts: Iterable[tuple[datetime, datetime | None]], *, moment_h: float = DECISION_MOMENT_H
) -> CartRates:
    """From (last activity, purchase or None) per cart."""
    window, moment = timedelta(hours=24), timedelta(hours=moment_h)
    n = abandoned = still_open = open_abandoned = 0
    for at, bought in carts:
        n += 1
        lost = bought is None or bought > at + window
        abandoned += lost
        if bought is None or bought > at + moment:
            still_open += 1
            open_abandoned += lost
    return CartRates(n, abandoned / n if n else 0.0, still_open,
                     open_abandoned / still_open if still_open else 0.0)  # fmt: skip


def rees46_carts(path: Path) -> CartRates:
    """The REES46 head's carts: sessions with a cart event; abandoned when the session has no
    purchase (its window is under 3 hours, so "within 24 h" cannot be observed)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(io.StringIO(f.read())))
    carted = {r["user_session"] for r in rows if r["event_type"] == "cart"}
    bought = {r["user_session"] for r in rows if r["event_type"] == "purchase"}
    lost = len(carted - bought)
    return CartRates(len(carted), lost / len(carted) if carted else 0.0, 0, 0.0)


def _real_files(folder: Path | None) -> dict[str, Path]:
    if folder is None or not folder.is_dir():
        return {}
    patterns = {"online_shoppers": "online_shoppers*.csv*", "rees46": "rees46*.csv*"}
    found = {name: sorted(folder.glob(pattern)) for name, pattern in patterns.items()}
    return {name: paths[0] for name, paths in found.items() if paths}


def measure_latency(
    *, requests: int, concurrency: int, seed: int, now: datetime, timeout_s: float = 120.0
) -> dict[str, Any]:
    """A bounded load test of ``/predict_cart`` against a ``cartpredict serve`` process on a
    loopback port, over a throwaway SQLite store with a small simulated history and its
    trained models; the summary carries the server's CPU time and peak memory."""
    with tempfile.TemporaryDirectory(prefix="cartpredict-insights-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'latency.db'}"
        targets = _trained_store(url, seed=seed, now=now)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARTPREDICT_")}
        log = Path(tmp) / "server.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "cartpredict", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--no-migrate"],
                env=env | {"CARTPREDICT_DATABASE_URL": url},
                stdout=subprocess.DEVNULL, stderr=sink,
            )  # fmt: skip
            try:
                _wait_ready(port, process, log, timeout_s)
                watch = loadtest.ServerWatch(process.pid)
                result = asyncio.run(loadtest.run(
                    f"http://127.0.0.1:{port}/predict_cart", targets, requests=requests,
                    concurrency=concurrency, max_seconds=timeout_s, seed=seed,
                ))  # fmt: skip
                summary = result.summary()
                summary["server"] = watch.summary(result)
            finally:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    if summary["errors"]:
        raise RuntimeError(f"the load test had {summary['errors']} errors: {summary['statuses']}")
    return summary


def _trained_store(url: str, *, seed: int, now: datetime) -> list[loadtest.Target]:
    """A small simulated history, its trained models, and a key per retailer."""
    from cartpredict.core.settings import Settings
    from cartpredict.serving.container import build_services

    upgrade(url)
    days = int(LATENCY_STORE["days"])
    sim = simulate(retailers=int(LATENCY_STORE["retailers"]), days=days, seed=seed,
                   carts_per_day=LATENCY_STORE["carts_per_day"],
                   start=now - timedelta(days=days))  # fmt: skip
    store = open_store(url)
    try:
        load_simulation(sim, store, now=now)
        Trainer(store, clock=lambda: now).run(as_of=now)
    finally:
        store.close()
    svc = build_services(Settings(database_url=url), lambda: now)
    try:
        retailers = svc.store.list_retailers()
        keys = [svc.keys.replace_all(r.retailer_id).secret for r in retailers]
        return [
            loadtest.Target(r.retailer_id, key, r.shipping_speeds)
            for r, key in zip(retailers, keys, strict=True)
        ]
    finally:
        svc.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server stopped ({process.returncode}): "
                               f"{log.read_text(errors='replace')[-2000:]}")  # fmt: skip
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server was not ready after {timeout_s:g} s")


# --- the audit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditRow:
    hypothesis: Hypothesis
    measured: tuple[float, ...]  # what the verdict compares with the bound
    figures: str  # the numbers, in words
    reproduce: str
    verdict: str


def audit(m: Measurements) -> list[AuditRow]:
    """One row per hypothesis, each verdict from its measured numbers."""
    o = m.options
    evaluate = f"`cartpredict evaluate --retailers {o.retailers} --days {o.days} --seed {o.seed}`"
    rows: dict[str, tuple[tuple[float, ...], str, str]] = {}
    served, baseline = _model(m.evaluation, SERVED), _model(m.evaluation, BASELINE)
    ratios = (_ratio(served.auc_pr_purchased, baseline.auc_pr_purchased),
              _ratio(served.auc_pr_abandoned, baseline.auc_pr_abandoned))  # fmt: skip
    rows["a"] = (
        tuple(r for r in ratios if r is not None),
        f"AUC-PR purchased {_f3(served.auc_pr_purchased)} vs {_f3(baseline.auc_pr_purchased)} "
        f"({_times(ratios[0])}); abandoned {_f3(served.auc_pr_abandoned)} vs "
        f"{_f3(baseline.auc_pr_abandoned)} ({_times(ratios[1])}); "
        f"{m.evaluation.n_test:,} held-out snapshots, {o.retailers} simulated stores",
        evaluate,
    )
    rates = [("simulated carts", m.simulated_carts)]
    if m.online_shoppers_sessions is not None:
        rates.append(("UCI Online Shoppers sessions", m.online_shoppers_sessions))
    if m.rees46 is not None:
        rates.append(("REES46 carts (same session, under 3 h observed)", m.rees46))
    rows["b"] = (
        tuple(r.abandoned for _, r in rates),
        "; ".join(f"{label} {r.abandoned:.1%} (n = {r.carts:,})" for label, r in rates),
        "`cartpredict insights --skip-latency` (the simulated carts' truth and the real files)",
    )
    rows["c"] = _latency_row(m)
    rows["d"] = _cost_row(m)
    section = m.evaluation.decisions
    if section is not None:
        product = section.policy("product")
        uniform = max((p for p in section.policies if p.name.startswith("uniform:")),
                      key=lambda p: p.profit_per_1000)  # fmt: skip
        assert product is not None
        difference = product.profit_per_1000 - uniform.profit_per_1000
        rows["e"] = (
            (difference,),
            f"product ${product.profit_per_1000:,.1f} vs best uniform ({uniform.name}) "
            f"${uniform.profit_per_1000:,.1f} per 1,000 carts: {difference:+,.1f} "
            f"({difference / abs(uniform.profit_per_1000 or 1.0):+.1%}), over "
            f"{section.n_carts:,} simulated carts unbought after {section.decision_hours:g} h",
            evaluate,
        )
    else:
        rows["e"] = ((), "no decisions section in the evaluation", evaluate)
    return [AuditRow(h, *rows[h.key], h.verdict(rows[h.key][0])) for h in HYPOTHESES]


def _latency_row(m: Measurements) -> tuple[tuple[float, ...], str, str]:
    o = m.options
    command = ("`cartpredict insights`, or `cartpredict serve` and `cartpredict loadtest "
               f"--requests {o.requests} --concurrency {o.concurrency}`")  # fmt: skip
    s = m.latency
    if s is None:
        return (), "not measured in this run (--skip-latency)", command
    return (
        (float(s["p95_ms"]),),
        f"p95 {s['p95_ms']:.2f} ms (p50 {s['p50_ms']:.2f}, p99 {s['p99_ms']:.2f}); "
        f"{s['requests']:,} requests at concurrency {m.options.concurrency}, "
        f"{s['req_per_s']:,.0f} req/s{_machine(m)}",
        command,
    )


def _cost_row(m: Measurements) -> tuple[tuple[float, ...], str, str]:
    command = "`cartpredict cost LOADTEST.json` (a `loadtest --json --server-pid PID` result)"
    spike = _spike(m)
    if spike is None or m.latency is None or m.costs is None:
        return (), "not measured in this run (no load test)", command
    lam, box, server = spike["lambda"], spike["container"], m.latency["server"]
    return (
        (float(lam["per_10k"]),),
        f"${lam['per_10k']:.4f} per 10k on Lambda (container ${box['per_10k']:.4f}); from "
        f"{server['cpu_ms_per_request']:.3f} ms of server CPU per prediction and "
        f"{server['peak_rss_mb']:.0f} MB peak; prices as of {m.costs['prices_as_of']}",
        command,
    )


def _spike(m: Measurements) -> dict[str, Any] | None:
    if m.costs is None:
        return None
    spike: dict[str, Any] = next(
        s
        for s in m.costs["scenarios"]
        if s["requests"] == cost.SPIKE_PER_HOUR and s["hours"] == 1.0
    )
    return spike


def _machine(m: Measurements) -> str:
    if not m.machine:
        return ""
    load = f"{m.machine['load_before']:.1f} before, {m.machine['load_after']:.1f} after"
    return f"; {m.machine['cores']} cores shared with other work (load average {load})"


# --- the insights ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Insight:
    title: str
    text: str


def insights(m: Measurements) -> list[Insight]:
    """Three insights, worded from the measured numbers: the first three that this run's
    measurements support."""
    found = [_model_edge(m), _decisions(m), _serving(m), _decision_moment(m), _real(m)]
    return [i for i in found if i is not None][:3]


def _model_edge(m: Measurements) -> Insight:
    e = m.evaluation
    served, baseline = _model(e, SERVED), _model(e, BASELINE)
    oracle = e.model(ORACLE)
    p_ratio = _ratio(served.auc_pr_purchased, baseline.auc_pr_purchased)
    a_ratio = _ratio(served.auc_pr_abandoned, baseline.auc_pr_abandoned)
    beats = p_ratio is not None and p_ratio > 1.0
    knowable = ""
    if oracle is not None and oracle.auc_pr_purchased:
        share = (served.auc_pr_purchased or 0.0) / oracle.auc_pr_purchased
        knowable = (f" The oracle (the simulator's true probabilities) reaches "
                    f"{_f3(oracle.auc_pr_purchased)}: the models get {share:.0%} of what is "
                    "knowable from these carts.")  # fmt: skip
    return Insight(
        "The model's edge shows on the carts that will be bought"
        if beats else "The model does not beat the rule on the carts that will be bought",
        f"On {e.n_test:,} held-out snapshots of {m.options.retailers} simulated stores, the "
        f"served logistic models reach an AUC-PR of {_f3(served.auc_pr_purchased)} for "
        f"*purchased* against {_f3(baseline.auc_pr_purchased)} for the < $20 rule "
        f"({_times(p_ratio)}) and {_f3(e.prevalence.auc_pr_purchased)} for a constant guess."
        f"{knowable} For *abandoned*, the seed's chosen class, the same models score "
        f"{_f3(served.auc_pr_abandoned)} against {_f3(baseline.auc_pr_abandoned)} "
        f"({_times(a_ratio)}): with {_pct(e.prevalence_abandoned)} of snapshots abandoned, "
        "any model looks good on that class, so compare and monitor models on *purchased*.",
    )  # fmt: skip


def _decisions(m: Measurements) -> Insight | None:
    section = m.evaluation.decisions
    if section is None:
        return None
    by = {p.name: p for p in section.policies}
    product, none, oracle = by["product"], by["no_action"], by.get("oracle")
    uniform = sorted((p for p in section.policies if p.name.startswith("uniform:")),
                     key=lambda p: -p.profit_per_1000)  # fmt: skip
    best = uniform[0]
    margin = product.profit_per_1000 - best.profit_per_1000
    reachable = (oracle.profit_per_1000 if oracle else product.profit_per_1000) - (
        none.profit_per_1000
    )
    text = (
        f"Per 1,000 carts still unbought after {section.decision_hours:g} h "
        f"({section.n_carts:,} simulated carts, {section.contactable_share:.0%} contactable), "
        f"the product's decisions earn ${product.profit_per_1000:,.0f} of expected profit, "
        f"against ${best.profit_per_1000:,.0f} for the best uniform policy ({best.name}) and "
        f"${none.profit_per_1000:,.0f} for no action."
    )
    if oracle is not None and product.gain_ratio_to_oracle is not None:
        text += (f" The oracle earns ${oracle.profit_per_1000:,.0f}: of its gain over no "
                 f"action the product takes {product.gain_ratio_to_oracle:.0%}, "
                 f"{best.name} {_pct(best.gain_ratio_to_oracle)}.")  # fmt: skip
    losers = [p for p in uniform if (p.gain_per_1000 or 0.0) < 0]
    if losers:
        worst = losers[-1]
        text += (f" What choosing avoids is the blanket offer: {worst.name} makes "
                 f"${-(worst.gain_per_1000 or 0.0):,.0f} less than doing nothing, its discount "
                 "going to shoppers who would have bought anyway.")  # fmt: skip
    if margin <= 0:
        title = "Contacting everyone earned as much as choosing, or more, in this run"
    elif reachable > 0 and margin < NARROW * reachable:
        title = "Choosing whom to contact beats the best blanket policy, but only narrowly"
    else:
        title = "Choosing whom to contact beats contacting everyone"
    return Insight(title, text)


def _serving(m: Measurements) -> Insight | None:
    spike, s = _spike(m), m.latency
    if spike is None or s is None:
        return None
    lam = spike["lambda"]
    lines = sorted(lam["lines"], key=lambda line: -line["dollars"])
    top = lines[0]
    compute = sum(line["dollars"] for line in lam["lines"] if line["item"].startswith("Lambda "))
    total = lam["total"] or 1.0
    return Insight(
        f"A prediction costs little, and most of it is {top['item']}",
        f"{s['requests']:,} requests at concurrency {m.options.concurrency} on this machine "
        f"gave p50 {s['p50_ms']:.2f} ms and p95 {s['p95_ms']:.2f} ms, with "
        f"{s['server']['cpu_ms_per_request']:.3f} ms of server CPU per prediction. Priced "
        f"with the cost model, a 50,000-request hour comes to ${lam['per_10k']:.4f} per 10k "
        f"predictions on Lambda ({1.0 / max(lam['per_10k'], 1e-9):,.0f}× under the seed's "
        f"$1): {top['item']} is {top['dollars'] / total:.0%} of it, Lambda's own requests "
        f"and compute {compute / total:.0%}. What would move the bill is the gateway and the "
        "store, not the model.",
    )  # fmt: skip


def _decision_moment(m: Measurements) -> Insight:
    r = m.simulated_carts
    return Insight(
        "The carts a reminder can reach are harder than the headline rate",
        f"{r.abandoned:.1%} of the {r.carts:,} simulated carts are not bought within 24 h, "
        f"but of the {r.open_at_moment:,} still open after {DECISION_MOMENT_H:g} h of "
        f"inactivity, {r.abandoned_of_open:.1%} are not: by the time an action can go out, "
        "the easy purchases have happened.",
    )


def _real(m: Measurements) -> Insight | None:
    e = m.online_shoppers
    if e is None:
        return None
    model = e.models[0]
    weights = e.weights.get(model.name) or {}
    top = max(weights, key=lambda f: abs(weights[f] or 0.0), default="-")
    return Insight(
        "On real sessions the same pipeline learns from the store's own attributes",
        f"On the UCI Online Shoppers sessions (trained Feb–Oct, scored on {e.n_test:,} Nov "
        f"sessions) the pipeline reaches AUC-PR (purchased) {_f3(model.auc_pr_purchased)} "
        f"against the prevalence {_f3(e.prevalence_purchased)}; its largest weight is "
        f"`{top}`.",
    )


# --- the memo ----------------------------------------------------------------------------------


def render(m: Measurements) -> str:
    """The markdown memo: what was run, three insights, the audit table."""
    o = m.options
    rows = audit(m)
    ran = [
        f"the simulated evaluation ({o.retailers} retailers, {o.days} days, seed {o.seed}: "
        f"{m.evaluation.n_test:,} held-out snapshots)",
    ]
    if m.online_shoppers is not None:
        ran.append("UCI Online Shoppers (trained Feb–Oct, scored Nov)")
    if m.rees46 is not None:
        ran.append(f"the REES46 head ({m.rees46.carts} carts)")
    if m.latency is not None:
        ran.append(f"a load test of {m.latency['requests']:,} requests against a local server, "
                   "priced with the cost model")  # fmt: skip
    out = [
        "# Insights and assumption audit",
        "",
        f"Written by `cartpredict insights` on {m.when:%Y-%m-%d %H:%M} UTC from a fresh run: "
        f"{'; '.join(ran)}. Every figure and verdict below comes from that run, and the "
        "verdicts compare each measured number with the hypothesis's bound in code "
        "(`src/cartpredict/ops/insights.py`); run the command again to regenerate this file.",
        "",
        "## Three insights",
        "",
    ]
    for i, insight in enumerate(insights(m), 1):
        out += [f"{i}. **{insight.title}.** {insight.text}", ""]
    out += [
        "## Assumption audit (the seed's hypotheses)",
        "",
        "| | hypothesis | measured against it | measured | verdict | reproduce |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        h = row.hypothesis
        out.append(f"| {h.key} | {h.claim} | {h.measure} ({_bound(h)}) | {row.figures} | "
                   f"**{row.verdict}** | {row.reproduce} |")  # fmt: skip
    return "\n".join(out) + "\n"


def _bound(h: Hypothesis) -> str:
    if h.compare == "within":
        assert h.upper is not None
        return f"held within {h.bound:.0%}–{h.upper:.0%}"
    return f"held when {SYMBOLS.get(h.compare, h.compare)} {h.bound:g}"


SYMBOLS = {"<=": "≤"}


def _model(report: EvaluationReport, name: str) -> ModelMetrics:
    found = report.model(name)
    if found is None:
        raise ValueError(f"the evaluation has no model {name!r}")
    return found


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}×"


def _f3(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
