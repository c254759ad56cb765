"""AWS Lambda entry point: API Gateway (HTTP API, payload format 2.0) to the same ASGI app.

    handler: cartpredict.aws_lambda.handler

Mangum translates each event into an ASGI request, so the fast lane, the errors and every
route are the ones ``cartpredict serve`` has. What differs is the process model: a Lambda
container runs nothing between invocations, so instead of a background poller, an invocation
first reads the change feed when ``sync_interval_s`` has passed since the last read (one
indexed query). Changes made elsewhere are therefore seen on the first invocation after that
interval, as the 2 s bound requires. The app's lifespan is not run per invocation (Mangum's
default would open and close the database around every request): the store is checked once,
when the container starts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mangum import Mangum

from .api.app import check_store, create_app
from .sync import ChangeFeed

log = logging.getLogger(__name__)

app = create_app()
_services = app.state.services
check_store(_services)
_feed = ChangeFeed(_services.store, _services.cache)
_interval_s = _services.settings.sync_interval_s
_adapter = Mangum(app, lifespan="off")
_last_poll = time.monotonic()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _last_poll
    now = time.monotonic()
    if now - _last_poll >= _interval_s:
        try:
            _feed.poll()
            _last_poll = now
        except Exception as exc:  # serve from the cache; try again next time
            log.warning("change feed poll failed: %s", exc)
    return _adapter(event, context)
