"""Prometheus metrics: aggregate counts and latencies only, with bounded labels.

Labels are route templates (never raw paths), status codes and model kinds; nothing here ever
carries a cart's values, attributes, or a retailer's or cart's id. Children are resolved once
and reused, so recording a request costs a dictionary lookup and two increments.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from .cache import TenantCache

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MODEL_KINDS = ("baseline", "pooled", "retailer")
OTHER_ROUTE = "other"  # any path no route matched: raw paths would make labels unbounded

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(
        self, cache: TenantCache | None = None, registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        if cache is not None:
            self.registry.register(_CacheCollector(cache))
        self._responses = Counter(
            "cartpredict_http_responses",
            "HTTP responses by route template and status code",
            ["route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "cartpredict_http_request_duration_seconds",
            "Time from a request's first byte in the app to its response, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._predictions = Counter(
            "cartpredict_predictions",
            "Carts scored, by the kind of model that scored them",
            ["kind"],
            registry=self.registry,
        )
        self._by_kind = {kind: self._predictions.labels(kind) for kind in MODEL_KINDS}
        self._purged = Counter(
            "cartpredict_purged_rows",
            "Rows deleted by retention, by table",
            ["table"],
            registry=self.registry,
        )
        self._logged = Counter(
            "cartpredict_prediction_log_rows",
            "Predictions written to the prediction log, or dropped when it could not keep up",
            ["result"],
            registry=self.registry,
        )
        self._written = self._logged.labels("written")
        self._dropped = self._logged.labels("dropped")
        self.log_buffered = Gauge(
            "cartpredict_prediction_log_buffered",
            "Predictions waiting in this process to be written to the prediction log",
            registry=self.registry,
        )
        self._rate_limited = Counter(
            "cartpredict_rate_limited_requests",
            "Requests refused with 429 because their retailer's key was over its rate limit",
            registry=self.registry,
        )
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def request(self, route: str, status: int, seconds: float) -> None:
        child = self._children.get((route, status))
        if child is None:
            child = (self._responses.labels(route, str(status)), self._latency.labels(route))
            self._children[(route, status)] = child
        child[0].inc()
        child[1].observe(seconds)

    def rate_limited(self) -> None:
        self._rate_limited.inc()

    def predicted(self, kind: str, n: int = 1) -> None:
        self._by_kind[kind].inc(n)

    def purged(self, table: str, rows: int) -> None:
        self._purged.labels(table).inc(rows)

    def prediction_log_written(self, rows: int) -> None:
        self._written.inc(rows)

    def prediction_log_dropped(self, rows: int) -> None:
        self._dropped.inc(rows)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _CacheCollector:
    """Read at scrape time from the cache: lookups it answered, and what it serves."""

    def __init__(self, cache: TenantCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily(
            "cartpredict_cache_lookups",
            "In-process cache lookups (tenant: a retailer's config and model; key: an API key)",
            labels=["cache", "result"],
        )
        for cache, n in self._cache.hits.items():
            lookups.add_metric([cache, "hit"], n)
        for cache, n in self._cache.misses.items():
            lookups.add_metric([cache, "miss"], n)
        yield lookups
        tenants = self._cache.tenants()
        retailers = GaugeMetricFamily(
            "cartpredict_cached_retailers",
            "Retailers loaded in this process, by the kind of model serving them",
            labels=["kind"],
        )
        versions = GaugeMetricFamily(
            "cartpredict_model_versions_served",
            "Distinct model versions serving the retailers loaded in this process, by kind",
            labels=["kind"],
        )
        for kind in MODEL_KINDS:
            mine = [t.model.version for t in tenants if t.model.kind == kind]
            retailers.add_metric([kind], len(mine))
            versions.add_metric([kind], len(set(mine)))
        yield retailers
        yield versions
