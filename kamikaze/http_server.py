"""kamikaze's HTTP stack: an aiohttp application served on the running event loop
(uvloop when installed), guarded for a service that must stay answerable.

- A connection cap: at most ``max_connections`` open connections (fewer under a
  low ``ulimit -n``). A new connection past the cap closes the oldest one that is
  not being answered, so idle or slow clients can never lock a health probe out,
  and the process never runs out of file descriptors.
- Timeouts: a connection that has not sent a complete request within
  IDLE_TIMEOUT seconds, or stays idle that long between requests, is closed.
- Brief logs: a failed request or accept() is one line (the traceback only when
  DEBUG is on), and each kind is logged at most once per LOG_INTERVAL, with a
  count of the ones left out.
- Requests are parsed by aiohttp, strictly: a malformed request (bare LF line
  endings included) is answered 400 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from kamikaze.errors import ListenError

MAX_CONNECTIONS = 100
IDLE_TIMEOUT = 5.0  # aiohttp >= 3.14.5 applies it before the first request too
LOG_INTERVAL = 10.0
ACCEPT_FAILED = "socket.accept() out of system resource"  # asyncio's message

log = logging.getLogger("kamikaze.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BriefLines(logging.Filter):
    """One line per record, each kind (message template) at most once per interval."""

    def __init__(
        self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._last: dict[object, float] = {}
        self._left_out: dict[object, int] = {}

    def forget(self) -> None:
        self._last.clear()
        self._left_out.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        if logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return True
        kind, now = record.msg, self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._left_out[kind] = self._left_out.get(kind, 0) + 1
            return False
        self._last[kind] = now
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += f": {one_line(record.exc_info[1])}"
        if left_out := self._left_out.pop(kind, 0):
            message += f" (and {left_out} more like it in {self.interval:g} s)"
        record.msg, record.args = message, None
        record.exc_info = record.exc_text = None
        return True


brief_lines = BriefLines()
log.addFilter(brief_lines)


def one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def os_reason(exc: OSError) -> str:
    """'address already in use', without '[Errno 98]' or asyncio's wording around it."""
    if exc.errno is not None and exc.errno > 0:
        reason = os.strerror(exc.errno)
    else:
        reason = exc.strerror or one_line(exc)
    return reason[:1].lower() + reason[1:]


def connection_cap(wanted: int = MAX_CONNECTIONS) -> int:
    """`wanted`, or a quarter of the open-file limit when that is lower (at least 4)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(4, min(wanted, soft // 4))


class ConnectionCap:
    """Wraps the server's protocol factory: a new connection past the limit closes
    the oldest open connection whose request is not being answered."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._busy: set[RequestHandler] = set()

    @web.middleware
    async def track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = request.protocol
        self._busy.add(protocol)
        try:
            return await handler(request)
        finally:
            self._busy.discard(protocol)

    def factory(self, server: web.Server) -> Callable[[], RequestHandler]:
        def make() -> RequestHandler:
            self._make_room(server)
            return server()

        return make

    def _make_room(self, server: web.Server) -> None:
        open_ = [h for h in server.connections if h.transport is not None]
        excess = len(open_) + 1 - self.limit
        for handler in open_:  # oldest first
            if excess <= 0:
                return
            if handler not in self._busy and handler.transport is not None:
                handler.transport.abort()
                excess -= 1


class HttpServer:
    """A running application: its listening sockets, and how to stop it."""

    def __init__(
        self,
        runner: web.AppRunner,
        listener: asyncio.Server,
        restore: Callable[[], None],
    ) -> None:
        self._runner = runner
        self._listener = listener
        self._restore = restore

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._listener.sockets)

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._listener.close()
        server = self._runner.server
        for handler in server.connections if server else ():
            if handler.transport is not None:
                handler.transport.abort()
        self._restore()

    async def wait_closed(self) -> None:
        self.close()
        await self._runner.cleanup()


async def serve(
    app: web.Application,
    host: str,
    port: int,
    what: str = "HTTP",
    max_connections: int = MAX_CONNECTIONS,
) -> HttpServer:
    """Serve `app` on host:port (port 0 picks a free one); raises ListenError,
    whose text says `what` cannot be served where, and why."""
    cap = ConnectionCap(connection_cap(max_connections))
    app.middlewares.append(cap.track)
    runner = web.AppRunner(
        app, access_log=None, keepalive_timeout=IDLE_TIMEOUT, logger=log, handle_signals=False
    )
    await runner.setup()
    assert runner.server is not None
    loop = asyncio.get_running_loop()
    try:
        listener = await loop.create_server(
            cap.factory(runner.server), host, port, backlog=backlog(loop), reuse_address=True
        )
    except OSError as exc:
        await runner.cleanup()
        raise ListenError(what, host, port, exc) from None
    return HttpServer(runner, listener, brief_accept_errors(loop))


def backlog(loop: asyncio.AbstractEventLoop) -> int:
    """The listen queue. asyncio accepts up to this many connections at a time before
    it makes their protocols (before the cap can close any): a short queue keeps that
    burst of descriptors small. uvloop makes each protocol as it accepts: a long
    queue lets a burst of connects in without dropping (and delaying) a probe's."""
    return 1024 if type(loop).__module__.startswith("uvloop") else 128


def brief_accept_errors(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """asyncio reports each failed accept() (EMFILE...) with a traceback; make it one
    brief line. Returns how to put the loop's previous handler back."""
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if context.get("message") == ACCEPT_FAILED and isinstance(exc, OSError):
            log.error("cannot accept connections: %s", os_reason(exc))
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)

    def restore() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            if loop.get_exception_handler() is handle:
                loop.set_exception_handler(previous)

    return restore
