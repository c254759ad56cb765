"""Where per-retailer fits run: this process, this machine's cores, or a Dask cluster.

A fit is a pure function of the arrays it is sent (no store, no clock), so every executor gives
the same models; only the wall-clock time differs. Work is submitted a bounded number at a time,
so the arrays in flight stay a few retailers' worth however many retailers there are.

Dask rather than Ray: the tasks are small, independent and numpy-only, which is what Dask's
distributed scheduler was built for; it installs as pure Python wheels (Ray ships a large
native runtime and its own object store we would not use), and a local cluster starts in a
second, in CI as on a laptop. ``dask scheduler`` and ``dask worker ADDRESS`` make a real one.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "dask")


class Executor(AbstractContextManager["Executor"], Protocol):
    """Runs ``fn`` over ``items``; yields (index, result) as results come in."""

    workers: int
    local: bool  # every worker sees this machine's files

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T]
    ) -> Iterator[tuple[int, R]]: ...


class InProcess:
    """One fit after another, here: the reference every other executor must equal."""

    workers = 1
    local = True

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[int, R]]:
        for i, item in enumerate(items):
            yield i, fn(item)


class Processes:
    """This machine's cores (``workers`` processes, default: all cores)."""

    local = True

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Processes:
        # forkserver: a worker never inherits the caller's threads or open connections
        context = multiprocessing.get_context("forkserver")
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=context, initializer=_one_blas_thread
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[int, R]]:
        assert self._pool is not None, "use the executor as a context manager"
        return _bounded(self._pool.submit, fn, items, 2 * self.workers)


def _one_blas_thread() -> None:
    """A worker's linear algebra on one thread: the workers already fill the cores, and BLAS
    threads on top of them fight over the same cores (measured: 200 retailers on 2 cores took
    17.8 s with them, 7.1 s without). Dask's workers do the same by default."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    import numpy  # noqa: F401  (loaded first, so that the limit below reaches its BLAS)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


class Dask:
    """A Dask cluster: ``address`` of its scheduler (``tcp://host:8786``), or None for a local
    cluster of ``workers`` processes started for this run."""

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        self.address = address
        self.local = address is None  # a cluster of its own, on this machine
        self.workers = workers or os.cpu_count() or 1
        self._client: Any = None
        self._cluster: Any = None

    def __enter__(self) -> Dask:
        from dask.distributed import Client, LocalCluster

        if self.address is None:
            self._cluster = LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True,
                dashboard_address=None,
            )  # fmt: skip
            self._client = Client(self._cluster)
        else:
            self._client = Client(self.address, timeout="10s")
            self.workers = max(1, len(self._client.scheduler_info().get("workers", {})))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[int, R]]:
        assert self._client is not None, "use the executor as a context manager"
        client = self._client
        return _bounded(lambda f, x: client.submit(f, x, pure=False), fn, items, 2 * self.workers)


def _bounded(
    submit: Callable[[Callable[[T], R], T], Any],
    fn: Callable[[T], R],
    items: Iterable[T],
    in_flight: int,
) -> Iterator[tuple[int, R]]:
    """Keep at most ``in_flight`` items submitted; yield (index, result) as each completes."""
    pending: dict[Any, int] = {}
    for i, item in enumerate(items):
        pending[submit(fn, item)] = i
        if len(pending) >= in_flight:
            yield from _drain(pending)
    while pending:
        yield from _drain(pending)


def _drain(pending: dict[Any, int]) -> Iterator[tuple[int, Any]]:
    """Wait for at least one of the pending futures; yield (index, result) of those done."""
    futures = list(pending)
    if isinstance(futures[0], Future):
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
    else:  # dask futures
        from dask.distributed import wait as dask_wait

        done, _ = dask_wait(futures, return_when="FIRST_COMPLETED")
    for future in done:
        index = pending.pop(future)
        yield index, future.result()


def make_executor(name: str, *, address: str | None = None, workers: int | None = None) -> Executor:
    """``local``: this machine's cores (``workers=1``: this process); ``dask``: a cluster."""
    if name == "local":
        return InProcess() if workers == 1 else Processes(workers)
    if name == "dask":
        return Dask(address, workers)
    raise ValueError(f"unknown executor {name!r}: one of {', '.join(EXECUTORS)}")
