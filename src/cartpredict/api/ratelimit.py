"""Per-retailer rate limits: one token bucket per retailer, checked in process, shared through
Redis when it is configured.

What is limited: every call made with a retailer's key, counted against that retailer (all its
keys share one budget, so rotating a key does not refill it). A call over the limit gets 429
with ``Retry-After``. The operator key is exempt: it is one trusted credential, its calls are
rare administration, and a limit on it could lock the operator out of the very calls (delete a
retailer, rotate a key) needed while a retailer floods the service.

Why in process: the check sits on the fast lane, whose whole budget is tens of microseconds;
a dictionary lookup and a few float operations cost well under one, a Redis round trip would
cost more than the prediction itself. So no request waits for Redis.

Shared across workers (``CARTPREDICT_REDIS_URL`` set): every ``SHARE_EVERY_S`` each worker adds
what it admitted since the last exchange to one Redis counter per retailer (``INCRBY``, all of
them in one Lua call) and reads the totals back; what the other workers admitted meanwhile is
taken out of its own bucket. All workers thus spend from one budget, seen at most
``SHARE_EVERY_S`` late: together they may admit about (workers - 1) x rate x ``SHARE_EVERY_S``
more than the limit, plus up to one burst per worker when a retailer starts sending to it. While
Redis is down each worker limits on its own, so the limit applies per worker, and nothing fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from starlette.types import Scope

from cartpredict.core.errors import TooManyRequests
from cartpredict.serving.principal import Principal

log = logging.getLogger(__name__)

SHARE_EVERY_S = 0.1  # how often workers exchange counts through Redis
PRUNE_EVERY_S = 5.0  # without Redis: how often idle buckets are dropped
COUNTER_TTL_MS = 60_000  # a retailer's Redis counter outlives its last exchange by this
REDIS_TIMEOUT_S = 0.5
CHARGED = "cartpredict.rate_charged"  # set in the ASGI scope once a request has been counted

# INCRBY each counter by what this worker admitted (0: just read it); return every total.
_EXCHANGE = """
local totals = {}
for i, key in ipairs(KEYS) do
  totals[i] = redis.call('INCRBY', key, ARGV[i + 1])
  redis.call('PEXPIRE', key, ARGV[1])
end
return totals
"""


class _Bucket:
    __slots__ = ("seen", "spent", "stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens  # may go below zero when other workers spent the budget
        self.stamp = stamp  # when ``tokens`` was last brought up to date
        self.spent = 0  # admitted here since the last exchange
        self.seen = -1  # the shared total at the last exchange; -1: not exchanged yet


class RateLimiter:
    """Token buckets: ``per_s`` requests a second, in bursts of up to ``burst``."""

    def __init__(
        self,
        per_s: float,
        burst: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        on_refused: Callable[[], None] = lambda: None,
    ) -> None:
        self.per_s = per_s
        self.burst = float(burst)
        self._monotonic = monotonic
        self._on_refused = on_refused  # counts refusals for the metrics
        self._buckets: dict[str, _Bucket] = {}

    def take(self, who: str) -> float:
        """Spend one token of ``who``'s bucket: 0.0 if there was one, else the seconds until
        there will be (the request is refused and spends nothing)."""
        now = self._monotonic()
        bucket = self._buckets.get(who)
        if bucket is None:
            bucket = self._buckets[who] = _Bucket(self.burst, now)
        tokens = bucket.tokens + (now - bucket.stamp) * self.per_s
        if tokens > self.burst:
            tokens = self.burst
        bucket.stamp = now
        if tokens >= 1.0:
            bucket.tokens = tokens - 1.0
            bucket.spent += 1
            return 0.0
        bucket.tokens = tokens
        self._on_refused()
        return (1.0 - tokens) / self.per_s

    def charge(self, caller: Principal, scope: Scope) -> None:
        """Count a request once, whichever path sees it first; TooManyRequests when over."""
        if caller.retailer_id is None or CHARGED in scope:
            return
        scope[CHARGED] = True
        wait = self.take(caller.retailer_id)
        if wait:
            raise self.refusal(wait)

    def refusal(self, wait_s: float) -> TooManyRequests:
        return TooManyRequests(
            f"Too many requests: a retailer's keys may make {self.per_s:g} a second, in "
            f"bursts of up to {self.burst:g}; retry after the seconds in Retry-After.",
            retry_after_s=max(1, math.ceil(wait_s)),
        )

    def prune(self) -> None:
        """Drop the buckets that have refilled and spent nothing since the last exchange: a
        new bucket is the same, and memory stays bounded by the retailers sending now."""
        now = self._monotonic()
        idle = [
            who
            for who, b in self._buckets.items()
            if not b.spent and b.tokens + (now - b.stamp) * self.per_s >= self.burst
        ]
        for who in idle:
            del self._buckets[who]

    def outgoing(self) -> list[tuple[str, int]]:
        """What each retailer spent here since the last exchange, reset to zero: requests
        admitted while the exchange is under way count towards the next one."""
        pending = [(who, b.spent) for who, b in self._buckets.items()]
        for b in self._buckets.values():
            b.spent = 0
        return pending

    def incoming(self, pending: list[tuple[str, int]], totals: list[int]) -> None:
        """The shared totals after ``pending`` was added: take out what others spent."""
        for (who, spent), total in zip(pending, totals, strict=True):
            bucket = self._buckets.get(who)
            if bucket is None:
                continue
            others = total - bucket.seen - spent
            if bucket.seen >= 0 and others > 0:
                bucket.tokens = max(bucket.tokens - others, -self.burst)
            bucket.seen = total

    def forget_shared(self) -> None:
        """Redis is unreachable: limit alone until it is back (then start afresh)."""
        for b in self._buckets.values():
            b.seen = -1

    def __len__(self) -> int:
        return len(self._buckets)


class Sharing:
    """Keeps one worker's buckets in step with the other workers' through Redis."""

    def __init__(self, limiter: RateLimiter, redis_url: str, prefix: str) -> None:
        import redis.asyncio as aioredis

        self._limiter = limiter
        self._prefix = prefix
        self._client: Any = aioredis.Redis.from_url(
            redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        self._exchange = self._client.register_script(_EXCHANGE)
        self._lost = False

    async def exchange(self) -> None:
        """One exchange; on failure, this worker limits on its own until the next success."""
        import redis

        self._limiter.prune()
        pending = self._limiter.outgoing()
        if not pending:
            return
        keys = [self._prefix + who for who, _ in pending]
        try:
            totals = await self._exchange(
                keys=keys, args=[COUNTER_TTL_MS, *(n for _, n in pending)]
            )
        except (redis.RedisError, OSError) as exc:
            if not self._lost:
                log.warning("rate limits not shared (redis: %s); each worker limits on its own "
                            "until redis is back", exc)  # fmt: skip
                self._lost = True
            self._limiter.forget_shared()
            return
        if self._lost:
            log.info("rate limits shared through redis again")
            self._lost = False
        self._limiter.incoming(pending, [int(t) for t in totals])

    async def close(self) -> None:
        await self._client.aclose()


async def keep(limiter: RateLimiter, sharing: Sharing | None, stop: asyncio.Event) -> None:
    """Until ``stop``: exchange through Redis every ``SHARE_EVERY_S``, or (alone) drop idle
    buckets every ``PRUNE_EVERY_S``. Runs on the event loop, as the checks do: no lock."""
    every = SHARE_EVERY_S if sharing is not None else PRUNE_EVERY_S
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
            try:
                if sharing is not None:
                    await sharing.exchange()
                else:
                    limiter.prune()
            except Exception:  # a bug: logged, and the limits keep working in this process
                log.exception("rate limit upkeep failed")
    finally:
        if sharing is not None:
            await sharing.close()
