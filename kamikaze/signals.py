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
from redis.exceptions import ConnectionError

from kamikaze.connections import BACKOFF_CAP, subscription_client
from kamikaze.errors import is_fatal, is_outage

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = logging.getLogger("kamikaze.service")

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
        connection = self.pubsub.connection
        for _ in range(DRAIN_LIMIT):
            # Only what has arrived already: asking with a zero timeout when
            # nothing has costs a cancelled read, a loop round, at each wake-up.
            if connection is None or not await connection.can_read():
                return True
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
    if message["type"] in ("sunsubscribe", "unsubscribe"):
        # A cluster tells shard subscribers when their slot moves away.
        raise ConnectionError("the queue's slot moved to another node")


async def close_quietly(connection: PubSub | Redis) -> None:
    """Close a connection, bounded: shutdown must not wait on a dead peer."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await connection.aclose()


class Outage:
    """One log line when Redis is lost and one when it is back, and the
    capped, jittered pause between tries."""

    def __init__(self, address: str, cap: float = BACKOFF_CAP, quiet: bool = False) -> None:
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
            log.log(level, message, *args)
