"""What serving costs: $ per 10k predictions and $ per month, from measured figures and list
prices kept in a dated data file (``prices.json``, which names its sources).

Two deployments are priced:

* **Lambda**: API Gateway (HTTP API) in front of the Lambda entry point, CloudWatch Logs for
  Lambda's own lines, and a small PostgreSQL instance as the store. Lambda gives a function CPU
  in proportion to its memory (one vCPU at 1,769 MB), so a request measured at ``d`` ms on a
  whole core takes ``d x 1769 / memory`` ms below that size; billed time is rounded up to 1 ms.
  Each cold start also bills its initialisation, stretched the same way.
* **Container**: one small always-on container (more if the load needs them) behind a load
  balancer, with the same store.

Measured inputs come from ``cartpredict loadtest --json --server-pid PID`` (the server's CPU
time per request and peak memory) or from the benchmark's JSON (Lambda handler time, import
time and the server's peak memory). Every figure is printed with its arithmetic.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

LOW_PER_DAY = 100
SPIKE_PER_HOUR = 50_000
DAYS_PER_MONTH = 30
MEMORY_HEADROOM = 1.25  # configure Lambda memory this much above the measured peak
COLD_START_TARGET_S = 2.0  # default Lambda memory: enough CPU for a cold start this short
LAMBDA_INIT_LIMIT_S = 10.0  # Lambda stops an initialisation that takes longer
WARM_FOR_S = 600.0  # assumed: an idle Lambda environment is reclaimed after ~10 minutes


class CostInputError(ValueError):
    pass


@dataclass(frozen=True)
class Measured:
    duration_ms: float  # server time per prediction on a whole core
    memory_mb: float  # peak resident memory of one server process
    capacity_rps: float  # predictions per second one process sustains on a whole core
    init_ms: float | None  # import and set-up time of a fresh process (a cold start)
    source: str


@dataclass(frozen=True)
class Line:
    item: str
    dollars: float
    arithmetic: str


@dataclass(frozen=True)
class Scenario:
    name: str
    requests: int
    hours: float

    @property
    def rate_per_s(self) -> float:
        return self.requests / (self.hours * 3600)


SCENARIOS = (
    Scenario(f"{LOW_PER_DAY} req/day, one month", LOW_PER_DAY * DAYS_PER_MONTH, 730.0),
    Scenario(
        f"spike: {SPIKE_PER_HOUR:,} req in one hour (fixed costs: that hour's share)",
        SPIKE_PER_HOUR,
        1.0,
    ),
    Scenario(f"spike sustained all month ({SPIKE_PER_HOUR:,} req/h)", SPIKE_PER_HOUR * 730, 730.0),
)


def load_prices(path: Path | None = None) -> dict[str, Any]:
    if path is None:
        text = resources.files("cartpredict.ops").joinpath("prices.json").read_text()
    else:
        text = path.read_text()
    prices: dict[str, Any] = json.loads(text)
    return prices


def measured_from(data: dict[str, Any], *, source: str) -> Measured:
    """From a ``cartpredict loadtest --json`` result (with ``server``) or a benchmark report."""
    if not isinstance(data, dict):
        raise CostInputError("expected a JSON object (a loadtest result or a benchmark report)")
    if "servers" in data and "in_process" in data:
        ours = next((s for s in data["servers"] if s.get("server") == "cartpredict SQLite"), None)
        if ours is None:
            raise CostInputError("the benchmark report has no 'cartpredict SQLite' server")
        lam = data["in_process"]
        return Measured(
            duration_ms=float(lam["lambda_invoke_ms"]),
            memory_mb=float(lam.get("lambda_peak_rss_mb") or ours["peak_rss_mb_largest"]),
            capacity_rps=float(ours["wrk_c16"]["req_per_s"]),
            init_ms=float(lam["lambda_init_s"]) * 1000,
            source=f"{source} (benchmark of {data.get('when', '?')})",
        )
    server = data.get("server")
    if not server:
        raise CostInputError(
            "the file has no server figures: run `cartpredict loadtest --json --server-pid PID`"
            " (or give the benchmark's JSON)"
        )
    if not data.get("req_per_s"):
        raise CostInputError("the load test answered no requests")
    return Measured(
        duration_ms=float(server["cpu_ms_per_request"]),
        memory_mb=float(server["peak_rss_mb"]),
        capacity_rps=float(data["req_per_s"]) * 100 / max(server["cpu_percent"], 1.0),
        init_ms=None,
        source=f"{source} (loadtest, {data['requests']} requests)",
    )


def lambda_memory_mb(measured: Measured, prices: dict[str, Any]) -> int:
    """The smallest memory that holds the measured peak with headroom."""
    floor = int(prices["lambda"]["min_memory_mb"])
    return max(floor, math.ceil(measured.memory_mb * MEMORY_HEADROOM))


def default_lambda_memory_mb(measured: Measured, prices: dict[str, Any]) -> int:
    """Enough memory for the peak, and enough CPU (which Lambda scales with memory) for a cold
    start of at most ``COLD_START_TARGET_S``."""
    memory = lambda_memory_mb(measured, prices)
    if measured.init_ms is not None:
        needed = prices["lambda"]["mb_per_vcpu"] * measured.init_ms / 1000 / COLD_START_TARGET_S
        memory = max(memory, min(prices["lambda"]["mb_per_vcpu"], math.ceil(needed)))
    return memory


def lambda_costs(
    m: Measured, s: Scenario, prices: dict[str, Any], *, memory_mb: int | None = None
) -> list[Line]:
    lam, api, logs = prices["lambda"], prices["api_gateway_http"], prices["cloudwatch_logs"]
    memory = memory_mb or default_lambda_memory_mb(m, prices)
    if memory < lambda_memory_mb(m, prices):
        raise CostInputError(
            f"{memory} MB of Lambda memory is below the measured peak ({m.memory_mb:.0f} MB) "
            f"with {MEMORY_HEADROOM}× headroom"
        )
    stretch = max(1.0, lam["mb_per_vcpu"] / memory)
    step = lam["billing_granularity_ms"]
    billed_ms = math.ceil(m.duration_ms * stretch / step) * step
    gb_s = s.requests * billed_ms / 1000 * memory / 1024
    lines = [
        Line("Lambda requests", s.requests * lam["per_million_requests"] / 1e6,
             f"{s.requests:,} × ${lam['per_million_requests']}/1M"),
        Line("Lambda duration", gb_s * lam["per_gb_second"],
             f"{s.requests:,} × {billed_ms} ms billed ({m.duration_ms:.3f} ms measured on a "
             f"core × {stretch:.1f} CPU stretch at {memory} MB, rounded up) × {memory}/1024 GB "
             f"= {gb_s:,.2f} GB-s × ${lam['per_gb_second']}"),
    ]  # fmt: skip
    if m.init_ms is not None:
        cold = _cold_starts(s, billed_ms)
        init_gb_s = cold * m.init_ms * stretch / 1000 * memory / 1024
        lines.append(
            Line("Lambda cold starts", init_gb_s * lam["per_gb_second"],
                 f"{cold:,} cold starts × {m.init_ms:.0f} ms init × {stretch:.1f} × "
                 f"{memory}/1024 GB = {init_gb_s:,.2f} GB-s × ${lam['per_gb_second']}")
        )  # fmt: skip
    log_gb = s.requests * logs["lambda_bytes_per_invocation"] / 1e9
    lines += [
        Line("API Gateway (HTTP API)", s.requests * api["per_million_requests"] / 1e6,
             f"{s.requests:,} × ${api['per_million_requests']}/1M"),
        Line("CloudWatch Logs", log_gb * logs["per_gb_ingested"],
             f"{s.requests:,} × {logs['lambda_bytes_per_invocation']} B = {log_gb:.4f} GB × "
             f"${logs['per_gb_ingested']}/GB"),
        *_store(s, prices),
    ]  # fmt: skip
    return lines


def container_costs(m: Measured, s: Scenario, prices: dict[str, Any]) -> list[Line]:
    box, lb, ip = prices["container"], prices["load_balancer"], prices["public_ipv4"]
    per_task_rps = m.capacity_rps * box["vcpu"]
    tasks = max(1, math.ceil(s.rate_per_s / per_task_rps))
    hourly = box["vcpu"] * box["per_vcpu_hour"] + box["memory_gb"] * box["per_gb_hour"]
    gb_per_hour = s.requests / s.hours * lb["bytes_per_request"] / 1e9
    lcu = max(s.rate_per_s / lb["new_connections_per_lcu_s"], gb_per_hour / lb["gb_per_lcu_hour"])
    addresses = ip["addresses_with_container"] + tasks - 1
    return [
        Line("container", tasks * hourly * s.hours,
             f"{tasks} task(s) (needs {s.rate_per_s:.2f} req/s; one sustains {per_task_rps:,.0f} "
             f"= {m.capacity_rps:,.0f} req/s per core × {box['vcpu']} vCPU) × ({box['vcpu']} × "
             f"${box['per_vcpu_hour']} + {box['memory_gb']} GB × ${box['per_gb_hour']})/h × "
             f"{s.hours:g} h"),
        Line("load balancer", (lb["per_hour"] + lcu * lb["per_lcu_hour"]) * s.hours,
             f"(${lb['per_hour']} + {lcu:.4f} LCU × ${lb['per_lcu_hour']})/h × {s.hours:g} h; "
             f"LCU = max({s.rate_per_s:.2f} new connections/s ÷ "
             f"{lb['new_connections_per_lcu_s']}, {gb_per_hour:.4f} GB/h)"),
        Line("public IPv4 addresses", addresses * ip["per_address_hour"] * s.hours,
             f"{addresses} × ${ip['per_address_hour']}/h × {s.hours:g} h"),
        *_store(s, prices),
    ]  # fmt: skip


def _store(s: Scenario, prices: dict[str, Any]) -> list[Line]:
    db, months = prices["store"], s.hours / prices["hours_per_month"]
    return [
        Line("store instance", db["per_hour"] * s.hours, f"${db['per_hour']}/h × {s.hours:g} h"),
        Line("store storage", db["storage_gb"] * db["per_gb_month"] * months,
             f"{db['storage_gb']} GB × ${db['per_gb_month']}/GB-month × {months:.4f} month"),
    ]  # fmt: skip


def _cold_starts(s: Scenario, billed_ms: float) -> int:
    """Environments Lambda must start. When requests come further apart than an idle
    environment lives, each one starts its own; otherwise the concurrency the load needs,
    assumed recycled (started again) once an hour."""
    if 1 / s.rate_per_s >= WARM_FOR_S:
        return s.requests
    concurrency = max(1, math.ceil(s.rate_per_s * billed_ms / 1000))
    return concurrency * math.ceil(s.hours)


def estimate(
    m: Measured, prices: dict[str, Any], *, lambda_memory: int | None = None
) -> dict[str, Any]:
    memory = lambda_memory or default_lambda_memory_mb(m, prices)
    stretch = max(1.0, prices["lambda"]["mb_per_vcpu"] / memory)
    out: dict[str, Any] = {
        "measured": m.__dict__,
        "prices_as_of": prices["as_of"],
        "region": prices["region"],
        "lambda_memory_mb": memory,
        "lambda_cold_start_s": m.init_ms * stretch / 1000 if m.init_ms is not None else None,
        "scenarios": [],
    }
    for s in SCENARIOS:
        entry: dict[str, Any] = {"name": s.name, "requests": s.requests, "hours": s.hours}
        for name, lines in (("lambda", lambda_costs(m, s, prices, memory_mb=memory)),
                            ("container", container_costs(m, s, prices))):  # fmt: skip
            total = sum(line.dollars for line in lines)
            entry[name] = {
                "total": total,
                "per_10k": total / s.requests * 10_000,
                "lines": [line.__dict__ for line in lines],
            }
        out["scenarios"].append(entry)
    return out


def render(report: dict[str, Any]) -> str:
    m = report["measured"]
    init = f"{m['init_ms']:.0f} ms" if m["init_ms"] is not None else "not measured (left out)"
    out = [
        f"Measured ({m['source']}): {m['duration_ms']:.3f} ms per prediction on one core, "
        f"peak memory {m['memory_mb']:.0f} MB, {m['capacity_rps']:,.0f} predictions/s per core, "
        f"cold-start init {init}.",
        f"List prices as of {report['prices_as_of']}, {report['region']}; Lambda memory "
        f"{report['lambda_memory_mb']} MB (--lambda-memory; never below the measured peak × "
        f"{MEMORY_HEADROOM}).",
    ]
    cold = report["lambda_cold_start_s"]
    if cold is not None:
        out.append(f"At that memory a Lambda cold start takes about {cold:.1f} s (CPU scales with "
                   f"memory; default: enough for {COLD_START_TARGET_S:g} s).")  # fmt: skip
        if cold > LAMBDA_INIT_LIMIT_S:
            out.append(f"WARNING: over Lambda's {LAMBDA_INIT_LIMIT_S:g} s limit for initialisation:"
                       " the function would never start. Give it more memory.")  # fmt: skip
    for s in report["scenarios"]:
        out += ["", f"== {s['name']}: {s['requests']:,} predictions over {s['hours']:g} h"]
        for name, title in (("lambda", "Lambda + API Gateway"), ("container", "container")):
            block = s[name]
            out.append(f"  {title}: ${block['total']:,.4f} in all, "
                       f"${block['per_10k']:,.4f} per 10k predictions")  # fmt: skip
            for line in block["lines"]:
                out.append(f"    {line['item']:<24} ${line['dollars']:>11,.6f}  = "
                           f"{line['arithmetic']}")  # fmt: skip
    return "\n".join(out)
