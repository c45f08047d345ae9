"""A blocking facade over Queue, for scripts that do not use asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from kamikaze.package import Package
from kamikaze.queue import Queue


class SyncQueue:
    """The Queue API without async/await, on an event loop of its own.

    >>> with SyncQueue("redis://localhost:6379/0") as queue:
    ...     queue.push("job-1", ttl=60, priority=1)

    `options` are Settings fields (password_file, tls_ca_file, sentinels,
    sentinel_master, cluster, ...). Not thread-safe: one per thread.
    """

    def __init__(self, url: str | None = None, key: str = "kamikaze", **options: Any) -> None:
        self._runner = asyncio.Runner()
        self._queue: Queue = self._runner.run(_connect(url, key, options))

    @property
    def key(self) -> str:
        return self._queue.key

    def push(self, payload: str, ttl: float | None, priority: float) -> Package:
        """Add one package; ttl None means it never expires."""
        return self._runner.run(self._queue.push(payload, ttl, priority))

    def push_many(self, items: Iterable[tuple[str, float | None, float]]) -> list[Package]:
        """Add (payload, ttl, priority) packages in one atomic call."""
        return self._runner.run(self._queue.push_many(items))

    def remove(self, payload: str) -> int:
        """Remove every package whose payload is exactly `payload`; returns the count."""
        return self._runner.run(self._queue.remove(payload))

    def packages(self, limit: int | None = None) -> list[Package]:
        """Live packages, top first."""
        return self._runner.run(self._queue.packages(limit))

    def top(self) -> Package | None:
        """The live top, or None when the queue is empty."""
        return self._runner.run(self._queue.top()).top

    def close(self) -> None:
        self._runner.run(self._queue.aclose())
        self._runner.close()

    def __enter__(self) -> SyncQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _connect(url: str | None, key: str, options: dict[str, Any]) -> Queue:
    return Queue.connect(url, key, **options)  # the client binds to this loop
