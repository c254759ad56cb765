"""Where the change feed starts: a change committed before a process began never evicts what
it caches afterwards (else its first poll empties the cache it has just warmed, and while the
store is down an evicted retailer cannot be served); a change committed later still does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from cartpredict.api.app import create_app
from cartpredict.models import BaselineRule
from cartpredict.serving.cache import Tenant, TenantCache
from cartpredict.serving.principal import Principal
from cartpredict.serving.sync import LOOKBACK, ChangeFeed
from cartpredict.storage import Change, Retailer
from tests.support.factories import cart, create_retailer, make_settings
from tests.support.feeds import await_a_feed_poll

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def tenant(retailer_id: str) -> Tenant:
    retailer = Retailer(retailer_id, True, ("card",), ("standard",), False, 0.7, T0, T0)
    return Tenant(retailer=retailer, model=BaselineRule())


class Feed:
    """A store holding only a change feed, committed by hand (out of order too)."""

    def __init__(self, *seqs: tuple[int, str]) -> None:
        self.committed = [Change(seq, rid) for seq, rid in seqs]

    def commit(self, seq: int, retailer_id: str) -> None:
        self.committed.append(Change(seq, retailer_id))

    def last_change_seq(self) -> int:
        return max((c.seq for c in self.committed), default=0)

    def changes_after(self, *, seq: int) -> Sequence[Change]:
        return sorted((c for c in self.committed if c.seq > seq), key=lambda c: c.seq)


def cached(cache: TenantCache, *retailer_ids: str) -> None:
    for rid in retailer_ids:
        cache.put_tenant(tenant(rid), generation=cache.generation(rid))


def test_changes_committed_before_the_feed_began_never_evict_what_is_cached_after() -> None:
    store, cache = Feed((1, "a"), (2, "b"), (3, "a")), TenantCache()
    feed = ChangeFeed(store, cache)  # type: ignore[arg-type]
    cached(cache, "a", "b")  # loaded after those changes: already up to date
    assert feed.poll() == 0
    assert cache.tenant("a") is not None and cache.tenant("b") is not None


def test_only_the_lookback_below_the_newest_change_is_read_at_the_start() -> None:
    store, cache = Feed(*((seq, "a") for seq in range(1, 3 * LOOKBACK))), TenantCache()
    feed = ChangeFeed(store, cache)  # type: ignore[arg-type]
    cached(cache, "a")
    assert feed.poll() == 0
    assert cache.tenant("a") is not None


def test_a_change_committed_after_the_start_evicts_even_with_a_lower_seq() -> None:
    store, cache = Feed((1, "a"), (3, "b")), TenantCache()  # seq 2 is in an open transaction
    feed = ChangeFeed(store, cache)  # type: ignore[arg-type]
    cached(cache, "a", "b")
    store.commit(2, "a")  # ... and commits now
    assert feed.poll() == 1
    assert cache.tenant("a") is None
    assert cache.tenant("b") is not None
    store.commit(4, "b")
    assert feed.poll() == 1
    assert cache.tenant("b") is None


def test_what_was_cached_before_the_feed_began_is_dropped() -> None:
    """Loaded before a change the feed now counts as read: it could be stale for good."""
    store, cache = Feed((1, "a")), TenantCache()
    cached(cache, "a")
    cache.put_key("hash", Principal("a"), epoch=cache.epoch)
    ChangeFeed(store, cache)  # type: ignore[arg-type]
    assert cache.tenant("a") is None
    assert cache.principal_for_key("hash") is None


def test_a_running_app_keeps_retailers_created_before_it_started_cached(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(make_settings(database_url))) as setup:
        key = create_retailer(setup, "a")
    app = create_app(make_settings(database_url, sync_interval_s=0.5))
    services = app.state.services
    with TestClient(app) as client:
        # Warmed well within the first interval: the feed's first poll comes after.
        assert client.post("/predict_cart", json=cart("a"), headers=key).status_code == 200
        assert services.tenants.cached("a") is not None
        await_a_feed_poll(monkeypatch, services.store)
        assert services.tenants.cached("a") is not None
        assert services.auth.cached(key["Authorization"].removeprefix("Bearer ")) is not None
