"""The service: the Watcher follows the queue's top and hands each change to
the Runner; it reconnects on its own whenever Redis goes away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import TYPE_CHECKING

from kamikaze.follow import (
    BACKOFF_CAP,
    SENTINEL_BACKOFF_CAP,
    Change,
    Follower,
    close_quietly,
    stop_task,
)
from kamikaze.queue import Queue
from kamikaze.sweep import SWEEP_INTERVAL, Sweeper

if TYPE_CHECKING:
    from kamikaze.consumer import Runner
    from kamikaze.http_server import HttpServer
    from kamikaze.metrics import Metrics
    from kamikaze.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 1.0


class Watcher:
    """Hands each change of the queue's top to the Runner, reconnecting to
    Redis on its own (see Follower)."""

    def __init__(self, settings: Settings, runner: Runner, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.runner = runner
        self.metrics = metrics

    async def run(self) -> None:
        """Run until cancelled; never returns because Redis went away."""
        observer = MetricsObserver(self.metrics) if self.metrics else None
        follower = Follower(
            self.settings.client,
            self.settings.key,
            self.settings.address,
            observer=observer,
            backoff_cap=SENTINEL_BACKOFF_CAP if self.settings.sentinels else BACKOFF_CAP,
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
    sweep_interval: float = SWEEP_INTERVAL,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> None:
    """Run the watcher and the sweep (and the metrics endpoint) until SIGTERM
    or SIGINT, then stop the consumer and return."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int, frame: object) -> None:
        # A Python-level handler, not loop.add_signal_handler: it runs even
        # while a plain consumer blocks the loop, so a second signal always
        # exits at once.
        if stopping:
            os.write(2, f"received {signal.Signals(signum).name} again: exiting at once\n".encode())
            os._exit(128 + signum)
        stopping.append(signum)
        loop.call_soon_threadsafe(shut_down, signal.Signals(signum))

    def shut_down(signum: signal.Signals) -> None:
        log.info("received %s, shutting down", signum.name)
        stop.set()

    metrics, metrics_server = await start_metrics(settings.key, metrics_host, metrics_port)
    stopping: list[int] = []
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    runner.metrics = metrics
    log.info("watching %s at %s", settings.key, settings.address)
    watcher = asyncio.create_task(Watcher(settings, runner, metrics).run())
    sweep_client = settings.client()
    sweeper = asyncio.create_task(
        Sweeper(Queue(sweep_client, settings.key), sweep_interval, metrics).run()
    )
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({watcher, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if watcher.done():
            watcher.result()  # the watcher never returns on its own: raise why it ended
    finally:
        for task in (stopped, sweeper, watcher):
            await stop_task(task, SHUTDOWN_TIMEOUT)
        await runner.cancel()
        await close_quietly(sweep_client)
        if metrics_server is not None:
            metrics_server.close()
        if not stopping:  # else the process is on its way out: a second signal still ends it
            for signum, handler in previous.items():
                signal.signal(signum, handler)


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
