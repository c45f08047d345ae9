"""A queue's change signals: SUBSCRIBE to its channel (SSUBSCRIBE on the
shard that holds it in a Redis Cluster), wait for one with bursts
coalesced, prove an idle subscription alive with a PING; one subscription
per process for every follower of a queue on one server (a Channel); and an
Outage, the log lines and the capped pause while Redis is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError

from kamikaze.connections import BACKOFF_CAP, subscription_client
from kamikaze.errors import connection_failure, is_fatal, is_outage

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

IDLE_RECHECK = 2.0  # seconds between reads of the top (and a PING) when nothing arrives
PONG_TIMEOUT = 1.0  # an idle subscription must answer a PING within this
SUBSCRIBE_TIMEOUT = 5.0
CLOSE_TIMEOUT = 0.5
BACKOFF_BASE = 0.05
DRAIN_LIMIT = 200  # queued signals a wake-up drains; more are a flood, shed


class Subscription:
    """One connection subscribed to the queue's change signals: SUBSCRIBE to
    0.1.x's channel on one server, SSUBSCRIBE on the node that holds the queue
    in a Redis Cluster. A Channel reads it for its followers."""

    def __init__(self, client: Redis, key: str) -> None:
        self.client = client
        self.key = key
        self.node_client: Redis | None = None
        self.pubsub: PubSub | None = None
        self.received: list[bytes] = []  # change signals' data, until take()n
        self.shed = False  # signals were dropped since the last take()

    async def subscribe(self) -> None:
        """Subscribe, and see it confirmed: the caller reads the top only
        then, so that a change between the two still wakes it."""
        from redis.exceptions import TimeoutError

        client, sharded = await subscription_client(self.client, self.key)
        self.pubsub = client.pubsub()
        if sharded:
            self.node_client = client
            await self.pubsub.ssubscribe(self.key)
            confirmation = "ssubscribe"
        else:
            await self.pubsub.subscribe(self.key)
            confirmation = "subscribe"
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
        while time.monotonic() < deadline:
            message = await self.pubsub.get_message(timeout=deadline - time.monotonic())
            if message and message["type"] == confirmation:
                return
        raise TimeoutError(f"no confirmation of {confirmation.upper()}")

    async def wait(self, timeout: float) -> bool:
        """Wait for a change signal; False on the timeout.

        The messages that came with it are drained too: a burst of signals
        costs one read of the top, not one per signal. A flood (more than
        DRAIN_LIMIT queued) is shed with the connection, which is cheaper
        than reading it: Redis drops what it had not sent yet."""
        return SIGNAL in await self._receive(timeout)

    def take(self) -> tuple[list[bytes], bool]:
        """The data of the change signals received since the last take(), in
        order, and whether some were dropped (a flood shed) meanwhile."""
        received, shed = self.received, self.shed
        self.received, self.shed = [], False
        return received, shed

    async def _receive(self, timeout: float) -> set[str]:
        """The kinds of message (SIGNAL, PONG) that came within `timeout`
        with the ones behind them; empty on the timeout. The signals' data
        are kept for take()."""
        assert self.pubsub is not None
        deadline = time.monotonic() + timeout
        kinds: set[str] = set()
        while not kinds:
            message = await self.pubsub.get_message(timeout=max(deadline - time.monotonic(), 0))
            if message is None:
                if time.monotonic() >= deadline:
                    return kinds
                continue  # a subscription's confirmation, say: not one of ours
            kinds |= self._kinds(message)
        connection = self.pubsub.connection
        for _ in range(DRAIN_LIMIT):
            # Only what has arrived already: asking with a zero timeout when
            # nothing has costs a cancelled read, a loop round, at each wake-up.
            if connection is None or not await connection.can_read():
                return kinds
            message = await self.pubsub.get_message(timeout=0)
            if message is None:
                return kinds
            kinds |= self._kinds(message)
        await self.close()
        await self.subscribe()
        self.received.clear()
        self.shed = True
        return {SIGNAL}  # some of the shed ones were signals: read again

    def _kinds(self, message: dict[str, Any]) -> set[str]:
        kinds = _kinds(message)
        if SIGNAL in kinds:
            data = message["data"]
            self.received.append(data if isinstance(data, bytes) else str(data).encode())
        return kinds

    async def wait_or_ping(self) -> bool:
        """Wait IDLE_RECHECK for a signal; True if one came. If none did, prove
        the subscription alive, since a frozen connection raises no error:
        the PING must be answered within PONG_TIMEOUT. A signal that comes
        before the PONG (a write that took a while, and published as it ended)
        is one: True."""
        if await self.wait(IDLE_RECHECK):
            return True
        assert self.pubsub is not None
        await self.pubsub.ping()
        deadline = time.monotonic() + PONG_TIMEOUT
        signalled = False
        while True:
            kinds = await self._receive(deadline - time.monotonic())
            if not kinds:
                raise ConnectionError("the subscription stopped answering")
            signalled = signalled or SIGNAL in kinds
            if PONG in kinds:
                return signalled

    async def close(self) -> None:
        for connection in (self.pubsub, self.node_client):
            if connection is not None:
                await close_quietly(connection)
        self.pubsub = self.node_client = None


SIGNAL, PONG = "signal", "pong"


def _kinds(message: dict[str, Any]) -> set[str]:
    """What a message is to us: a change signal, the PONG, or nothing."""
    kind = message["type"]
    if kind in ("sunsubscribe", "unsubscribe"):
        # A cluster tells shard subscribers when their slot moves away.
        raise ConnectionError("the queue's slot moved to another node")
    if kind in ("message", "smessage"):
        return {SIGNAL}
    return {PONG} if kind == "pong" else set()


class Signals:
    """A follower's change signals: what the queue's Channel in this process
    hands it. Subscribe, then wait; take() gives the signals' data."""

    def __init__(self, client: Redis, key: str) -> None:
        self.client = client
        self.key = key
        self.inbox: list[bytes] = []  # change signals' data, until take()n
        self.shed = False  # signals were dropped since the last take()
        self.arrived = asyncio.Event()
        self.channel: Channel | None = None

    async def subscribe(self) -> None:
        """Join the queue's subscription in this process, confirmed: the
        caller reads the top only then, so that a change between the two
        still wakes it."""
        self.channel = await Channel.join(self)

    def deliver(self, signals: list[bytes], shed: bool) -> None:
        self.inbox.extend(signals)
        if shed or len(self.inbox) > DRAIN_LIMIT:  # a follower this far behind reads the top
            self.inbox.clear()
            self.shed = True
        self.arrived.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a change signal; False on the timeout. What came with it
        (a burst) comes at once: one read of the top at most, not one per signal."""
        if not (self.inbox or self.shed):
            self._check()
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.arrived.wait()
        self.arrived.clear()
        self._check()
        return bool(self.inbox) or self.shed

    async def wait_or_ping(self) -> bool:
        """Wait IDLE_RECHECK for a signal; True if one came. If none did, return
        False only once the channel has heard from Redis since (its PING of an
        idle subscription), since a frozen connection raises no error."""
        if await self.wait(IDLE_RECHECK):
            return True
        assert self.channel is not None
        heard = self.channel.heard
        deadline = time.monotonic() + IDLE_RECHECK + PONG_TIMEOUT
        while self.channel.heard == heard:
            if await self.wait(deadline - time.monotonic()):
                return True
            if time.monotonic() >= deadline:
                raise ConnectionError("the subscription stopped answering")
        return False

    def take(self) -> tuple[list[bytes], bool]:
        """The data of the change signals received since the last take(), in
        order, and whether some were dropped (a flood shed) meanwhile."""
        received, shed = self.inbox, self.shed
        self.inbox, self.shed = [], False
        return received, shed

    def _check(self) -> None:
        channel = self.channel
        assert channel is not None, "subscribe() first"
        if channel.failure is not None:
            raise ConnectionError("the subscription was lost") from channel.failure

    def abandon(self, why: BaseException) -> None:
        """The caller's link to Redis failed (a frozen one raises nothing):
        the shared subscription may be just as dead, so every follower on it
        subscribes again, on a new connection."""
        if self.channel is not None and self.channel.failure is None:
            self.channel.fail(why)

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.leave(self)
            self.channel = None


class Channel:
    """One subscription to a queue's signals in this process, shared by every
    follower of that queue on that server (per event loop): Redis sends each
    signal once per process however many follow the queue here, and one
    reader hands it to them all. On a cluster or through Sentinel each
    follower has one of its own."""

    def __init__(self, client: Redis, key: str, identity: tuple[Any, ...] | None) -> None:
        self.subscription = Subscription(client, key)
        self.identity = identity
        self.members: set[Signals] = set()
        self.failure: BaseException | None = None
        self.opened = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None
        self.heard = 0  # times Redis answered: a signal, or the PONG of an idle PING

    @classmethod
    async def join(cls, member: Signals) -> Channel:
        identity = shared_identity(member.client, member.key)
        shared = _shared()
        channel = shared.get(identity) if identity is not None else None
        if channel is None or channel.failure is not None:
            client = private_client(member.client) if identity is not None else member.client
            channel = cls(client, member.key, identity)
            if identity is not None:
                shared[identity] = channel
            try:
                await channel.subscription.subscribe()
            except BaseException as exc:
                channel.fail(exc)
                raise
            channel.reader = asyncio.create_task(channel.read(), name="kamikaze-signals")
            channel.opened.set()
        await channel.opened.wait()
        if channel.failure is not None:
            raise ConnectionError("the subscription was lost") from channel.failure
        channel.members.add(member)
        return channel

    async def read(self) -> None:
        try:
            while True:
                signalled = await self.subscription.wait_or_ping()
                self.heard += 1
                signals, shed = self.subscription.take()
                for member in list(self.members):
                    if signalled:
                        member.deliver(signals, shed)
                    else:
                        member.arrived.set()  # alive: a member waiting for proof hears it
        except Exception as exc:
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        """The subscription is lost: every follower hears so and subscribes again."""
        self.failure = exc
        self._forget()
        self.opened.set()
        for member in self.members:
            member.arrived.set()

    async def leave(self, member: Signals) -> None:
        self.members.discard(member)
        if self.members:
            return
        self._forget()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        await self.subscription.close()
        if self.identity is not None:
            await close_quietly(self.subscription.client)

    def _forget(self) -> None:
        shared = _shared()
        if self.identity is not None and shared.get(self.identity) is self:
            del shared[self.identity]


# The channels of each running event loop (a loop that ends takes its own along).
_channels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, Channel]] = (
    weakref.WeakKeyDictionary()
)


def _shared() -> dict[Any, Channel]:
    return _channels.setdefault(asyncio.get_running_loop(), {})


def shared_identity(client: Redis, key: str) -> tuple[Any, ...] | None:
    """What makes two followers' subscriptions the same, in one event loop:
    the server (a plain connection pool's address, database and user) and the
    key; None when a follower needs one of its own (a cluster, Sentinel)."""
    from redis.asyncio import ConnectionPool

    from kamikaze.connections import is_cluster

    pool = getattr(client, "connection_pool", None)
    if is_cluster(client) or type(pool) is not ConnectionPool:
        return None
    kwargs = pool.connection_kwargs
    server = tuple(
        str(kwargs.get(name)) for name in ("host", "port", "path", "db", "username", "password")
    )
    return (pool.connection_class, server, key)


def private_client(client: Redis) -> Redis:
    """A client of the channel's own on `client`'s server: the channel
    outlives the follower that opened it."""
    from redis.asyncio import ConnectionPool, Redis

    pool = client.connection_pool
    own = ConnectionPool(connection_class=pool.connection_class, **pool.connection_kwargs)
    return Redis.from_pool(own)


async def close_quietly(connection: PubSub | Redis) -> None:
    """Close a connection, bounded: shutdown must not wait on a dead peer."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await connection.aclose()


class Outage:
    """One log line when Redis is lost and one when it is back, and the
    capped, jittered pause between tries."""

    def __init__(
        self,
        address: str,
        cap: float = BACKOFF_CAP,
        quiet: bool = False,
        logger: str = "kamikaze.service",
    ) -> None:
        self.address = address
        self.quiet = quiet
        self.log = logging.getLogger(logger)
        self.backoff = ExponentialWithJitterBackoff(cap=cap, base=BACKOFF_BASE)
        self.failures = 0
        self.since: float | None = None  # time.monotonic() when it began

    def lost(self, exc: BaseException) -> bool:
        """Count a failed try; True when it begins an outage."""
        self.failures += 1
        if self.since is not None:
            return False
        self.since = time.monotonic()
        link = isinstance(exc, ConnectionError | TimeoutError | OSError)
        why = connection_failure(exc) if link else exc  # no errno numbers
        self._log(logging.ERROR, "lost Redis at %s (%s); reconnecting", self.address, why)
        return True

    def back(self) -> None:
        if self.since is not None:
            seconds = time.monotonic() - self.since
            self._log(
                logging.INFO, "reconnected to Redis at %s after %.1f s", self.address, seconds
            )
        self.since, self.failures = None, 0

    @contextlib.asynccontextmanager
    async def attempt(
        self,
        *connections: Signals | Redis | None,
        fatal: bool = False,
        on_lost: Callable[[BaseException], object] | None = None,
    ) -> AsyncIterator[None]:
        """One try at following the queue, until Redis goes away: an outage
        (the link, or Redis refusing for now) ends it, counted, and logged and
        passed to `on_lost` when it begins one; anything else is raised, and
        so are failures retrying cannot mend when `fatal` (before the first
        success). `connections` are closed however it ends."""
        try:
            yield
        except Exception as exc:
            if not is_outage(exc) or (fatal and is_fatal(exc)):
                raise
            if self.lost(exc) and on_lost is not None:
                on_lost(exc)
        finally:
            for connection in connections:
                if isinstance(connection, Signals):
                    await connection.close()
                elif connection is not None:
                    await close_quietly(connection)

    async def pause(self) -> None:
        await asyncio.sleep(self.backoff.compute(self.failures))

    def _log(self, level: int, message: str, *args: object) -> None:
        if not self.quiet:
            self.log.log(level, message, *args)
