"""Prometheus metrics of the service, served with /health on kamikaze's HTTP stack."""

from __future__ import annotations

import json
from http import HTTPStatus

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from kamikaze.http_server import HttpServer, serve

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
        self._active_gauge = gauge(
            "kamikaze_active", "1 while this exclusive service is active, else 0."
        )
        self._term_gauge = gauge(
            "kamikaze_term", "The exclusive service's current term (0: standby)."
        )
        self.role: str | None = None  # "active" or "standby" for an exclusive service
        self.term = 0

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

    def set_role(self, active: bool, term: int) -> None:
        """An exclusive service's state: active (with its term) or standby."""
        self.role = "active" if active else "standby"
        self.term = term if active else 0
        self._active_gauge.set(1 if active else 0)
        self._term_gauge.set(self.term)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def serve_metrics(metrics: Metrics, host: str, port: int) -> HttpServer:
    """Serve GET/HEAD /metrics and /health (or /healthz); port 0 picks a free port.
    Raises ListenError (an OSError) when host:port cannot be listened on."""
    return await serve(metrics_app(metrics), host, port, what="metrics")


def metrics_app(metrics: Metrics) -> web.Application:
    async def metrics_page(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health_page(request: web.Request) -> web.Response:
        state = "connected" if metrics.connected else "disconnected"
        status = HTTPStatus.OK if metrics.connected else HTTPStatus.SERVICE_UNAVAILABLE
        health: dict[str, object] = {"redis": state}
        if metrics.role is not None:  # an exclusive service: which one calls its consumer
            health |= {"role": metrics.role, "term": metrics.term}
        body = json.dumps(health).encode()
        return web.Response(body=body, status=status, headers={"Content-Type": "application/json"})

    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    for path in ("/health", "/healthz"):
        app.router.add_get(path, health_page)
    return app
