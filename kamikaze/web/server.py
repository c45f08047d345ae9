"""The `kamikaze web` process: one Redis client and one feed, the HTTP server,
and a clean stop when kamikaze.runtime sets the stop event (SIGTERM, SIGINT)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from kamikaze.http_server import connection_cap, serve
from kamikaze.queue import Queue
from kamikaze.runtime import stop_task
from kamikaze.settings import Settings
from kamikaze.signals import close_quietly
from kamikaze.web.api import Writes
from kamikaze.web.app import web_app
from kamikaze.web.feed import QueueFeed
from kamikaze.web.hub import Hub
from kamikaze.web.page import PageState

log = logging.getLogger("kamikaze.web")

MAX_CONNECTIONS = 1000  # fewer under a low `ulimit -n` (http_server.connection_cap)
RESERVED = 16  # connections kept for loading the page and writing, past the open streams
STOP_TIMEOUT = 1.0


@dataclass(frozen=True)
class WebOptions:
    host: str = "127.0.0.1"
    port: int = 8099
    rows: int = 200
    token: str | None = None  # None: read-only

    @property
    def max_viewers(self) -> int:
        return max(connection_cap(MAX_CONNECTIONS) - RESERVED, 1)


async def serve_web(settings: Settings, options: WebOptions, stop: asyncio.Event) -> None:
    """Serve the page until `stop` is set. Raises ListenError when it cannot
    listen, and Redis errors that retrying cannot mend."""
    client = settings.client()
    hub = Hub()
    page = PageState(settings.key, settings.address, options.token is not None, hub)
    writes = Writes(Queue(client, settings.key), settings, options.token)
    app = web_app(hub, writes, options.host, options.max_viewers)
    try:
        server = await serve(
            app, options.host, options.port, what="the web page", max_connections=MAX_CONNECTIONS
        )
    except BaseException:
        await close_quietly(client)
        raise
    host, port = server.sockets[0].getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    mode = "writes allowed with the token" if options.token else "read-only"
    log.info(
        "web page of %s at %s on http://%s:%d/ (%s)",
        settings.key,
        settings.address,
        shown,
        port,
        mode,
    )
    feed = asyncio.create_task(
        QueueFeed(client, settings.key, settings.address, options.rows).run(page)
    )
    try:
        await until_stopped(feed, stop)
    finally:
        hub.close()
        server.close()
        await stop_task(feed, STOP_TIMEOUT)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT):
                await server.wait_closed()
        await close_quietly(client)


async def until_stopped(feed: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Until `stop` is set (then return), or the feed fails (then raise why)."""
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({feed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if feed.done():
            feed.result()
    finally:
        stopped.cancel()
