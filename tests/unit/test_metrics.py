"""Prometheus metrics and the /metrics and /health HTTP server."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kamikaze.metrics import Metrics, serve_metrics

KEY = "test-queue"
NAMES = [
    "kamikaze_consumer_calls_total",
    "kamikaze_consumer_errors_total",
    "kamikaze_reconnects_total",
    "kamikaze_consumer_duration_seconds_count",
    "kamikaze_change_to_call_lag_seconds_count",
    "kamikaze_expiry_lateness_seconds_count",
    "kamikaze_queue_size",
    "kamikaze_redis_connected",
]

Response = tuple[int, dict[str, str], bytes]


def samples(metrics: Metrics) -> dict[str, float]:
    """Every sample without an `le` label, by name; all must carry queue=KEY."""
    values = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            assert sample.labels["queue"] == KEY
            if "le" not in sample.labels:
                values[sample.name] = sample.value
    return values


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(KEY)


@pytest.fixture
async def port(metrics: Metrics) -> AsyncIterator[int]:
    server = await serve_metrics(metrics, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    await server.wait_closed()


async def exchange(port: int, raw: bytes) -> bytes:
    """Send `raw`; everything the server sends until it closes (5 s at most)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return data


async def request(port: int, method: str = "GET", path: str = "/metrics") -> Response:
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    return parse(await exchange(port, head.encode()))


def parse(data: bytes) -> Response:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split(" ")[1]), headers, body


# Metrics ----------------------------------------------------------------------------------


def test_every_metric_is_exposed_with_the_queue_label(metrics: Metrics) -> None:
    values = samples(metrics)
    for name in NAMES:
        assert values[name] == 0, name


def test_observe_call_counts_calls_errors_and_duration(metrics: Metrics) -> None:
    metrics.observe_call(0.01, failed=True)
    values = samples(metrics)
    assert values["kamikaze_consumer_calls_total"] == 1
    assert values["kamikaze_consumer_errors_total"] == 1
    assert values["kamikaze_consumer_duration_seconds_count"] == 1
    assert values["kamikaze_consumer_duration_seconds_sum"] == pytest.approx(0.01)
    metrics.observe_call(0.002, failed=False)
    values = samples(metrics)
    assert values["kamikaze_consumer_calls_total"] == 2
    assert values["kamikaze_consumer_errors_total"] == 1


def test_lag_and_lateness_histograms(metrics: Metrics) -> None:
    metrics.observe_lag(0.0003)
    metrics.observe_lag(0.2)
    metrics.observe_expiry_lateness(1.5)
    metrics.observe_expiry_lateness(-0.1)  # clock skew: counted as 0
    values = samples(metrics)
    assert values["kamikaze_change_to_call_lag_seconds_count"] == 2
    assert values["kamikaze_change_to_call_lag_seconds_sum"] == pytest.approx(0.2003)
    assert values["kamikaze_expiry_lateness_seconds_count"] == 2
    assert values["kamikaze_expiry_lateness_seconds_sum"] == pytest.approx(1.5)


def test_buckets_cover_sub_millisecond_to_seconds(metrics: Metrics) -> None:
    metrics.observe_lag(0.0003)
    text = metrics.render().decode()
    assert 'kamikaze_change_to_call_lag_seconds_bucket{le="0.0005",queue="test-queue"} 1.0' in text
    assert 'kamikaze_change_to_call_lag_seconds_bucket{le="10.0",queue="test-queue"} 1.0' in text


def test_reconnects_queue_size_and_connected(metrics: Metrics) -> None:
    metrics.count_reconnect()
    metrics.set_queue_size(7)
    assert not metrics.connected
    metrics.set_connected(True)
    assert metrics.connected
    values = samples(metrics)
    assert values["kamikaze_reconnects_total"] == 1
    assert values["kamikaze_queue_size"] == 7
    assert values["kamikaze_redis_connected"] == 1
    metrics.set_connected(False)
    assert samples(metrics)["kamikaze_redis_connected"] == 0


def test_two_instances_do_not_collide(metrics: Metrics) -> None:
    other = Metrics(KEY)
    other.observe_call(1.0, failed=False)
    assert samples(metrics)["kamikaze_consumer_calls_total"] == 0
    assert samples(other)["kamikaze_consumer_calls_total"] == 1


def test_not_on_the_global_registry(metrics: Metrics) -> None:
    assert b"kamikaze_" not in prometheus_client.generate_latest()


def test_an_odd_key_is_escaped() -> None:
    key = 'a"b\\c' + b"\xff".decode("utf-8", "surrogateescape")
    text = Metrics(key).render().decode()
    assert 'kamikaze_queue_size{queue="a\\"b\\\\c\ufffd"} 0.0' in text


# HTTP -------------------------------------------------------------------------------------


async def test_get_metrics(metrics: Metrics, port: int) -> None:
    metrics.observe_call(0.01, failed=True)
    status, headers, body = await request(port)
    assert status == 200
    assert headers["Content-Type"] == prometheus_client.CONTENT_TYPE_LATEST
    assert int(headers["Content-Length"]) == len(body)
    assert 'kamikaze_consumer_calls_total{queue="test-queue"} 1.0' in body.decode()
    assert 'kamikaze_consumer_errors_total{queue="test-queue"} 1.0' in body.decode()


async def test_query_string_is_ignored(port: int) -> None:
    status, _, body = await request(port, path="/metrics?name[]=x")
    assert status == 200
    assert b"kamikaze_queue_size" in body


async def test_urllib_can_fetch_metrics(port: int) -> None:
    def fetch() -> tuple[int, bytes]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return answer.status, answer.read()

    status, body = await asyncio.to_thread(fetch)
    assert status == 200
    assert b'kamikaze_redis_connected{queue="test-queue"} 0.0' in body


@pytest.mark.parametrize("path", ["/health", "/healthz"])
async def test_health_follows_the_connection(metrics: Metrics, port: int, path: str) -> None:
    status, headers, body = await request(port, path=path)
    assert (status, json.loads(body)) == (503, {"redis": "disconnected"})
    assert headers["Content-Type"] == "application/json"
    metrics.set_connected(True)
    status, _, body = await request(port, path=path)
    assert (status, json.loads(body)) == (200, {"redis": "connected"})
    metrics.set_connected(False)
    status, _, body = await request(port, path=path)
    assert (status, json.loads(body)) == (503, {"redis": "disconnected"})


async def test_head_has_the_headers_but_no_body(metrics: Metrics, port: int) -> None:
    metrics.set_connected(True)
    _, get_headers, get_body = await request(port, path="/health")
    status, headers, body = await request(port, "HEAD", "/health")
    assert status == 200
    assert body == b""
    assert {**headers, "Date": ""} == {**get_headers, "Date": ""}
    assert int(headers["Content-Length"]) == len(get_body)


async def test_unknown_path_is_404(port: int) -> None:
    status, _, _ = await request(port, path="/nope")
    assert status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_other_methods_are_405(port: int, method: str) -> None:
    status, headers, _ = await request(port, method)
    assert status == 405
    assert sorted(headers["Allow"].replace(" ", "").split(",")) == ["GET", "HEAD"]


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /metrics HTTP/1.1 extra\r\n\r\n",
        b"GET /metrics SPDY/3\r\n\r\n",
        b"\xff\xfe /metrics HTTP/1.1\r\n\r\n",
        b"get /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n",
    ],
    ids=["extra", "spdy", "bytes", "lowercase", "no-colon", "no-host", "oversized"],
)
async def test_malformed_request_is_400(port: int, raw: bytes) -> None:
    status, _, _ = parse(await exchange(port, raw))
    assert status == 400


async def test_bare_lf_line_endings_get_an_answer(port: int) -> None:
    """aiohttp's parser refuses bare LF (a request-smuggling vector) at once."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\nHost: localhost\n\n")
    status_line = await asyncio.wait_for(reader.readline(), 2)
    assert status_line.startswith(b"HTTP/1.") and b" 400 " in status_line
    writer.close()
    await writer.wait_closed()


async def test_client_that_leaves_early_gets_nothing(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\n")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await writer.wait_closed()


async def test_other_clients_are_served_while_one_idles(port: int) -> None:
    _, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    status, _, _ = await request(port, path="/health")
    assert status == 503
    idle_writer.close()
    await idle_writer.wait_closed()
