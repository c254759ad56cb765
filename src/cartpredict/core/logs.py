"""JSON logs, one object per line, that never carry a cart's contents.

The service logs what happened to it (start-up, a failed poll, a purge's row counts, an
unexpected error), never a request's body. Access lines, when ``serve --access-log`` turns
them on, keep the method, the path without its query string, and the status; they leave out
the client's address.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = self.fields(record)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        return {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }


class AccessFormatter(JsonFormatter):
    """uvicorn's access records carry (client, method, path, HTTP version, status)."""

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        out = super().fields(record)
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) == 5:
            _, method, path, _, status = args
            out.update(message="request", method=method, path=str(path).split("?", 1)[0],
                       status=status)  # fmt: skip
        return out


def config(level: str = "INFO", *, access_log: bool = True) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server: JSON on stderr, from uvicorn, from
    gunicorn's master (several workers), from this package and, warnings up, from any other
    library. ``access_log``: one line per request (uvicorn's workers under gunicorn log them
    only where the access logger has a handler)."""
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    access = ["access"] if access_log else []
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": f"{__name__}.JsonFormatter"},
            "access": {"()": f"{__name__}.AccessFormatter"},
        },
        "handlers": {
            "default": {**handler, "formatter": "json"},
            "access": {**handler, "formatter": "access"},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": access, "level": level, "propagate": False},
            "gunicorn.error": {"handlers": ["default"], "level": level, "propagate": False},
            "gunicorn.access": {"handlers": access, "level": level, "propagate": False},
            "cartpredict": {"handlers": ["default"], "level": level, "propagate": False},
        },
    }
