"""kamikaze's HTTP stack: the connection cap, timeouts, brief error logs, listen errors."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web

from kamikaze import http_server
from kamikaze.errors import ListenError
from kamikaze.http_server import BriefLines, HttpServer, serve

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture(autouse=True)
def fresh_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Each test starts with nothing logged lately, and INFO (not DEBUG) in force."""
    http_server.brief_lines.forget()
    caplog.set_level(logging.INFO, logger="kamikaze.http")
    yield
    http_server.brief_lines.forget()


def hello_app(release: asyncio.Event | None = None) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def slow(request: web.Request) -> web.Response:
        assert release is not None
        await release.wait()
        return web.Response(text="slow")

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/slow", slow)
    return app


@pytest.fixture
async def running() -> AsyncIterator[list[HttpServer]]:
    """Servers a test starts; closed at its end."""
    servers: list[HttpServer] = []
    yield servers
    for server in servers:
        await server.wait_closed()


async def start(
    running: list[HttpServer], app: web.Application | None = None, **options: Any
) -> int:
    server = await serve(app or hello_app(), "127.0.0.1", 0, **options)
    running.append(server)
    port: int = server.sockets[0].getsockname()[1]
    return port


async def get(port: int, path: str = "/") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def idle_connections(port: int, count: int) -> list[Connection]:
    connections = []
    for _ in range(count):
        connections.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.01)  # accepted in this order
    return connections


async def is_closed(connection: Connection) -> bool:
    """Closed by the server (EOF or reset), rather than still waiting for a request."""
    try:
        return await asyncio.wait_for(connection[0].read(), 0.3) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def close_all(connections: list[Connection]) -> None:
    for _, writer in connections:
        writer.close()


# The connection cap -----------------------------------------------------------------------


async def test_past_the_cap_the_oldest_idle_connections_are_closed(
    running: list[HttpServer],
) -> None:
    port = await start(running, max_connections=4)
    idle = await idle_connections(port, 10)
    try:
        assert (await get(port)).endswith(b"hello")
        # The 10 idle ones and the request: the 4 newest of those 11 were left open.
        closed = [await is_closed(connection) for connection in idle]
        assert closed == [True] * 7 + [False] * 3
    finally:
        close_all(idle)


async def test_a_connection_being_answered_is_never_closed_for_a_new_one(
    running: list[HttpServer],
) -> None:
    release = asyncio.Event()
    port = await start(running, hello_app(release), max_connections=4)
    slow = asyncio.create_task(get(port, "/slow"))
    await asyncio.sleep(0.1)
    idle = await idle_connections(port, 10)
    try:
        assert (await get(port)).endswith(b"hello")
        release.set()
        assert (await slow).endswith(b"slow")
    finally:
        close_all(idle)


def test_the_cap_stays_well_under_the_open_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_server.resource, "getrlimit", lambda _: (1024, 4096))
    assert http_server.connection_cap(100) == 100
    monkeypatch.setattr(http_server.resource, "getrlimit", lambda _: (256, 4096))
    assert http_server.connection_cap(100) == 64
    monkeypatch.setattr(http_server.resource, "getrlimit", lambda _: (8, 8))
    assert http_server.connection_cap(100) == 4


# Timeouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\n"], ids=["nothing", "half a head"])
async def test_a_client_that_sends_no_whole_request_is_dropped_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch, running: list[HttpServer], sent: bytes
) -> None:
    monkeypatch.setattr(http_server, "IDLE_TIMEOUT", 0.2)
    port = await start(running)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert 0.1 < loop.time() - started < 2
    writer.close()


async def test_a_kept_alive_connection_is_dropped_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch, running: list[HttpServer]
) -> None:
    monkeypatch.setattr(http_server, "IDLE_TIMEOUT", 0.2)
    port = await start(running)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.readuntil(b"hello"), 5)).startswith(b"HTTP/1.1 200")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


# Brief logs -------------------------------------------------------------------------------


async def test_bad_requests_are_logged_in_one_line_once_per_interval(
    running: list[HttpServer], caplog: pytest.LogCaptureFixture
) -> None:
    port = await start(running)
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\nHost: x\n\n")
        assert b" 400 " in await asyncio.wait_for(reader.readline(), 5)
        writer.close()
    (record,) = [r for r in caplog.records if r.name == "kamikaze.http"]
    assert record.exc_info is None and record.exc_text is None
    message = record.getMessage()
    assert message.startswith("Error handling request from 127.0.0.1: 400, message: ")
    assert "\n" not in message and "expected CRLF" in message.replace("Expected", "expected")


def test_a_kind_of_error_is_one_line_per_interval_with_a_count() -> None:
    now = [100.0]
    logger = logging.getLogger("tests.brief")
    logger.setLevel(logging.INFO)
    brief = BriefLines(interval=10, clock=lambda: now[0])
    logger.addFilter(brief)
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    logger.addHandler(Keep())
    logger.propagate = False
    try:
        for i in range(5):
            try:
                raise ValueError(f"bad\n  thing {i}")
            except ValueError:
                logger.exception("failed for %s", "x")
        logger.error("another kind")
        now[0] += 10
        logger.error("failed for %s", "y")
    finally:
        logger.removeFilter(brief)
        logger.handlers.clear()
    assert lines == [
        "failed for x: bad thing 0",
        "another kind",
        "failed for y (and 4 more like it in 10 s)",
    ]


async def test_failed_accepts_are_one_brief_line(
    running: list[HttpServer], caplog: pytest.LogCaptureFixture
) -> None:
    """asyncio's own report of a failed accept() (EMFILE) is a traceback each time."""
    loop = asyncio.get_running_loop()
    others: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: others.append(context))
    try:
        await start(running)
        failure = OSError(errno.EMFILE, "Too many open files")
        for _ in range(100):
            loop.call_exception_handler(
                {"message": http_server.ACCEPT_FAILED, "exception": failure}
            )
        loop.call_exception_handler({"message": "something else"})
        messages = [r.getMessage() for r in caplog.records if r.name == "kamikaze.http"]
        assert messages == ["cannot accept connections: too many open files"]
        assert [context["message"] for context in others] == ["something else"]
        running.pop().close()
        handler = loop.get_exception_handler()
        assert handler is not None and handler.__name__ == "<lambda>"  # put back
    finally:
        loop.set_exception_handler(None)


# Listen errors ----------------------------------------------------------------------------


async def test_a_taken_port_is_one_line_naming_host_and_port(running: list[HttpServer]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as raised:
            await serve(hello_app(), "127.0.0.1", port, what="things")
    assert str(raised.value) == f"cannot serve things on 127.0.0.1:{port}: the port is in use"
    assert isinstance(raised.value, OSError)


async def test_an_unknown_host_is_one_line_naming_it() -> None:
    with pytest.raises(ListenError) as raised:
        await serve(hello_app(), "999.1.1.1", 0, what="things")
    message = str(raised.value)
    assert message.startswith("cannot serve things on 999.1.1.1:0: ")
    assert "Errno" not in message and "\n" not in message


async def test_an_ipv6_address_is_bracketed() -> None:
    with pytest.raises(ListenError, match=r"cannot serve things on \[::2\]:0: "):
        await serve(hello_app(), "::2", 0, what="things")
