"""The service: the Dispatcher follows the queue's top (kamikaze.follower)
and hands each change to the consumer's Runner; the Sweeper deletes what
expires below the top; both until the stop event (kamikaze.runtime sets it
on SIGTERM or SIGINT), reconnecting on their own whenever Redis goes away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from kamikaze import connections
from kamikaze.follower import Change, Follower
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
    Redis on its own (see Follower)."""

    def __init__(self, settings: Settings, runner: Runner, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.runner = runner
        self.metrics = metrics

    async def run(self) -> None:
        """Run until cancelled; never returns because Redis went away."""
        settings = self.settings
        follower = Follower(
            lambda: Queue(connections.client(settings), settings.key),
            settings.address,
            observer=MetricsObserver(self.metrics) if self.metrics else None,
            backoff_cap=connections.backoff_cap(settings),
            settle=self.runner.settle,
        )
        async for change in follower.changes():
            if self.metrics:
                record_change(self.metrics, change)
            await self.runner.deliver(change.top)


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
) -> None:
    """Run the dispatcher and the sweep (and the metrics endpoint) until
    `stop` is set, then stop the consumer and return."""
    metrics, metrics_server = await start_metrics(settings.key, metrics_host, metrics_port)
    runner.metrics = metrics
    log.info("watching %s at %s", settings.key, settings.address)
    dispatcher = asyncio.create_task(Dispatcher(settings, runner, metrics).run())
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
