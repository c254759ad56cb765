"""Prometheus metrics: aggregate counts and latencies only, with bounded labels.

Labels are route templates (never raw paths), status codes and model kinds; nothing here ever
carries a cart's values, attributes, or a retailer's or cart's id. Children are resolved once
and reused, so recording a request costs a dictionary lookup and two increments.

With several worker processes, a scrape of any of them answers for the whole server, through
prometheus_client's multiprocess mode: every worker writes its figures to memory-mapped files
in one directory (``PROMETHEUS_MULTIPROC_DIR``, made by ``server.py``), and a scrape
reads them all. Counters and histograms are summed over every worker the server has run, the
replaced ones included, so they never run backwards. What a worker reads from its own cache and
buffer (cache lookups, retailers loaded, model versions serving them, predictions waiting to
be written) it writes there when it is scraped and once a second (``publish``): predictions
waiting are summed over the live workers, since their buffers are disjoint; retailers loaded
and model versions are one series per live worker (a ``pid`` label), since each worker has a
cache of its own: a sum would count a retailer once per worker that loaded it, and a version
once per worker that serves it. Writing to those files costs a request about 2.5 µs more than
counting in memory, so one worker alone counts in memory, as a lone process always did.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MODEL_KINDS = ("baseline", "pooled", "retailer")
OTHER_ROUTE = "other"  # any path no route matched: raw paths would make labels unbounded
SHARED_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when it is imported

CONTENT_TYPE = CONTENT_TYPE_LATEST


class CacheFigures(Protocol):
    """What the metrics read from a worker's cache (serving's tenant cache is one)."""

    @property
    def hits(self) -> Mapping[str, int]: ...  # lookups answered from the cache, by cache

    @property
    def misses(self) -> Mapping[str, int]: ...

    def served(self) -> list[tuple[str, str]]: ...  # (kind, version) per retailer loaded


class Metrics:
    def __init__(
        self, cache: CacheFigures | None = None, registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._shared = shared_directory()
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
        self._rate_limited = Counter(
            "cartpredict_rate_limited_requests",
            "Requests refused with 429 because their retailer's key was over its rate limit",
            registry=self.registry,
        )
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self.log_buffered = Reading()  # the owner of the buffer says how to read it
        self._process = _ProcessFigures(cache, self.log_buffered, self.registry)

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

    def publish(self) -> None:
        """Bring the figures read from this process's cache and buffer up to date (where
        several processes share their figures, the others read them from the files)."""
        self._process.update()

    def exposition(self) -> bytes:
        self.publish()
        if self._shared is None:
            return generate_latest(self.registry)
        every_process = CollectorRegistry()
        MultiProcessCollector(every_process, path=self._shared)
        return generate_latest(every_process)


class Reading:
    """A figure read when it is published, from a function its owner sets (as a Gauge's
    ``set_function``, which multiprocess mode cannot share)."""

    def __init__(self) -> None:
        self._read: Callable[[], float] = lambda: 0.0

    def set_function(self, read: Callable[[], float]) -> None:
        self._read = read

    def __call__(self) -> float:
        return float(self._read())


class _ProcessFigures:
    """What a process reads from its cache and its prediction buffer, kept in metrics of
    its own so that they are shared like the others when processes share their figures."""

    def __init__(
        self, cache: CacheFigures | None, buffered: Reading, registry: CollectorRegistry
    ) -> None:
        self._cache = cache
        self._buffered = buffered
        self._published: dict[tuple[str, str], int] = {}  # lookups counted so far
        self._lock = threading.Lock()  # scrapes and the worker's heartbeat may overlap
        self._waiting = Gauge(
            "cartpredict_prediction_log_buffered",
            "Predictions waiting to be written to the prediction log",
            multiprocess_mode="livesum",
            registry=registry,
        )
        if cache is None:
            return
        self._lookups = Counter(
            "cartpredict_cache_lookups",
            "In-process cache lookups (tenant: a retailer's config and model; key: an API key)",
            ["cache", "result"],
            registry=registry,
        )
        self._retailers = Gauge(
            "cartpredict_cached_retailers",
            "Retailers loaded in a worker's cache, by the kind of model serving them",
            ["kind"],
            multiprocess_mode="liveall",
            registry=registry,
        )
        self._versions = Gauge(
            "cartpredict_model_versions_served",
            "Distinct model versions serving the retailers loaded in a worker, by kind",
            ["kind"],
            multiprocess_mode="liveall",
            registry=registry,
        )

    def update(self) -> None:
        with self._lock:
            self._waiting.set(self._buffered())
            if self._cache is not None:
                self._update_cache(self._cache)

    def _update_cache(self, cache: CacheFigures) -> None:
        for result, counts in (("hit", cache.hits), ("miss", cache.misses)):
            for name, n in counts.items():
                before = self._published.get((name, result), 0)
                self._lookups.labels(name, result).inc(max(0, n - before))
                self._published[(name, result)] = max(n, before)
        served = cache.served()
        for kind in MODEL_KINDS:
            mine = [version for k, version in served if k == kind]
            self._retailers.labels(kind).set(len(mine))
            self._versions.labels(kind).set(len(set(mine)))


def shared_directory() -> str | None:
    """The directory this process's figures are shared through, if any (``server.py`` sets
    it for a server with several workers)."""
    return os.environ.get(SHARED_DIR_VAR) or None
