"""The Lambda entry point in a fresh interpreter: import time, then time per invocation.

Run by ``run.py`` as ``python lambda_probe.py REQUESTS_JSON N`` with CARTPREDICT_DATABASE_URL
set; prints one JSON line. REQUESTS_JSON holds ``[[key, body], ...]``; each invocation gets an
API Gateway HTTP API (payload 2.0) event for one of them, cycled.
"""

from __future__ import annotations

import time

started = time.perf_counter()
import cartpredict.ops.aws_lambda as entry  # noqa: E402  (its import is what is timed)

import_s = time.perf_counter() - started

import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def event(key: str, body: str) -> dict[str, object]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/predict_cart",
        "rawQueryString": "",
        "headers": {
            "authorization": f"Bearer {key}",
            "content-type": "application/json",
            "content-length": str(len(body.encode())),
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "http": {"method": "POST", "path": "/predict_cart", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "bench"},
            "requestId": "bench", "routeKey": "$default", "stage": "$default",
        },
        "body": body,
        "isBase64Encoded": False,
    }  # fmt: skip


def main() -> None:
    pairs = json.loads(Path(sys.argv[1]).read_text())
    n = int(sys.argv[2])
    events = [event(key, body) for key, body in pairs]
    for e in events:  # first touch: each retailer's key and model get cached
        answer = entry.handler(e, None)
        assert answer["statusCode"] == 200, answer
    times = []
    for i in range(n):
        started = time.perf_counter()
        entry.handler(events[i % len(events)], None)
        times.append(time.perf_counter() - started)
    peak_kb = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    print(json.dumps({
        "import_s": round(import_s, 3),
        "invoke_ms_median": round(statistics.median(times) * 1000, 4),
        "invoke_ms_mean": round(statistics.fmean(times) * 1000, 4),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
