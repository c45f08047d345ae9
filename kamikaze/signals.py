"""A queue's change signals: SUBSCRIBE to its channel (SSUBSCRIBE on the
shard that holds it in a Redis Cluster), wait for one with bursts
coalesced, prove an idle subscription alive with a PING; and an Outage,
the log lines and the capped pause while Redis is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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


class Signals:
    """The queue's change signals: SUBSCRIBE to 0.1.x's channel on one server,
    SSUBSCRIBE on the node that holds the queue in a Redis Cluster."""

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
