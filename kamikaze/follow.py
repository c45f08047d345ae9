"""Following a queue's top: wake on a change signal or the top's expire
time, read the top, report each change; reconnect whenever Redis goes away.
Shared by the service, `kamikaze watch` and `Queue.watch()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kamikaze.queue import Queue, TopReading, is_cluster

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

    from kamikaze.package import Package

log = logging.getLogger("kamikaze.service")

IDLE_RECHECK = 2.0  # seconds between reads of the top (and a PING) when nothing arrives
PONG_TIMEOUT = 1.0  # an idle subscription must answer a PING within this
SUBSCRIBE_TIMEOUT = 5.0
CLOSE_TIMEOUT = 0.5
BACKOFF_BASE = 0.05
BACKOFF_CAP = 2.0
DRAIN_LIMIT = 200  # queued signals a wake-up drains; more are a flood, shed
SENTINEL_BACKOFF_CAP = 0.5  # asking the sentinels is cheap, and a failover is brief
_UNSET: Any = object()


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

    `connect` makes a client for each (re)connection; it is closed after
    each unless `owns_clients` is False. `settle`, awaited before each
    change is reported, gets the caller ready for it (the service cancels
    a running consumer call) and says whether that took long enough for the
    top to be read again. Wrong credentials or permissions,
    or a certificate that does not verify, before the first success are
    raised: retrying cannot mend them. Other failures are logged once per
    outage and retried with capped backoff."""

    def __init__(
        self,
        connect: Callable[[], Redis],
        key: str,
        address: str,
        owns_clients: bool = True,
        observer: Observer | None = None,
        backoff_cap: float = BACKOFF_CAP,
        settle: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.connect = connect
        self.settle = settle
        self.backoff_cap = backoff_cap
        self.key = key
        self.address = address
        self.owns_clients = owns_clients
        self.observer = observer
        self.last_top: Package | None = _UNSET

    async def changes(self) -> AsyncIterator[Change]:
        from kamikaze.errors import is_fatal, is_outage

        outage = Outage(self.address, self.backoff_cap)
        connected = False
        while True:
            client = self.connect()
            signals = Signals(client, self.key)
            try:
                await signals.subscribe()
                queue = Queue(client, self.key)
                woke_at = time.monotonic()
                reading = await queue.read_top()  # only a read of the top proves we are back
                outage.back()
                connected = True
                self._report(True)
                async for change in self._follow(queue, signals, reading, woke_at):
                    yield change
            except Exception as exc:
                if not is_outage(exc) or (not connected and is_fatal(exc)):
                    raise
                # Refusals (a key of the wrong type, a busy script, a replica)
                # count as an outage too, until Redis stops refusing.
                if outage.lost(exc):
                    self._report(False)
            finally:
                await signals.close()
                if self.owns_clients:
                    await close_quietly(client)
            await outage.pause()

    def _report(self, up: bool) -> None:
        if self.observer is not None:
            self.observer.connected(up)

    async def _follow(
        self, queue: Queue, signals: Signals, reading: TopReading, woke_at: float
    ) -> AsyncIterator[Change]:
        interrupted = False  # a call was cut short: make it again, even for the same top
        while True:
            if interrupted or self.last_top is _UNSET or reading.top != self.last_top:
                if await self._stale(reading):
                    interrupted = True
                    woke_at, reading = time.monotonic(), await queue.read_top()
                    continue
                interrupted = False
                previous = None if self.last_top is _UNSET else self.last_top
                self.last_top = reading.top
                yield Change(reading.top, reading, woke_at, previous)
            wait = reading.seconds_to_expiry()  # from now: the consumer may have taken a while
            if wait is not None and wait < IDLE_RECHECK:
                await signals.wait(wait)
            else:
                await signals.wait_or_ping()
            woke_at = time.monotonic()
            reading = await queue.read_top()

    async def _stale(self, reading: TopReading) -> bool:
        """Whether a change must be read again before it is reported: the
        caller took a while to get ready for it (`settle`: a cancelled
        consumer call that finished late), or its top has expired since."""
        if self.settle is not None and await self.settle():
            return True
        return reading.top_expired()


class SignalFeed:
    """Every change signal of a queue, for views (`kamikaze watch`): it
    yields once as soon as it is subscribed, and again after each outage
    (changes before a subscription are not signalled), and keeps the outage
    for a status line. An idle subscription must answer a PING, as in the
    service."""

    def __init__(self, client: Redis, key: str, address: str, quiet: bool = False) -> None:
        self.client = client
        self.key = key
        # quiet: no log lines (a full-screen view shows status() instead)
        self.outage = Outage(address, quiet=quiet)

    def status(self) -> str:
        if self.outage.since is None:
            return ""
        return f"Redis lost {time.monotonic() - self.outage.since:.0f} s ago; reconnecting"

    async def __aiter__(self) -> AsyncIterator[None]:
        from kamikaze.errors import is_outage

        while True:
            signals = Signals(self.client, self.key)
            try:
                await signals.subscribe()
                self.outage.back()
                yield None  # subscribed: what changed before is not signalled, so read again
                while True:
                    while not await signals.wait_or_ping():
                        pass
                    yield None
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.outage.lost(exc)
            finally:
                await signals.close()
            await self.outage.pause()


class Outage:
    """One log line when Redis is lost and one when it is back, and the
    capped, jittered pause between tries."""

    def __init__(self, address: str, cap: float = BACKOFF_CAP, quiet: bool = False) -> None:
        from redis.backoff import ExponentialWithJitterBackoff

        self.address = address
        self.quiet = quiet
        self.backoff = ExponentialWithJitterBackoff(cap=cap, base=BACKOFF_BASE)
        self.failures = 0
        self.since: float | None = None  # time.monotonic() when it began

    def lost(self, exc: BaseException) -> bool:
        """Count a failed try; True when it begins an outage."""
        self.failures += 1
        if self.since is not None:
            return False
        self.since = time.monotonic()
        self._log(logging.ERROR, "lost Redis at %s (%s); reconnecting", self.address, exc)
        return True

    def back(self) -> None:
        if self.since is not None:
            seconds = time.monotonic() - self.since
            self._log(
                logging.INFO, "reconnected to Redis at %s after %.1f s", self.address, seconds
            )
        self.since, self.failures = None, 0

    async def pause(self) -> None:
        await asyncio.sleep(self.backoff.compute(self.failures))

    def _log(self, level: int, message: str, *args: object) -> None:
        if not self.quiet:
            log.log(level, message, *args)


class Signals:
    """The queue's change signals: SUBSCRIBE to 0.1.x's channel on one server,
    SSUBSCRIBE on the node that holds the queue in a Redis Cluster."""

    def __init__(self, client: Redis, key: str) -> None:
        self.client = client
        self.key = key
        self.node_client: Redis | None = None
        self.pubsub: PubSub | None = None

    async def subscribe(self) -> None:
        """Subscribe, and see it confirmed: the caller reads the top only
        then, so that a change between the two still wakes it."""
        from redis.exceptions import TimeoutError

        if is_cluster(self.client):
            self.node_client = await node_client(self.client, self.key)
            self.pubsub = self.node_client.pubsub()
            await self.pubsub.ssubscribe(self.key)
            confirmation = "ssubscribe"
        else:
            self.pubsub = self.client.pubsub()
            await self.pubsub.subscribe(self.key)
            confirmation = "subscribe"
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
        while time.monotonic() < deadline:
            message = await self.pubsub.get_message(timeout=deadline - time.monotonic())
            if message and message["type"] == confirmation:
                return
        raise TimeoutError(f"no confirmation of {confirmation.upper()}")

    async def wait(self, timeout: float) -> bool:
        """Wait for a message (a change signal, or a PONG); False on the timeout.

        The messages that came with it are drained too: a burst of signals
        costs one read of the top, not one per signal. A flood (more than
        DRAIN_LIMIT queued) is shed with the connection, which is cheaper
        than reading it: Redis drops what it had not sent yet."""
        assert self.pubsub is not None
        message = await self.pubsub.get_message(timeout=timeout)
        if message is None:
            return False
        _check(message)
        for _ in range(DRAIN_LIMIT):
            message = await self.pubsub.get_message(timeout=0)
            if message is None:
                return True
            _check(message)
        await self.close()
        await self.subscribe()
        return True

    async def wait_or_ping(self) -> bool:
        """Wait IDLE_RECHECK for a signal; True if one came. If none did, prove
        the subscription alive, since a frozen connection raises no error:
        a PING must be answered (by any message) within PONG_TIMEOUT."""
        from redis.exceptions import ConnectionError

        if await self.wait(IDLE_RECHECK):
            return True
        assert self.pubsub is not None
        await self.pubsub.ping()
        if not await self.wait(PONG_TIMEOUT):
            raise ConnectionError("the subscription stopped answering")
        return False

    async def close(self) -> None:
        for connection in (self.pubsub, self.node_client):
            if connection is not None:
                await close_quietly(connection)
        self.pubsub = self.node_client = None


def _check(message: dict[str, Any]) -> None:
    from redis.exceptions import ConnectionError

    if message["type"] in ("sunsubscribe", "unsubscribe"):
        # A cluster tells shard subscribers when their slot moves away.
        raise ConnectionError("the queue's slot moved to another node")


async def node_client(cluster: Any, key: str) -> Redis:
    """A client for the cluster node that holds `key`, with the cluster's
    credentials and TLS settings."""
    from redis.asyncio import ConnectionPool, Redis

    await cluster.initialize()
    node = cluster.get_node_from_key(key)
    pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
    return Redis.from_pool(pool)


async def close_quietly(connection: PubSub | Redis) -> None:
    """Close a connection, bounded: shutdown must not wait on a dead peer."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await connection.aclose()


async def stop_task(task: asyncio.Task[Any], timeout: float) -> bool:
    """Cancel `task` and wait until it has finished; True if it did in time.

    The cancellation is repeated: a cancellation that lands while a library
    is handling its own timeout can be absorbed, and shutdown must not hang."""
    deadline = time.monotonic() + timeout
    while not task.done() and time.monotonic() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.05)
    return task.done()
