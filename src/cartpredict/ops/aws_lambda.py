"""AWS Lambda entry point: API Gateway (HTTP API, payload format 2.0) to the same ASGI app.

    handler: cartpredict.ops.aws_lambda.handler

Mangum translates each event into an ASGI request, so the fast lane, the errors and every
route are the ones ``cartpredict serve`` has. What differs is the process model: a Lambda
container runs nothing between invocations, so instead of a background poller, an invocation
first reads the change feed when ``sync_interval_s`` has passed since the last read (one
indexed query). Changes made elsewhere are therefore seen on the first invocation after that
interval, as the 2 s bound requires; if the store cannot be read for longer than the feed
keeps its entries, the cache is dropped once the feed can be read again. Predictions
buffered for the prediction log are written by the first invocation after ``FLUSH_EVERY_S``
(so a container that is reclaimed can lose at most that last second of its log). A
scheduled event (EventBridge, ``"source": "aws.events"``, e.g. every 5 minutes) does the upkeep
a server does in the background: writes the buffer, brings the daily stats up to date, purges
what has expired.
The app's lifespan is not run per
invocation (Mangum's default would open and close the database around every request): the
store is checked once, when the container starts.

Deploying: package the serving install (``pip install cartpredict``, without ``[learn]``:
about 98 MB of packages, within Lambda's 250 MB limit for zip archives) or a container image;
set ``CARTPREDICT_DATABASE_URL`` to a PostgreSQL database already migrated with ``cartpredict
db upgrade`` (a container with an older schema refuses to start), and route the API's
``$default`` stage to it: a named stage would prefix every path.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mangum import Mangum

from cartpredict.api.app import check_store, create_app
from cartpredict.monitoring.recorder import FLUSH_EVERY_S
from cartpredict.monitoring.rollup import rollup_now
from cartpredict.serving.background import purge_now
from cartpredict.serving.sync import ChangeFeed, FeedKeeper
from cartpredict.storage.engine import describe

log = logging.getLogger(__name__)

app = create_app()
_services = app.state.services
check_store(_services)
_keeper = FeedKeeper(ChangeFeed(_services.store, _services.cache), _services.store,
                     clock=_services.clock)  # fmt: skip
_interval_s = _services.settings.sync_interval_s
_adapter = Mangum(app, lifespan="off")
_last_poll = _last_flush = time.monotonic()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Read the change feed if it is due (at most one attempt per interval, so a store that
    is down costs one connection timeout per interval, not per request), then serve; then
    write the prediction log's buffer if that is due."""
    global _last_poll, _last_flush
    if event.get("source") == "aws.events":
        return upkeep()
    now = time.monotonic()
    if now - _last_poll >= _interval_s:
        _last_poll = now
        try:
            _keeper.tick()  # prunes the feed too: no server may be running to do it
        except Exception as exc:  # serve from the cache meanwhile
            log.warning("change feed poll failed: %s", describe(exc))
    response = _adapter(event, context)
    if len(_services.recorder) and now - _last_flush >= FLUSH_EVERY_S:
        _last_flush = now
        try:
            _services.recorder.flush(_services.store)
        except Exception as exc:  # the rows stay buffered for the next attempt
            log.warning("prediction log write failed: %s", describe(exc))
    return response


def upkeep() -> dict[str, Any]:
    """What a scheduled event runs: the log's buffer, the daily stats, retention."""
    svc = _services
    rollup_now(svc.store, svc.recorder, clock=svc.clock)  # every open day, final ones too
    # (so the purge need not write the buffer or roll the final days up again)
    purge_now(svc.store, svc.settings, clock=svc.clock, metrics=svc.metrics)
    return {"upkeep": "done"}
