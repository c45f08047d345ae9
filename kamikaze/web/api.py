"""The writes the page can make with --allow-writes: push and remove, as JSON.

Each answers JSON: what was done (200), or {"error": one line}: 400 for bad
input (nothing is written), 403 when refused (guard.py), 503 when Redis
cannot be reached.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from kamikaze.errors import redis_error_line
from kamikaze.http_server import BriefLines
from kamikaze.package import as_bytes, check_expire_time
from kamikaze.queue import Queue
from kamikaze.settings import Settings
from kamikaze.web.guard import shorten, write_refusal
from kamikaze.web.page import expire_text

log = logging.getLogger("kamikaze.web")
# Anyone who reaches the port can be refused: at most one line of each kind per
# 10 s, with a count of the others (the HTTP stack's brief lines).
refusals = logging.getLogger("kamikaze.web.refusals")
refusals.addFilter(BriefLines())

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadInput(ValueError):
    """A request that cannot be carried out as given: the message names the field."""


def reply(status: int, **fields: Any) -> web.Response:
    return web.json_response(fields, status=status)


def refuse(status: int, message: str) -> web.Response:
    return reply(status, error=message)


class Writes:
    """The write endpoints: `token` None means the page is read-only."""

    def __init__(self, queue: Queue, settings: Settings, token: str | None) -> None:
        self.queue = queue
        self.settings = settings
        self.token = token

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/push", self._guarded(self.push))
        app.router.add_post("/api/remove", self._guarded(self.remove))

    def _guarded(self, handle: Callable[[dict[str, Any], str], Awaitable[web.Response]]) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if self.token is None:
                return refuse(
                    HTTPStatus.FORBIDDEN, "read-only: start kamikaze web with --allow-writes"
                )
            refusal = write_refusal(request, self.token)
            if refusal is not None:
                refusals.warning("refused a write from %s: %s", request.remote, refusal)
                return refuse(HTTPStatus.FORBIDDEN, refusal)
            try:
                body = await json_object(request)
                return await handle(body, request.remote or "?")
            except BadInput as exc:
                return refuse(HTTPStatus.BAD_REQUEST, str(exc))
            except Exception as exc:
                from redis.exceptions import RedisClusterException, RedisError

                if not isinstance(exc, (RedisError, RedisClusterException, OSError)):
                    raise
                log.debug("write failed", exc_info=True)
                return refuse(HTTPStatus.SERVICE_UNAVAILABLE, redis_error_line(self.settings, exc))

        return guarded

    async def push(self, body: dict[str, Any], remote: str) -> web.Response:
        payload = text_field(body, "payload")
        ttl = number_field(body, "ttl", positive=True)
        priority = number_field(body, "priority")
        try:
            check_expire_time(ttl)
        except ValueError as exc:
            raise BadInput(f"ttl: {exc}") from None
        package = await self.queue.push(payload, ttl, priority)
        log.info(
            "pushed %r (TTL %g s, priority %g) for %s", shorten(payload), ttl, priority, remote
        )
        return reply(
            HTTPStatus.OK,
            pushed={
                "payload": package.payload,
                "priority": repr(package.score),
                "expire_text": expire_text(package),
            },
        )

    async def remove(self, body: dict[str, Any], remote: str) -> web.Response:
        payload = text_field(body, "payload")
        removed = await self.queue.remove(payload)
        log.info(
            "removed %d package%s with payload %r for %s",
            removed, "" if removed == 1 else "s", shorten(payload), remote,
        )  # fmt: skip
        return reply(HTTPStatus.OK, removed=removed)


async def json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise BadInput("send a JSON object (Content-Type: application/json)")
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise BadInput("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadInput("send a JSON object")
    return body


def text_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise BadInput(f"{name}: a string is needed")
    try:
        as_bytes(value)
    except UnicodeEncodeError:
        raise BadInput(f"{name}: not valid text (a lone surrogate)") from None
    return value


def number_field(body: dict[str, Any], name: str, positive: bool = False) -> float:
    """A finite number, given as a JSON number or as text (a form field's value)."""
    from kamikaze.parameters import finite, quoted
    from kamikaze.parameters import positive as positive_number

    value = body.get(name)
    if value is None or value == "":
        raise BadInput(f"{name}: a number is needed")
    try:  # the CLI's kinds of value decide (kamikaze.parameters)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{quoted(str(value))} is not a number")  # true is not 1
        return (positive_number if positive else finite)(str(value))
    except ValueError as exc:
        raise BadInput(f"{name}: {exc}") from None
