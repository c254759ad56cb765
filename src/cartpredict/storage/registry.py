"""Pick a storage backend by URL scheme; backends are imported only when chosen."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from cartpredict.storage.base import Store

# scheme prefix -> "module:factory"
_BACKENDS: dict[str, str] = {
    "sqlite": "cartpredict.storage.sql:SqlStore",
    "postgresql": "cartpredict.storage.sql:SqlStore",
}


def backend_for(url: str) -> Callable[[str], Store]:
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    try:
        target = _BACKENDS[scheme]
    except KeyError:
        known = ", ".join(sorted(_BACKENDS))
        raise ValueError(
            f"unsupported database URL scheme {scheme!r}; use one of: {known}"
        ) from None
    module, name = target.split(":")
    factory: Callable[[str], Store] = getattr(import_module(module), name)
    return factory


def open_store(url: str) -> Store:
    return backend_for(url)(url)
