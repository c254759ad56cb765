"""Keeping every worker's cache fresh after a change made by another worker.

Two paths, so a change is visible everywhere within ``sync_interval_s`` (default 0.5 s; the
documented bound is 2 s):

* the change feed: each write appends (seq, retailer_id) in the same transaction; each worker
  polls for new entries and invalidates those retailers. Always on; needs nothing but the store.
* Redis pub/sub (when ``CARTPREDICT_REDIS_URL`` is set): the writer publishes the retailer id
  after commit and every worker invalidates at once. If Redis is down, the feed still works.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cartpredict.core.clock import Clock
from cartpredict.serving.cache import TenantCache
from cartpredict.storage import ChangeFeedStore

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

LOOKBACK = 100  # re-read this many seqs below the highest seen: writes may commit out of order
FEED_RETENTION = timedelta(hours=1)
PRUNE_EVERY_S = 60.0


class ChangeFeed:
    """A process's reader of the change feed, built at start-up, before its cache is filled.

    It starts where the store is: the changes committed by then are counted as read, never
    applied, since nothing cached from then on can be older than they are. (Applied, they
    would make the first poll evict retailers loaded a moment before, for nothing: and while
    the store is down, an evicted retailer cannot be served.) What the cache held before the
    feed began may predate one of them, so it is dropped."""

    def __init__(
        self,
        store: ChangeFeedStore,
        cache: TenantCache,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._cache = cache
        self._monotonic = monotonic
        self._max = store.last_change_seq()
        committed = store.changes_after(seq=max(0, self._max - LOOKBACK))
        self._seen: set[int] = {change.seq for change in committed}
        self._max = max([self._max, *self._seen])
        cache.clear()
        self._last_read = monotonic()

    def poll(self) -> int:
        """Invalidate every retailer changed since the last poll; return how many changes.

        If the last successful read is so old that entries since then may have been pruned,
        the whole cache is dropped: everything is read afresh from the store. That happens
        once the feed can be read again, not while it cannot: a store that is down for long
        changes nothing meanwhile, and the cache keeps serving what it holds."""
        now = self._monotonic()
        low = max(0, self._max - LOOKBACK)
        changed = self._store.changes_after(seq=low)  # raises while the store is down
        if now - self._last_read > FEED_RETENTION.total_seconds() / 2:
            self._cache.clear()
        fresh = [c for c in changed if c.seq not in self._seen]
        for change in fresh:
            self._cache.invalidate(change.retailer_id)
            self._seen.add(change.seq)
            self._max = max(self._max, change.seq)
        low = max(0, self._max - LOOKBACK)
        self._seen = {s for s in self._seen if s > low}
        self._last_read = now
        return len(fresh)


class RedisBus:
    def __init__(self, url: str, channel: str) -> None:
        import redis

        self._url = url
        self._channel = channel
        self._client: redis.Redis = redis.Redis.from_url(url, socket_timeout=1.0)

    def publish(self, retailer_id: str) -> None:
        import redis

        try:
            self._client.publish(self._channel, retailer_id)
        except redis.RedisError as exc:  # the change feed still carries it
            log.warning("redis publish failed: %s", exc)

    def ping(self) -> None:
        self._client.ping()

    async def listen(self, cache: TenantCache, *, retry_s: float = 1.0) -> None:
        """Invalidate each retailer announced on the channel, for ever. A lost subscription
        is retried every ``retry_s``, with one warning when it is lost and one line when it
        is back (messages sent meanwhile are lost: the change feed carries those changes)."""
        import redis
        import redis.asyncio as aioredis

        lost = False
        while True:
            client: Any = aioredis.Redis.from_url(self._url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    if lost:
                        log.info("redis subscription restored")
                        lost = False
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            cache.invalidate(message["data"].decode())
            except (redis.RedisError, OSError) as exc:
                if not lost:
                    log.warning("redis subscription lost (%s); retrying every %gs, the change "
                                "feed carries changes meanwhile", exc, retry_s)  # fmt: skip
                    lost = True
                await asyncio.sleep(retry_s)
            finally:
                await client.aclose()

    def close(self) -> None:
        self._client.close()


class Notifier:
    """Called by the service after a committed write that changes what serving caches."""

    def __init__(self, cache: TenantCache, bus: RedisBus | None) -> None:
        self._cache = cache
        self._bus = bus

    def changed(self, retailer_id: str) -> None:
        self._cache.invalidate(retailer_id)
        if self._bus is not None:
            self._bus.publish(retailer_id)


class FeedKeeper:
    """The change feed's upkeep in one process: read it, and prune old entries once a minute
    (no entry is needed after every worker has read it; ``FEED_RETENTION`` is ample)."""

    def __init__(
        self,
        feed: ChangeFeed,
        store: ChangeFeedStore,
        *,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._feed = feed
        self._store = store
        self._clock = clock
        self._monotonic = monotonic
        self._last_prune: float | None = None

    def tick(self) -> None:
        """Blocking: one read of the feed, and a prune when one is due."""
        self._feed.poll()
        now = self._monotonic()
        if self._last_prune is None or now - self._last_prune >= PRUNE_EVERY_S:
            self._last_prune = now
            self._store.prune_changes(before=self._clock() - FEED_RETENTION)
