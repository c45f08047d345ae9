"""The lease of an exclusive service (`kamikaze service --exclusive`,
docs/ha.rst): of all exclusive services on one queue, the one that holds
the lease is active and calls its consumer; the others are on standby.

Never two active: the holder renews the lease every quarter of its length,
and stops being active when a renewal has not come back in time, by its own
monotonic clock, before the lease can have expired on the server (the
length, less a margin for clock drift); and on any lost connection at once.
A standby takes a free lease only once no earlier holder's can still be
valid by what it has seen (a lease that vanished with Redis' data included):
at once when the holder released it, else when its time has run out.
Each term of activity has a number above any before it: the fencing token
(`kamikaze.term()`, KAMIKAZE_TERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kamikaze.signals import Outage, Signals

if TYPE_CHECKING:
    from kamikaze.queue import Queue

log = logging.getLogger("kamikaze.service")

DEFAULT_LEASE = 0.8  # seconds: a standby takes over within about this after a crash
DRIFT = 0.01  # how much faster our clock may run than the server's
MARGIN = 0.05  # seconds before the lease's end on the server that a holder stops


class Lease:
    """Keeps (or waits for) the lease of `queue`; `changed(active, term)` is
    called, synchronously, each time this service becomes active or stops."""

    def __init__(
        self,
        connect: Callable[[], Queue],
        length: float = DEFAULT_LEASE,
        changed: Callable[[bool, int], None] | None = None,
    ) -> None:
        self.connect = connect
        self.length = length
        self.changed = changed
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self.term = 0  # this service's term while active, else 0
        self.highest = 0  # the highest term seen: a new one is above it
        self.valid_until = 0.0  # monotonic: active until then, unless renewed
        self.free_at = time.monotonic() + length  # no earlier holder's lease is valid after
        self._expiry: asyncio.TimerHandle | None = None
        self._outage = Outage("the lease", quiet=True)

    @property
    def active(self) -> bool:
        return self.term > 0 and time.monotonic() < self.valid_until

    def stop_being_active(self, why: str) -> None:
        if self.term == 0:
            return
        term, self.term = self.term, 0
        self.valid_until = 0.0
        if self._expiry is not None:
            self._expiry.cancel()
        log.warning("standby now (term %d ended: %s)", term, why)
        if self.changed is not None:
            self.changed(False, term)

    def _become_active(self, term: int, sent: float) -> None:
        self.term = self.highest = term
        self._extend(sent)
        log.info("active now, term %d", term)
        if self.changed is not None:
            self.changed(True, term)

    def _extend(self, sent: float) -> None:
        """The lease was set at the server no earlier than `sent`: it holds
        there until at least sent + length, by the server's clock."""
        self.valid_until = sent + self.length * (1 - DRIFT) - MARGIN
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = asyncio.get_running_loop().call_at(
            self.valid_until, self.stop_being_active, "its renewal did not come back in time"
        )

    def resumed(self) -> None:
        """After the process was stopped (SIGCONT): a lease whose time ran
        out meanwhile ends before anything else runs."""
        if self.term and time.monotonic() >= self.valid_until:
            self.stop_being_active("the process was paused past its lease")

    async def run(self) -> None:
        """Keep the lease, or wait for it, until cancelled; rides out Redis
        outages (as standby); releases the lease when cancelled."""
        outage = self._outage
        while True:
            queue = self.connect()
            signals = Signals(queue.redis, queue.key)
            try:
                async with outage.attempt(signals, queue.redis, on_lost=self._refused):
                    await signals.subscribe()
                    try:
                        await self._keep(queue, signals)
                    except asyncio.CancelledError:
                        await self._release(queue)
                        raise
                    except Exception as exc:
                        if is_link_failure(exc):
                            signals.abandon(exc)  # the followers' link too, at once
                        raise
            finally:
                self.stop_being_active("Redis was lost")
            await outage.pause()

    def _refused(self, exc: BaseException) -> None:
        """Once an outage of the lease begins: Redis refusing it (a key of
        another kind, say) is said; a lost link the follower says already."""
        if not is_link_failure(exc):
            log.error("cannot take or keep the lease (%s); standby until it can", exc)

    async def _call(self, queue: Queue, op: str, term: int) -> Any:
        """One lua/lease.lua call, given a quarter of the lease to come back."""
        keys = [queue.key, queue.keys.lease, queue.keys.terms]
        args: list[str | int] = [op, self.owner, int(self.length * 1000), term]
        return await asyncio.wait_for(queue._script("lease")(keys=keys, args=args), self.length / 4)

    async def _keep(self, queue: Queue, signals: Signals) -> None:
        while True:
            sent = time.monotonic()
            if self.term:
                op, term = "renew", self.term
            elif sent >= self.free_at:
                op, term = "acquire", self.highest
            else:
                op, term = "look", 0
            held, holder_term, remaining, holder = await self._call(queue, op, term)
            self._outage.back()  # a reply: what failed before works again
            self._seen(int(holder_term), int(remaining), holder)
            if op == "renew":
                if int(held):
                    self._extend(sent)
                else:
                    self.stop_being_active("another service holds the lease")
            elif op == "acquire" and int(held):
                self._become_active(int(holder_term), sent)
            await self._pause(signals)

    def _seen(self, term: int, remaining_ms: int, holder: Any) -> None:
        """What the lease said: its holder's term and how long it lasts."""
        self.highest = max(self.highest, term)
        if term and holder != self.owner and remaining_ms > 0:
            self.free_at = max(self.free_at, time.monotonic() + remaining_ms / 1000)

    async def _pause(self, signals: Signals) -> None:
        """Until the next renewal (a quarter of the lease), or, on standby,
        until the lease may be free: at once when its holder releases it."""
        wait = self.length / 4
        if not self.term:
            wait = min(wait, max(self.free_at - time.monotonic(), 0.005))
        if await signals.wait(wait):
            received, _ = signals.take()
            if any(data.startswith(b"kamikaze-lease released") for data in received):
                self.free_at = time.monotonic()

    async def _release(self, queue: Queue) -> None:
        """Give the lease up on the way out (SIGTERM): a standby takes over at once."""
        if not self.term:
            return
        term = self.term
        self.stop_being_active("the service is stopping")
        with contextlib.suppress(Exception):
            await self._call(queue, "release", term)


def on_resume(lease: Lease) -> Callable[[], None]:
    """Install a SIGCONT handler that checks the lease first thing after a
    pause; returns how to remove it. A plain signal handler, not the event
    loop's: it runs before the loop hands out the timers that fell due
    meanwhile, so a coroutine consumer is cancelled before it goes on."""
    previous = signal.signal(signal.SIGCONT, lambda signum, frame: lease.resumed())

    def restore() -> None:
        signal.signal(signal.SIGCONT, previous)

    return restore


def is_link_failure(exc: BaseException) -> bool:
    """The connection failed or froze (no reply in time), as opposed to Redis refusing."""
    from redis.exceptions import ConnectionError, TimeoutError

    return isinstance(exc, ConnectionError | TimeoutError | OSError | asyncio.TimeoutError)
