"""The service: the Watcher follows the queue's top and hands each change to
the Runner; it reconnects on its own whenever Redis goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from kamikaze.queue import Queue, TopReading, is_cluster
from kamikaze.sweep import SWEEP_INTERVAL, Sweeper

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

    from kamikaze.consumer import Runner
    from kamikaze.package import Package
    from kamikaze.settings import Settings

log = logging.getLogger(__name__)

IDLE_RECHECK = 2.0  # seconds between reads of the top (and a PING) when nothing arrives
PONG_TIMEOUT = 1.0  # an idle subscription must answer a PING within this
SUBSCRIBE_TIMEOUT = 5.0
CLOSE_TIMEOUT = 0.5
SHUTDOWN_TIMEOUT = 1.0
BACKOFF_BASE = 0.05
BACKOFF_CAP = 2.0
_UNSET = object()


class Watcher:
    """Waits for a change signal or the top's expire time, then reads the top."""

    def __init__(self, settings: Settings, runner: Runner) -> None:
        self.settings = settings
        self.runner = runner
        self.last_top: Package | object | None = _UNSET

    async def run(self) -> None:
        """Run until cancelled; never returns because Redis went away.

        Wrong credentials or permissions, or a certificate that does not
        verify, before the first success are raised: retrying cannot mend them."""
        from redis.backoff import ExponentialWithJitterBackoff
        from redis.exceptions import (
            ConnectionError,
            RedisClusterException,
            ResponseError,
            TimeoutError,
        )

        from kamikaze.errors import is_fatal

        backoff = ExponentialWithJitterBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE)
        failures = 0
        lost_at = 0.0
        connected = False
        while True:
            client = self.settings.client()
            signals = Signals(self.settings, client)
            try:
                await signals.subscribe()
                queue = Queue(client, self.settings.key)
                reading = await queue.top()  # only a read of the top proves we are back
                if failures:
                    log.info(
                        "reconnected to Redis at %s after %.1f s",
                        self.settings.address,
                        time.monotonic() - lost_at,
                    )
                failures, connected = 0, True
                await self._follow(queue, signals, reading)
            except (
                ConnectionError,
                TimeoutError,
                OSError,
                ResponseError,
                RedisClusterException,
            ) as exc:
                if not connected and is_fatal(exc):
                    raise
                # ResponseError: Redis refused (a key of the wrong type, a busy
                # script, a replica...): as good as lost, until it stops refusing.
                if not failures:
                    lost_at = time.monotonic()
                    log.error("lost Redis at %s (%s); reconnecting", self.settings.address, exc)
                failures += 1
            finally:
                await signals.close()
                await _close(client)
            await asyncio.sleep(backoff.compute(failures))

    async def _follow(self, queue: Queue, signals: Signals, reading: TopReading) -> None:
        from redis.exceptions import ConnectionError

        while True:
            await self._deliver_if_changed(reading)
            wait = reading.seconds_to_expiry()
            if wait is not None and wait < IDLE_RECHECK:
                await signals.wait(wait)
            elif not await signals.wait(IDLE_RECHECK):
                # Idle: prove the subscription alive, since a frozen connection
                # raises no error. Any message, the PONG or a signal, will do.
                await signals.ping()
                if not await signals.wait(PONG_TIMEOUT):
                    raise ConnectionError("the subscription stopped answering")
            reading = await queue.top()

    async def _deliver_if_changed(self, reading: TopReading) -> None:
        if self.last_top is _UNSET or reading.top != self.last_top:
            self.last_top = reading.top
            await self.runner.deliver(reading.top)


class Signals:
    """The queue's change signals: SUBSCRIBE to 0.1.x's channel on one server,
    SSUBSCRIBE on the node that holds the queue in a Redis Cluster."""

    def __init__(self, settings: Settings, client: Redis) -> None:
        self.settings = settings
        self.client = client
        self.node_client: Redis | None = None
        self.pubsub: PubSub | None = None

    async def subscribe(self) -> None:
        """Subscribe, and see it confirmed: the caller reads the top only
        then, so that a change between the two still wakes it."""
        from redis.exceptions import TimeoutError

        key = self.settings.key
        if is_cluster(self.client):
            await self.client.initialize()
            node = self.client.get_node_from_key(key)  # type: ignore[attr-defined]
            self.node_client = self.settings.node_client(node.host, node.port)
            self.pubsub = self.node_client.pubsub()
            await self.pubsub.ssubscribe(key)
            confirmation = "ssubscribe"
        else:
            self.pubsub = self.client.pubsub()
            await self.pubsub.subscribe(key)
            confirmation = "subscribe"
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
        while time.monotonic() < deadline:
            message = await self.pubsub.get_message(timeout=deadline - time.monotonic())
            if message and message["type"] == confirmation:
                return
        raise TimeoutError(f"no confirmation of {confirmation.upper()}")

    async def wait(self, timeout: float) -> bool:
        """Wait for a message (a change signal, or a PONG); False on the timeout.

        Signals queued meanwhile are not drained: each costs one cheap read of
        the top, while draining costs a timed read at every wake-up."""
        from redis.exceptions import ConnectionError

        assert self.pubsub is not None
        message = await self.pubsub.get_message(timeout=timeout)
        if message is None:
            return False
        if message["type"] in ("sunsubscribe", "unsubscribe"):
            # A cluster tells shard subscribers when their slot moves away.
            raise ConnectionError("the queue's slot moved to another node")
        return True

    async def ping(self) -> None:
        assert self.pubsub is not None
        await self.pubsub.ping()

    async def close(self) -> None:
        await _close(*(c for c in (self.pubsub, self.node_client) if c is not None))


async def _close(*connections: PubSub | Redis) -> None:
    """Close connections, bounded: shutdown must not wait on a dead peer."""
    for connection in connections:
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


async def serve(settings: Settings, runner: Runner, sweep_interval: float = SWEEP_INTERVAL) -> None:
    """Run the watcher and the sweep until SIGTERM or SIGINT, then stop the
    consumer and return."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            log.warning("received %s again: exiting at once", signum.name)
            os._exit(128 + signum)
        log.info("received %s, shutting down", signum.name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    log.info("watching %s at %s", settings.key, settings.address)
    watcher = asyncio.create_task(Watcher(settings, runner).run())
    sweep_client = settings.client()
    sweeper = asyncio.create_task(Sweeper(Queue(sweep_client, settings.key), sweep_interval).run())
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({watcher, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if watcher.done():
            watcher.result()  # the watcher never returns on its own: raise why it ended
    finally:
        for task in (stopped, sweeper, watcher):
            await stop_task(task, SHUTDOWN_TIMEOUT)
        await runner.cancel()
        await _close(sweep_client)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
