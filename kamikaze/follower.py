"""Following a queue's top: wake on a change signal or the top's expire
time, read the top, report each change; reconnect whenever Redis goes away.
The service (kamikaze.service) and `Queue.follow()` use it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kamikaze.connections import BACKOFF_CAP
from kamikaze.signals import IDLE_RECHECK, Outage, Signals

if TYPE_CHECKING:
    from kamikaze.package import Package
    from kamikaze.queue import Queue, TopReading

_UNSET: Any = object()
# Event loop timers miss by up to a millisecond: asyncio rounds its select()
# timeouts up to whole ms, uvloop's timers run on a ms clock and fire up to
# 1 ms early. So the timer is set TIMER_SLACK before an expiry, and the rest
# is waited for by yielding to the loop (until_expired).
TIMER_SLACK = 0.002


@dataclass(frozen=True)
class Change:
    """A new top (None: the queue is empty), the reading behind it, and
    when (monotonic) the wake-up that found it happened."""

    top: Package | None
    reading: TopReading
    woke_at: float
    previous: Package | None


class Observer(Protocol):
    def connected(self, up: bool) -> None: ...


class Follower:
    """Yields the queue's top each time it changes, starting with the
    current one; runs until the caller stops iterating or cancels it.

    `connect` makes a Queue, on a client of its own, for each
    (re)connection; the client is closed after each unless `owns_clients`
    is False. `settle`, awaited before each
    change is reported, gets the caller ready for it (the service cancels
    a running consumer call) and says whether that took long enough for the
    top to be read again. Wrong credentials or permissions,
    or a certificate that does not verify, before the first success are
    raised: retrying cannot mend them. Other failures are logged once per
    outage and retried with capped backoff."""

    def __init__(
        self,
        connect: Callable[[], Queue],
        address: str,
        owns_clients: bool = True,
        observer: Observer | None = None,
        backoff_cap: float = BACKOFF_CAP,
        settle: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.connect = connect
        self.settle = settle
        self.backoff_cap = backoff_cap
        self.address = address
        self.owns_clients = owns_clients
        self.observer = observer
        self.last_top: Package | None = _UNSET

    async def changes(self) -> AsyncIterator[Change]:
        outage = Outage(self.address, self.backoff_cap)
        connected = False
        while True:
            queue = self.connect()
            signals = Signals(queue.redis, queue.key)
            client = queue.redis if self.owns_clients else None
            # Refusals (a key of the wrong type, a busy script, a replica)
            # count as an outage too, until Redis stops refusing.
            async with outage.attempt(
                signals, client, fatal=not connected, on_lost=lambda _: self._report(False)
            ):
                await signals.subscribe()
                woke_at = time.monotonic()
                reading = await queue.read_top()  # only a read of the top proves we are back
                outage.back()
                connected = True
                self._report(True)
                async for change in self._follow(queue, signals, reading, woke_at):
                    yield change
            await outage.pause()

    def _report(self, up: bool) -> None:
        if self.observer is not None:
            self.observer.connected(up)

    async def _follow(
        self, queue: Queue, signals: Signals, reading: TopReading, woke_at: float
    ) -> AsyncIterator[Change]:
        interrupted = False  # a call was cut short: make it again, even for the same top
        while True:
            if interrupted or self.last_top is _UNSET or not same_top(reading.top, self.last_top):
                if await self._stale(reading):
                    interrupted = True
                    woke_at, reading = time.monotonic(), await queue.read_top()
                    continue
                interrupted = False
                previous = None if self.last_top is _UNSET else self.last_top
                self.last_top = reading.top
                yield Change(reading.top, reading, woke_at, previous)
            wait = reading.seconds_to_expiry()  # from now: the consumer may have taken a while
            if wait is None or wait >= IDLE_RECHECK:
                signalled = await signals.wait_or_ping()
            elif not (signalled := await signals.wait(max(wait - TIMER_SLACK, 0.0))):
                await until_expired(reading)
            woke_at = time.monotonic()
            received, shed = signals.take()
            if signalled and not shed:
                told = queue.signalled(reading, received)
            elif wait is None or wait >= IDLE_RECHECK:  # idle: has anything changed unsaid?
                told = reading if await queue.change_number() == reading.seq else None
            else:
                told = None  # the top's expiry
            # The signals carry the top: a follower reads it only when they
            # cannot tell it, at the top's expiry, or when a change went unsaid.
            reading = told if told is not None else await queue.read_top()

    async def _stale(self, reading: TopReading) -> bool:
        """Whether a change must be read again before it is reported: the
        caller took a while to get ready for it (`settle`: a cancelled
        consumer call that finished late), or its top has expired since."""
        if self.settle is not None and await self.settle():
            return True
        return reading.top_expired()


def same_top(top: Package | None, last: Package | None) -> bool:
    return top is last is None or (top is not None and top.same_as(last))


async def until_expired(reading: TopReading) -> None:
    """Yield to the event loop until a read sent now reaches Redis after the
    top's expire time: the server's clock at its latest (the request of
    `reading` took at least the way back to come back). Redis decides what
    has expired when the read arrives, so the consumer is never called
    early; at worst the read finds the same top and is made again."""
    while not reading.top_expired():
        await asyncio.sleep(0)
