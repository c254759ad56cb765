"""Cache freshness: the change feed, the cache's race guard, Redis pub/sub."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from cartpredict.models import BaselineRule
from cartpredict.serving.cache import Tenant, TenantCache
from cartpredict.serving.principal import Principal
from cartpredict.serving.sync import FEED_RETENTION, ChangeFeed, RedisBus
from cartpredict.storage import Change, Retailer

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def tenant(retailer_id: str) -> Tenant:
    retailer = Retailer(retailer_id, True, ("card",), ("standard",), False, 0.7, T0, T0)
    return Tenant(retailer=retailer, model=BaselineRule())


class FeedOnly:
    """A store whose change feed the test writes by hand, commits out of order included."""

    def __init__(self) -> None:
        self.committed: list[Change] = []

    def last_change_seq(self) -> int:
        return max((c.seq for c in self.committed), default=0)

    def changes_after(self, *, seq: int) -> Sequence[Change]:
        return sorted((c for c in self.committed if c.seq > seq), key=lambda c: c.seq)


def test_the_feed_invalidates_changed_retailers_once() -> None:
    store, cache = FeedOnly(), TenantCache()
    feed = ChangeFeed(store, cache)  # type: ignore[arg-type]
    cache.put_tenant(tenant("a"), generation=0)
    cache.put_tenant(tenant("b"), generation=0)
    store.committed.append(Change(1, "a"))
    assert feed.poll() == 1
    assert cache.tenant("a") is None
    assert cache.tenant("b") is not None
    assert feed.poll() == 0


def test_a_change_committed_late_with_a_lower_seq_is_not_missed() -> None:
    store, cache = FeedOnly(), TenantCache()
    feed = ChangeFeed(store, cache)  # type: ignore[arg-type]
    store.committed.append(Change(2, "b"))  # seq 1 is still in an open transaction
    assert feed.poll() == 1
    cache.put_tenant(tenant("a"), generation=cache.generation("a"))
    store.committed.append(Change(1, "a"))  # ... and commits now
    assert feed.poll() == 1
    assert cache.tenant("a") is None


def test_a_load_that_raced_with_a_change_is_not_cached() -> None:
    cache = TenantCache()
    generation = cache.generation("a")  # a load starts ...
    cache.invalidate("a")  # ... a change lands meanwhile ...
    cache.put_tenant(tenant("a"), generation=generation)  # ... the stale load finishes
    assert cache.tenant("a") is None


def test_a_key_looked_up_while_anything_changed_is_not_cached() -> None:
    cache = TenantCache()
    epoch = cache.epoch
    cache.invalidate("a")
    cache.put_key("hash", Principal("a"), epoch=epoch)
    assert cache.principal_for_key("hash") is None
    cache.put_key("hash", Principal("a"), epoch=cache.epoch)
    assert cache.principal_for_key("hash") == Principal("a")
    cache.invalidate("a")
    assert cache.principal_for_key("hash") is None


@pytest.mark.redis
def test_redis_pushes_a_change_to_every_listener(redis_url: str) -> None:
    channel = f"cartpredict-test-{uuid.uuid4().hex}"
    publisher = RedisBus(redis_url, channel)
    listeners = [TenantCache(), TenantCache()]
    for cache in listeners:
        cache.put_tenant(tenant("a"), generation=0)

    async def scenario() -> None:
        bus = RedisBus(redis_url, channel)
        tasks = [asyncio.create_task(bus.listen(cache)) for cache in listeners]
        try:
            for _ in range(200):  # until both are subscribed
                publisher.publish("warmup")
                if all(c.generation("warmup") for c in listeners):
                    break
                await asyncio.sleep(0.01)
            publisher.publish("a")
            for _ in range(200):
                if all(c.tenant("a") is None for c in listeners):
                    return
                await asyncio.sleep(0.01)
            pytest.fail("redis message not received")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            bus.close()

    try:
        asyncio.run(scenario())
    finally:
        publisher.close()


def test_a_feed_unread_for_longer_than_it_keeps_entries_drops_the_whole_cache() -> None:
    now = [0.0]
    store, cache = FeedOnly(), TenantCache()
    feed = ChangeFeed(store, cache, monotonic=lambda: now[0])  # type: ignore[arg-type]
    cache.put_tenant(tenant("a"), generation=0)
    cache.put_key("hash", Principal("a"), epoch=cache.epoch)
    now[0] = 10.0
    feed.poll()
    assert cache.tenant("a") is not None  # read recently: nothing was missed
    now[0] += FEED_RETENTION.total_seconds()  # unread so long that entries may be pruned
    feed.poll()
    assert cache.tenant("a") is None
    assert cache.principal_for_key("hash") is None


def test_the_keeper_reads_the_feed_every_tick_and_prunes_once_a_minute() -> None:
    from cartpredict.serving.sync import PRUNE_EVERY_S, FeedKeeper

    class Pruned(FeedOnly):
        def __init__(self) -> None:
            super().__init__()
            self.pruned: list[datetime] = []

        def prune_changes(self, *, before: datetime) -> int:
            self.pruned.append(before)
            return 0

    now = [0.0]
    store, cache = Pruned(), TenantCache()
    feed = ChangeFeed(store, cache, monotonic=lambda: now[0])  # type: ignore[arg-type]
    keeper = FeedKeeper(feed, store, clock=lambda: T0, monotonic=lambda: now[0])  # type: ignore[arg-type]
    cache.put_tenant(tenant("a"), generation=0)
    keeper.tick()
    assert store.pruned == [T0 - FEED_RETENTION]  # at once
    store.committed.append(Change(1, "a"))
    now[0] = PRUNE_EVERY_S / 2
    keeper.tick()
    assert cache.tenant("a") is None  # the feed is read on every tick
    assert len(store.pruned) == 1
    now[0] = PRUNE_EVERY_S + 1
    keeper.tick()
    assert len(store.pruned) == 2
