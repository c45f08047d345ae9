"""The web process's one subscription: the queue read again on each change
signal and at the next expiry among the packages shown, reconnecting whenever
Redis goes away (the follower's parts: Signals and Outage).

A view needs the whole list, not only the top, so it reads on every signal,
like `kamikaze watch`; and it wakes at expire times, like the service, so an
expired top leaves the page (and the timeline) on time. It only reads:
expired packages are left for the service to delete.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from kamikaze.errors import connection_failure
from kamikaze.queue import Queue
from kamikaze.signals import IDLE_RECHECK, Outage, Signals

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from kamikaze.package import Package

MIN_INTERVAL = 0.05  # seconds between two readings: at most 20 a second, however busy


@dataclass(frozen=True)
class Snapshot:
    """The first packages (top first), how many the queue holds, the server's
    clock when they were read, the active exclusive service ("" when none:
    docs/ha.rst), and when (time.monotonic()) the reading ended."""

    packages: list[Package]
    size: int
    server_time: float
    active: str = ""
    read_at: float = field(default_factory=time.monotonic)

    @property
    def top(self) -> Package | None:
        return self.packages[0] if self.packages else None

    def server_now(self) -> float:
        """The server's clock now, estimated without asking it (never ahead)."""
        return self.server_time + time.monotonic() - self.read_at

    def seconds_to_expiry(self) -> float | None:
        """Until the first of the packages shown expires (None: none expires)."""
        times = [p.expire_time for p in self.packages if p.expire_time is not None]
        return max(0.0, min(times) - self.server_now()) if times else None


class Sink(Protocol):
    def snapshot(self, snapshot: Snapshot) -> None: ...

    def lost(self, reason: str) -> None: ...


class QueueFeed:
    def __init__(self, client: Redis, key: str, address: str, rows: int) -> None:
        self.client = client
        self.key = key
        self.queue = Queue(client, key)
        self.rows = rows
        self.outage = Outage(address, logger="kamikaze.web")

    async def run(self, sink: Sink) -> None:
        """Feed `sink` until cancelled. Wrong credentials or permissions, or a
        certificate that does not verify, before the first reading are raised:
        retrying cannot mend them. Other failures are an outage, retried."""
        connected = False
        while True:
            signals = Signals(self.client, self.key)
            async with self.outage.attempt(
                signals, fatal=not connected, on_lost=lambda exc: sink.lost(connection_failure(exc))
            ):
                await signals.subscribe()  # before reading: a change meanwhile still wakes us
                snapshot = await self.read()
                self.outage.back()
                connected = True
                sink.snapshot(snapshot)
                await self._follow(signals, snapshot, sink)
            await self.outage.pause()

    async def read(self) -> Snapshot:
        packages, now = await self.queue.listing(self.rows)
        size, active = await self.queue.size(), await self.queue.active_service()
        return Snapshot(packages, size, now, active)

    async def _follow(self, signals: Signals, snapshot: Snapshot, sink: Sink) -> None:
        while True:
            await self._wait(signals, snapshot)
            signals.take()  # a view reads the whole list anyway
            await asyncio.sleep(snapshot.read_at + MIN_INTERVAL - time.monotonic())
            snapshot = await self.read()
            sink.snapshot(snapshot)

    @staticmethod
    async def _wait(signals: Signals, snapshot: Snapshot) -> None:
        """Until a change signal, or the next expiry among the packages shown;
        an idle subscription must answer a PING every IDLE_RECHECK seconds."""
        while True:
            due = snapshot.seconds_to_expiry()
            if due is not None and due < IDLE_RECHECK:
                await signals.wait(due)
                return
            if await signals.wait_or_ping():
                return
