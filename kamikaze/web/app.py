"""The web application: the page's files, its state as JSON, the event stream
that pushes each new state to the page, and (with --allow-writes) the writes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path

from aiohttp import web

from kamikaze.web.api import Writes, refuse
from kamikaze.web.guard import host_refusal
from kamikaze.web.hub import Hub

STATIC = Path(__file__).parent / "static"
FILES = {
    "/": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/style.css": ("style.css", "text/css"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
HEARTBEAT = 15.0  # seconds between keep-alive comments on an idle event stream
WRITE_TIMEOUT = 10.0  # a viewer that takes longer to accept an update is dropped
RETRY_MS = 1000  # how soon a page reconnects its event stream
SECURITY_HEADERS = {
    # Nothing but the page's own files runs or loads: a payload can never become code.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def web_app(hub: Hub, writes: Writes, listening_on: str, max_viewers: int) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = host_refusal(request, listening_on)
        response: web.StreamResponse
        if refusal is not None:
            response = refuse(HTTPStatus.FORBIDDEN, refusal)
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # 404, 405...: raised, not returned
                exc.headers.update(SECURITY_HEADERS)
                raise
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    app = web.Application(middlewares=[guard])
    for path, (name, content_type) in FILES.items():
        app.router.add_get(path, static_file((STATIC / name).read_bytes(), content_type))
    app.router.add_get("/api/state", state_handler(hub))
    app.router.add_get("/events", events_handler(hub, max_viewers))
    writes.add_routes(app)
    return app


def static_file(body: bytes, content_type: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    return handle


def state_handler(hub: Hub) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=hub.data, content_type="application/json")

    return handle


def events_handler(hub: Hub, max_viewers: int) -> Handler:
    """Server-sent events: the state now, then each new one, as `data:` lines."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if hub.viewers >= max_viewers:
            return refuse(HTTPStatus.SERVICE_UNAVAILABLE, f"{max_viewers} pages are open already")
        response = web.StreamResponse(
            headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream"}
        )
        await response.prepare(request)
        hub.viewers += 1
        try:
            await stream(hub, response)
        finally:
            hub.viewers -= 1
        return response

    return handle


async def stream(hub: Hub, response: web.StreamResponse) -> None:
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(WRITE_TIMEOUT):
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
        seen = 0
        while not hub.closed:
            version = await hub.wait(seen, HEARTBEAT)
            if hub.closed:
                return
            message = b": keep-alive\n\n" if version == seen else hub.message_for(seen)
            seen = version
            async with asyncio.timeout(WRITE_TIMEOUT):
                await response.write(message)
