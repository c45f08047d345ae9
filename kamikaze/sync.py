"""A blocking facade over Queue, for scripts that do not use asyncio."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from kamikaze.package import Package
from kamikaze.queue import Queue

T = TypeVar("T")


class SyncQueue:
    """The Queue API without async/await.

    >>> with SyncQueue("redis://localhost:6379/0") as queue:
    ...     queue.push("job-1", ttl=60, priority=1)

    `options` are Settings fields (password_file, tls_ca_file, sentinels,
    sentinel_master, cluster, ...). Its event loop runs in a thread of its
    own, so it works anywhere, even inside a plain consumer that the service
    calls from its event loop; it may be shared between threads.
    """

    def __init__(self, url: str | None = None, key: str = "kamikaze", **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kamikaze-sync", daemon=True
        )
        self._thread.start()
        try:
            self._queue: Queue = self._run(_connect(url, key, options))
        except BaseException:
            self._stop()
            raise

    @classmethod
    def from_environment(cls) -> SyncQueue:
        """Configured by the KAMIKAZE_* variables, as Queue.from_environment()."""
        from kamikaze.environment import settings_from_environment

        options = settings_from_environment().values()
        return cls(options.pop("redis_url"), options.pop("key"), **options)

    @property
    def key(self) -> str:
        return self._queue.key

    def push(self, payload: str, ttl: float | None, priority: float) -> Package:
        """Add one package; ttl None means it never expires."""
        return self._run(self._queue.push(payload, ttl, priority))

    def push_many(self, items: Iterable[tuple[str, float | None, float]]) -> list[Package]:
        """Add (payload, ttl, priority) packages in one atomic call."""
        return self._run(self._queue.push_many(list(items)))

    def remove(self, payload: str) -> int:
        """Remove every package whose payload is exactly `payload`; returns the count."""
        return self._run(self._queue.remove(payload))

    def clear(self) -> int:
        """Delete every package at once; returns how many there were."""
        return self._run(self._queue.clear())

    def packages(self, limit: int | None = None) -> list[Package]:
        """Live packages, top first."""
        return self._run(self._queue.packages(limit))

    def top(self) -> Package | None:
        """The live top, or None when the queue is empty."""
        return self._run(self._queue.top())

    def close(self) -> None:
        if self._thread.is_alive():
            try:
                self._run(self._queue.aclose())
            finally:
                self._stop()

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _connect(url: str | None, key: str, options: dict[str, Any]) -> Queue:
    return Queue.connect(url, key, **options)  # the client binds to this loop
