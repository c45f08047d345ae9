"""Prometheus metrics of the service, and a minimal asyncio HTTP server for /metrics and /health."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from http import HTTPStatus

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUEST_TIMEOUT = 5.0  # seconds a client gets to send its request head and read the answer
MAX_REQUEST_HEAD = 16 * 1024

Page = tuple[HTTPStatus, str, bytes]


class Metrics:
    """The service's metrics on a registry of their own, all labelled queue="<key>"."""

    def __init__(self, key: str) -> None:
        self.registry = CollectorRegistry()
        # Label values must encode as UTF-8; a key may hold surrogate-escaped bytes.
        queue = key.encode("utf-8", "surrogateescape").decode("utf-8", "replace")

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, ["queue"], registry=self.registry).labels(queue)

        def histogram(name: str, doc: str) -> Histogram:
            metric = Histogram(name, doc, ["queue"], registry=self.registry, buckets=BUCKETS)
            return metric.labels(queue)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, ["queue"], registry=self.registry).labels(queue)

        self._calls = counter("kamikaze_consumer_calls_total", "Consumer calls.")
        self._errors = counter("kamikaze_consumer_errors_total", "Consumer calls that failed.")
        self._reconnects = counter("kamikaze_reconnects_total", "Reconnections to Redis.")
        self._duration = histogram(
            "kamikaze_consumer_duration_seconds", "Time a consumer call took."
        )
        self._lag = histogram(
            "kamikaze_change_to_call_lag_seconds",
            "Time from a change of the top being seen to the consumer being called.",
        )
        self._lateness = histogram(
            "kamikaze_expiry_lateness_seconds",
            "How long after its expire time an expired top was acted on.",
        )
        self._queue_size = gauge("kamikaze_queue_size", "Packages in the queue.")
        self._connected_gauge = gauge(
            "kamikaze_redis_connected", "1 while connected to Redis, else 0."
        )
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    def observe_call(self, duration: float, failed: bool) -> None:
        self._calls.inc()
        if failed:
            self._errors.inc()
        self._duration.observe(max(duration, 0.0))

    # Negative values (clock skew) are clamped to 0 so histogram sums never decrease.
    def observe_lag(self, seconds: float) -> None:
        self._lag.observe(max(seconds, 0.0))

    def observe_expiry_lateness(self, seconds: float) -> None:
        self._lateness.observe(max(seconds, 0.0))

    def count_reconnect(self) -> None:
        self._reconnects.inc()

    def set_queue_size(self, n: int) -> None:
        self._queue_size.set(n)

    def set_connected(self, connected: bool) -> None:
        self._connected = connected
        self._connected_gauge.set(1 if connected else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def serve_metrics(metrics: Metrics, host: str, port: int) -> asyncio.Server:
    """Serve GET/HEAD /metrics and /health (or /healthz); port 0 picks a free port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(metrics, reader, writer)

    return await asyncio.start_server(handle, host, port, limit=MAX_REQUEST_HEAD)


async def _serve_connection(
    metrics: Metrics, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            response = await _answer(metrics, reader)
            if response:
                writer.write(response)
                await writer.drain()
    except (TimeoutError, OSError):
        writer.transport.abort()
    finally:
        writer.close()


async def _answer(metrics: Metrics, reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client went away before finishing its request
    except asyncio.LimitOverrunError:
        return _response(_error(HTTPStatus.BAD_REQUEST))
    return _route(metrics, head)


def _route(metrics: Metrics, head: bytes) -> bytes:
    request_line, *header_lines = head.removesuffix(b"\r\n\r\n").split(b"\r\n")
    try:
        method, target, version = request_line.decode("ascii").split(" ")
    except ValueError:
        return _response(_error(HTTPStatus.BAD_REQUEST))
    if not version.startswith("HTTP/1.") or any(b":" not in line for line in header_lines):
        return _response(_error(HTTPStatus.BAD_REQUEST))
    page = _PAGES.get(target.partition("?")[0])
    if page is None:
        return _response(_error(HTTPStatus.NOT_FOUND))
    if method not in ("GET", "HEAD"):
        return _response(_error(HTTPStatus.METHOD_NOT_ALLOWED), allow="GET, HEAD")
    return _response(page(metrics), with_body=method == "GET")


def _metrics_page(metrics: Metrics) -> Page:
    return HTTPStatus.OK, CONTENT_TYPE_LATEST, metrics.render()


def _health_page(metrics: Metrics) -> Page:
    status = HTTPStatus.OK if metrics.connected else HTTPStatus.SERVICE_UNAVAILABLE
    state = "connected" if metrics.connected else "disconnected"
    return status, "application/json", json.dumps({"redis": state}).encode()


_PAGES: dict[str, Callable[[Metrics], Page]] = {
    "/metrics": _metrics_page,
    "/health": _health_page,
    "/healthz": _health_page,
}


def _error(status: HTTPStatus) -> Page:
    return status, "text/plain; charset=utf-8", f"{status.phrase}\n".encode()


def _response(page: Page, with_body: bool = True, allow: str | None = None) -> bytes:
    status, content_type, body = page
    headers = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if allow:
        headers.append(f"Allow: {allow}")
    return "\r\n".join([*headers, "", ""]).encode("latin-1") + (body if with_body else b"")
