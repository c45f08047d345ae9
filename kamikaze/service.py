"""The service: the Dispatcher follows the queue's top (kamikaze.follower)
and hands each change to the consumer's Runner; the Sweeper deletes what
expires below the top; both until the stop event (kamikaze.runtime sets it
on SIGTERM or SIGINT), reconnecting on their own whenever Redis goes away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from kamikaze import connections
from kamikaze.follower import Change, Follower
from kamikaze.lease import Lease, on_resume
from kamikaze.queue import Queue
from kamikaze.runtime import stop_task
from kamikaze.signals import close_quietly
from kamikaze.sweep import SWEEP_INTERVAL, Sweeper

if TYPE_CHECKING:
    from kamikaze.consumer import Runner
    from kamikaze.http_server import HttpServer
    from kamikaze.metrics import Metrics
    from kamikaze.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 1.0


class Dispatcher:
    """Hands each change of the queue's top to the Runner, reconnecting to
    Redis on its own (see Follower). With a lease (an exclusive service,
    kamikaze.lease), only while it holds the lease: each term starts with a
    follower of its own, on fresh connections, whose first change (the
    current top, read then) is the term's first call; a running call is
    cancelled when the service stops being active."""

    def __init__(
        self,
        settings: Settings,
        runner: Runner,
        metrics: Metrics | None = None,
        lease_length: float | None = None,
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.metrics = metrics
        self.lease: Lease | None = None
        if lease_length is not None:
            self.lease = Lease(self._connect, lease_length, self._lease_changed)
            runner.lease = self.lease
            if metrics is not None:
                metrics.set_role(False, 0)
        self.activated = asyncio.Event()

    def _connect(self) -> Queue:
        return Queue(connections.client(self.settings), self.settings.key)

    def _follower(self) -> Follower:
        return Follower(
            self._connect,
            self.settings.address,
            observer=MetricsObserver(self.metrics) if self.metrics else None,
            backoff_cap=connections.backoff_cap(self.settings),
            settle=self.runner.settle,
        )

    async def run(self) -> None:
        """Run until cancelled; never returns because Redis went away."""
        if self.lease is None:
            await self._follow(self._follower(), None)
            return
        restore = (
            on_resume(self.lease) if threading.current_thread() is threading.main_thread() else None
        )
        keeping = asyncio.create_task(self.lease.run())
        following = asyncio.create_task(self._follow(self._follower(), 0))
        try:
            while True:
                await self._wait_for_activation(keeping, following)
                # A standby's follower may be stuck on a link that the lease
                # found dead: the term's calls come from a new one.
                await stop_task(following, SHUTDOWN_TIMEOUT)
                term = self.lease.term
                following = asyncio.create_task(self._follow(self._follower(), term))
        finally:
            for task in (keeping, following):
                await stop_task(task, SHUTDOWN_TIMEOUT)
            if restore is not None:
                restore()

    async def _wait_for_activation(self, *tasks: asyncio.Task[None]) -> None:
        waiting = asyncio.create_task(self.activated.wait())
        try:
            await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        for task in tasks:
            if task.done():
                task.result()  # neither ends on its own: raise why it did
        self.activated.clear()

    async def _follow(self, follower: Follower, term: int | None) -> None:
        """Deliver the follower's changes; with a lease, only those of the
        term `term` (the standby's follower, term 0, calls nothing)."""
        async for change in follower.changes():
            if self.metrics:
                record_change(self.metrics, change)
            if self.lease is None or self.lease.term == term:
                await self.runner.deliver(change.top)

    def _lease_changed(self, active: bool, term: int) -> None:
        if self.metrics is not None:
            self.metrics.set_role(active, term)
        if active:
            os.environ["KAMIKAZE_TERM"] = str(term)  # for processes the consumer starts
            self.activated.set()
        else:
            os.environ.pop("KAMIKAZE_TERM", None)
            self.runner.interrupt()


class MetricsObserver:
    """Counts reconnections and keeps the `connected` gauge."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.was_connected = False

    def connected(self, up: bool) -> None:
        if up and self.was_connected:
            self.metrics.count_reconnect()
        self.was_connected = self.was_connected or up
        self.metrics.set_connected(up)


def record_change(metrics: Metrics, change: Change) -> None:
    metrics.observe_lag(time.monotonic() - change.woke_at)
    previous = change.previous
    now = change.reading.server_time
    if previous is not None and previous.expire_time is not None and previous.expire_time <= now:
        metrics.observe_expiry_lateness(now - previous.expire_time)


async def serve(
    settings: Settings,
    runner: Runner,
    stop: asyncio.Event,
    sweep_interval: float = SWEEP_INTERVAL,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    lease: float | None = None,
) -> None:
    """Run the dispatcher and the sweep (and the metrics endpoint) until
    `stop` is set, then stop the consumer and return. With `lease` (seconds),
    an exclusive service: of all such services on the queue, the one that
    holds the lease calls its consumer (docs/ha.rst)."""
    metrics, metrics_server = await start_metrics(settings.key, metrics_host, metrics_port)
    runner.metrics = metrics
    how = f", exclusive (a lease of {lease:g} s)" if lease is not None else ""
    log.info("watching %s at %s%s", settings.key, settings.address, how)
    dispatcher = asyncio.create_task(Dispatcher(settings, runner, metrics, lease).run())
    sweep_client = connections.client(settings)
    sweeper = asyncio.create_task(
        Sweeper(Queue(sweep_client, settings.key), sweep_interval, metrics).run()
    )
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({dispatcher, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if dispatcher.done():
            dispatcher.result()  # it never returns on its own: raise why it ended
    finally:
        for task in (stopped, sweeper, dispatcher):
            await stop_task(task, SHUTDOWN_TIMEOUT)
        await runner.cancel()
        await close_quietly(sweep_client)
        if metrics_server is not None:
            metrics_server.close()


async def start_metrics(
    key: str, host: str, port: int | None
) -> tuple[Metrics | None, HttpServer | None]:
    """The Prometheus endpoint, when a port is given (kamikaze[metrics])."""
    if port is None:
        return None, None
    from kamikaze.metrics import Metrics, serve_metrics

    metrics = Metrics(key)
    server = await serve_metrics(metrics, host, port)
    bound = server.sockets[0].getsockname()
    log.info("metrics at http://%s:%d/metrics, health at /health", bound[0], bound[1])
    return metrics, server
