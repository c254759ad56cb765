"""AWS Lambda entry point: API Gateway (HTTP API, payload format 2.0) to the same ASGI app.

    handler: cartpredict.aws_lambda.handler

Mangum translates each event into an ASGI request, so the fast lane, the errors and every
route are the ones ``cartpredict serve`` has. What differs is the process model: a Lambda
container runs nothing between invocations, so instead of a background poller, an invocation
first reads the change feed when ``sync_interval_s`` has passed since the last read (one
indexed query). Changes made elsewhere are therefore seen on the first invocation after that
interval, as the 2 s bound requires; if the store cannot be read for longer than the feed
keeps its entries, the cache is dropped and read afresh. The app's lifespan is not run per
invocation (Mangum's default would open and close the database around every request): the
store is checked once, when the container starts.

Deploying: package it as a container image (the dependencies exceed Lambda's 250 MB limit for
zip archives), set ``CARTPREDICT_DATABASE_URL`` to a PostgreSQL database already migrated with
``cartpredict db upgrade`` (a container with an older schema refuses to start), and route the
API's ``$default`` stage to it: a named stage would prefix every path.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mangum import Mangum

from .api.app import check_store, create_app
from .sync import ChangeFeed, FeedKeeper

log = logging.getLogger(__name__)

app = create_app()
_services = app.state.services
check_store(_services)
_keeper = FeedKeeper(ChangeFeed(_services.store, _services.cache), _services.store,
                     clock=_services.clock)  # fmt: skip
_interval_s = _services.settings.sync_interval_s
_adapter = Mangum(app, lifespan="off")
_last_poll = time.monotonic()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Read the change feed if it is due (at most one attempt per interval, so a store that
    is down costs one connection timeout per interval, not per request), then serve."""
    global _last_poll
    now = time.monotonic()
    if now - _last_poll >= _interval_s:
        _last_poll = now
        try:
            _keeper.tick()  # prunes the feed too: no server may be running to do it
        except Exception as exc:  # serve from the cache meanwhile
            log.warning("change feed poll failed: %s", exc)
    return _adapter(event, context)
