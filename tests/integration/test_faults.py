"""Fault injection (issue 5): Redis killed, shut down, restarted empty, paused;
connections dropped or frozen by a proxy; the service started while Redis is
down; signals during an outage and during a slow shutdown.

Each test starts its own throwaway server(s) of every kind found, asserts
what a user sees (consumer calls, log lines, exit codes) and records the
recovery time: from Redis being back (or the fault being lifted) to the
consumer being called with the right top. The times are printed
(`pytest -s` or `-rA` shows them) and kept as junit properties.

Covers: kamikaze/follower.py, kamikaze/signals.py, kamikaze/connections.py, kamikaze/runtime.py,
kamikaze/service.py."""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from kamikaze.connections import SOCKET_TIMEOUT
from kamikaze.queue import Queue
from kamikaze.settings import Settings
from kamikaze.signals import IDLE_RECHECK
from tests.integration.conftest import Recorder, start_watcher, stop
from tests.integration.processes import Service, kamikaze_env, run
from tests.proxy import Proxy
from tests.servers import RedisServer, free_port, server_binaries

pytestmark = pytest.mark.timeout(60)

SERVERS = sorted(server_binaries().items())
AOF = ("--appendonly", "yes", "--appendfsync", "always")
DEBUG = ("--enable-debug-command", "local")
DOWN_FOR = 1.0  # seconds Redis stays down: long enough for several retries
BACK_WITHIN = 8.0  # backoff is capped at 5 s (with jitter), plus the reconnect itself
LOST = "lost Redis at"
RECONNECTED = "reconnected to Redis at"

_keys = itertools.count()


def new_key() -> str:
    return f"fault-{next(_keys)}"


# Fixtures: a server factory per kind, the service's log, recovery times.


@pytest.fixture(params=SERVERS, ids=lambda p: p[0])
def binary(request: pytest.FixtureRequest) -> str:
    return str(request.param[1])


@pytest.fixture
def make_server(binary: str) -> Iterator[Callable[..., RedisServer]]:
    """Build (not start) throwaway servers of this kind; all removed afterwards."""
    made: list[RedisServer] = []

    def make(*extra_args: str, port: int | None = None) -> RedisServer:
        server = RedisServer(binary, extra_args=extra_args)
        if port is not None:
            server.port = port
        made.append(server)
        return server

    yield make
    for server in made:
        server.remove()


@pytest.fixture
def proxies() -> Iterator[list[Proxy]]:
    made: list[Proxy] = []
    yield made
    for proxy in made:
        proxy.close()


class LogLines(logging.Handler):
    """Records the `kamikaze` loggers' messages, with wall-clock times."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[float, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.created, record.levelno, record.getMessage()))

    def lines(self, text: str) -> list[tuple[float, int, str]]:
        return [r for r in self.records if text in r[2]]

    def count(self, text: str) -> int:
        return len(self.lines(text))

    async def wait_for(self, text: str, timeout: float, nth: int = 1) -> float:
        """Wait until `nth` lines contain `text`; return the time of the nth."""
        deadline = time.monotonic() + timeout
        while len(found := self.lines(text)) < nth:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {text!r} logged within {timeout} s; got {self.messages()}"
                )
            await asyncio.sleep(0.005)
        return found[nth - 1][0]

    def messages(self) -> list[str]:
        return [message for _, _, message in self.records]


@pytest.fixture
def log() -> Iterator[LogLines]:
    handler = LogLines()
    logger = logging.getLogger("kamikaze")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def recovery(
    request: pytest.FixtureRequest, record_property: Callable[[str, object], None]
) -> Callable[[str, float], None]:
    def record(what: str, seconds: float) -> None:
        record_property(what, round(seconds, 3))
        print(f"RECOVERY {request.node.name}: {what} = {seconds:.3f} s")

    return record


# Helpers.


@asynccontextmanager
async def direct_queue(url: str, key: str) -> AsyncIterator[Queue]:
    """A queue on a client of its own (never through the proxy)."""
    client = Settings(redis_url=url, key=key).client()
    try:
        yield Queue(client, key)
    finally:
        await client.aclose()


async def push(url: str, key: str, payload: str, priority: float, ttl: float = 300) -> None:
    async with direct_queue(url, key) as queue:
        await queue.push(payload, ttl, priority)


async def called_with(recorder: Recorder, payload: str | None, timeout: float) -> float:
    """Wait until the consumer's last call was with `payload`; return its time."""
    deadline = time.monotonic() + timeout
    while recorder.payloads[-1:] != [payload]:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"consumer not called with {payload!r} within {timeout} s: {recorder.payloads}"
            )
        await asyncio.sleep(0.005)
    return recorder.calls[-1][0]


@asynccontextmanager
async def watching(settings: Settings) -> AsyncIterator[Recorder]:
    """The watcher in this event loop, with a recording consumer."""
    recorder = Recorder()
    runner, task = await start_watcher(settings, recorder)
    try:
        yield recorder
    finally:
        await stop(task, runner)


def assert_one_outage(log: LogLines) -> None:
    """One line per change of state: one "lost", one "reconnected"."""
    assert log.count(LOST) == 1, log.messages()
    assert log.count(RECONNECTED) == 1, log.messages()
    assert not [m for _, level, m in log.records if level >= logging.ERROR and LOST not in m], (
        log.messages()
    )


# 1, 2: Redis killed (kill -9) or shut down (SIGTERM), restarted on the same
# port with AOF: the data survives; a more urgent push is delivered.


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "shutdown"])
async def test_redis_restarted_with_its_data(
    make_server: Callable[..., RedisServer],
    log: LogLines,
    recovery: Callable[[str, float], None],
    sig: int,
) -> None:
    server = make_server(*AOF).start()
    key = new_key()
    await push(server.url, key, "A", priority=5)
    async with watching(Settings(redis_url=server.url, key=key)) as recorder:
        await called_with(recorder, "A", 5)
        down_at = time.time()
        await asyncio.to_thread(server.stop, sig)
        lost_at = await log.wait_for(LOST, 5)
        await asyncio.sleep(DOWN_FOR)
        await asyncio.to_thread(server.start)
        back_at = time.time()
        await push(server.url, key, "B", priority=1)
        called_at = await called_with(recorder, "B", BACK_WITHIN)
        reconnected_at = await log.wait_for(RECONNECTED, 1)
        await asyncio.sleep(0.3)  # nothing more may come
        assert recorder.payloads == ["A", "B"]  # A survived: not delivered again
        assert_one_outage(log)
        recovery("down to 'lost' logged", lost_at - down_at)
        recovery("back to 'reconnected' logged", reconnected_at - back_at)
        recovery("back to consumer called with B", called_at - back_at)


# 3: restarted empty: the top changed (to nothing) while the service was away.


async def test_redis_restarted_empty(
    make_server: Callable[..., RedisServer],
    log: LogLines,
    recovery: Callable[[str, float], None],
) -> None:
    server = make_server().start()
    key = new_key()
    await push(server.url, key, "A", priority=5)
    async with watching(Settings(redis_url=server.url, key=key)) as recorder:
        await called_with(recorder, "A", 5)
        await asyncio.to_thread(server.stop, signal.SIGKILL)
        await log.wait_for(LOST, 5)
        await asyncio.sleep(DOWN_FOR)
        await asyncio.to_thread(server.start)
        back_at = time.time()
        called_at = await called_with(recorder, None, BACK_WITHIN)
        await log.wait_for(RECONNECTED, 1)
        await asyncio.sleep(0.3)
        assert recorder.payloads == ["A", None]
        assert_one_outage(log)
        recovery("back to consumer called with None", called_at - back_at)


# 4: the top changes while the service's connections are frozen (its change
# signal held up, then delivered late on thaw or lost with the connection on
# drop): the consumer gets the new top once the fault is lifted.


@pytest.mark.parametrize("lift", ["thaw", "drop"])
async def test_top_changed_while_the_service_was_cut_off(
    make_server: Callable[..., RedisServer],
    proxies: list[Proxy],
    log: LogLines,
    recovery: Callable[[str, float], None],
    lift: str,
) -> None:
    server = make_server().start()
    proxy = Proxy(server.port)
    proxies.append(proxy)
    key = new_key()
    async with watching(Settings(redis_url=proxy.url, key=key)) as recorder:
        await called_with(recorder, None, 5)
        assert proxy.freeze() >= 2  # the subscription and the command connection
        await push(server.url, key, "C", priority=1)  # straight to Redis
        await asyncio.sleep(0.5)
        assert recorder.payloads == [None]  # frozen: it cannot know yet
        lifted_at = time.time()
        getattr(proxy, lift)()
        called_at = await called_with(recorder, "C", 5)
        await asyncio.sleep(0.3)
        assert recorder.payloads == [None, "C"]
        assert log.count(LOST) == log.count(RECONNECTED) <= 1, log.messages()
        recovery(f"{lift} to consumer called with C", called_at - lifted_at)


# 5: Redis pauses (CLIENT PAUSE) or stalls (DEBUG SLEEP) for less than the
# socket timeout: the service rides it out and delivers the push made meanwhile.


@pytest.mark.parametrize(
    ("command", "lasts"),
    [
        (("CLIENT", "PAUSE", "1500", "ALL"), 1.5),
        (("CLIENT", "PAUSE", "1500", "WRITE"), 1.5),
        (("DEBUG", "SLEEP", "1"), 1.0),
    ],
    ids=["pause-all", "pause-write", "debug-sleep"],
)
async def test_redis_paused(
    make_server: Callable[..., RedisServer],
    log: LogLines,
    recovery: Callable[[str, float], None],
    command: tuple[str, ...],
    lasts: float,
) -> None:
    server = make_server(*DEBUG).start()
    key = new_key()
    async with (
        watching(Settings(redis_url=server.url, key=key)) as recorder,
        direct_queue(server.url, key) as admin,
    ):
        await called_with(recorder, None, 5)
        started = time.time()
        pause = asyncio.create_task(admin.redis.execute_command(*command))
        await asyncio.sleep(0.1)  # in force (DEBUG SLEEP answers only at its end)
        pushed = asyncio.create_task(push(server.url, key, "B", priority=1))
        await pause
        # CLIENT PAUSE answers at once; DEBUG SLEEP when it is over.
        lifted_at = max(time.time(), started + lasts)
        await pushed  # held until the pause ended
        called_at = await called_with(recorder, "B", 5)
        assert recorder.payloads == [None, "B"]
        assert log.count(LOST) == 0, log.messages()
        recovery("pause over to consumer called with B", called_at - lifted_at)


# 6: the proxy drops every connection, or freezes them (all of them, or only
# the subscription) for longer than the idle period.


async def test_connections_dropped(
    make_server: Callable[..., RedisServer],
    proxies: list[Proxy],
    log: LogLines,
    recovery: Callable[[str, float], None],
) -> None:
    server = make_server().start()
    proxy = Proxy(server.port)
    proxies.append(proxy)
    key = new_key()
    async with watching(Settings(redis_url=proxy.url, key=key)) as recorder:
        await called_with(recorder, None, 5)
        before = proxy.accepted
        dropped_at = time.time()
        assert proxy.drop() >= 2
        deadline = time.monotonic() + 5
        while proxy.accepted == before:  # it reconnects (a new SUBSCRIBE)
            assert time.monotonic() < deadline, log.messages()
            await asyncio.sleep(0.005)
        reconnected_at = time.time()
        pushed_at = time.time()
        await push(server.url, key, "B", priority=1)
        called_at = await called_with(recorder, "B", 5)
        assert recorder.payloads == [None, "B"]
        assert log.count(LOST) == log.count(RECONNECTED) <= 1, log.messages()
        recovery("drop to a new connection", reconnected_at - dropped_at)
        recovery("push to consumer called with B", called_at - pushed_at)


async def test_subscription_frozen(
    make_server: Callable[..., RedisServer],
    proxies: list[Proxy],
    log: LogLines,
    recovery: Callable[[str, float], None],
) -> None:
    """Only the subscription stalls: the idle PING finds out, the service
    reconnects and delivers the push its lost signal was about."""
    server = make_server().start()
    proxy = Proxy(server.port)
    proxies.append(proxy)
    key = new_key()
    async with watching(Settings(redis_url=proxy.url, key=key)) as recorder:
        await called_with(recorder, None, 5)
        frozen_at = time.time()
        assert proxy.freeze(matching=b"SUBSCRIBE") == 1
        await push(server.url, key, "B", priority=1)
        lost_at = await log.wait_for(LOST, 6)
        assert "the subscription stopped answering" in log.lines(LOST)[0][2]
        called_at = await called_with(recorder, "B", 5)
        reconnected_at = await log.wait_for(RECONNECTED, 1)
        assert recorder.payloads == [None, "B"]
        assert_one_outage(log)
        recovery("freeze to 'lost' logged", lost_at - frozen_at)
        recovery("freeze to 'reconnected' logged", reconnected_at - frozen_at)
        recovery("freeze to consumer called with B", called_at - frozen_at)


async def test_everything_frozen(
    make_server: Callable[..., RedisServer],
    proxies: list[Proxy],
    log: LogLines,
    recovery: Callable[[str, float], None],
) -> None:
    """Every connection stalls for good (the proxy still forwards new ones):
    the idle PING goes unanswered, the subscription is reconnected through a
    new connection, and the push made meanwhile is delivered."""
    server = make_server().start()
    proxy = Proxy(server.port)
    proxies.append(proxy)
    key = new_key()
    async with watching(Settings(redis_url=proxy.url, key=key)) as recorder:
        await called_with(recorder, None, 5)
        frozen_at = time.time()
        assert proxy.freeze() >= 2
        await push(server.url, key, "B", priority=1)
        called_at = await called_with(recorder, "B", SOCKET_TIMEOUT + IDLE_RECHECK + 3)
        lost_at = await log.wait_for(LOST, 2 * IDLE_RECHECK + 1)
        reconnected_at = await log.wait_for(RECONNECTED, 2)
        pushed_at = time.time()
        await push(server.url, key, "C", priority=0)
        called_c_at = await called_with(recorder, "C", 5)
        assert recorder.payloads == [None, "B", "C"]
        assert "the subscription stopped answering" in log.lines(LOST)[0][2]
        assert_one_outage(log)
        recovery("freeze to consumer called with B", called_at - frozen_at)
        recovery("freeze to 'lost' logged", lost_at - frozen_at)
        recovery("freeze to 'reconnected' logged", reconnected_at - frozen_at)
        recovery("push after reconnect to consumer called with C", called_c_at - pushed_at)


async def test_everything_frozen_is_noticed_within_the_idle_checks(
    make_server: Callable[..., RedisServer],
    proxies: list[Proxy],
    log: LogLines,
) -> None:
    """All connections stall for 6 s, longer than the idle period; the proxy
    still forwards new connections. Expected: found like a silent
    subscription (two idle periods, 4 s), reconnected, the push made
    meanwhile delivered before the thaw."""
    server = make_server().start()
    proxy = Proxy(server.port)
    proxies.append(proxy)
    key = new_key()
    async with watching(Settings(redis_url=proxy.url, key=key)) as recorder:
        await called_with(recorder, None, 5)
        frozen_at = time.time()
        assert proxy.freeze() >= 2
        try:
            await push(server.url, key, "B", priority=1)
            await log.wait_for(LOST, 2 * IDLE_RECHECK + 1)
            await called_with(recorder, "B", frozen_at + 6 - time.time())
        finally:
            proxy.thaw()


# 7: `kamikaze service` started while Redis is down.


def test_service_started_before_redis(
    make_server: Callable[..., RedisServer],
    recovery: Callable[[str, float], None],
) -> None:
    port = free_port()
    env = kamikaze_env(f"redis://127.0.0.1:{port}/0", new_key())
    service = Service("service", "example_consumer.consumer.blocking_consumer_func", env=env)
    try:
        service.expect(LOST, timeout=10)
        time.sleep(DOWN_FOR)
        assert service.process.poll() is None
        make_server(port=port).start()
        back_at = time.monotonic()
        service.expect("Queue is empty", timeout=BACK_WITHIN)
        recovery("back to consumer called with None", time.monotonic() - back_at)
        assert run("push", "after", "100", "1", env=env).returncode == 0  # then as usual
        service.expect("Consuming 'after'")
        code, took = service.stop(signal.SIGTERM)
        assert code == 0 and took < 2, (code, took)
    finally:
        service.kill()
    lost = [line for line in service.lines if LOST in line]
    assert len(lost) == 1, service.lines
    assert sum(RECONNECTED in line for line in service.lines) == 1, service.lines
    assert not any("Traceback" in line for line in service.lines), service.lines


# 8: signals: while Redis is down (the service in its backoff), and a second
# SIGTERM during a slow shutdown.


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_while_redis_is_down(sig: int, recovery: Callable[[str, float], None]) -> None:
    env = kamikaze_env(f"redis://127.0.0.1:{free_port()}/0", new_key())
    service = Service("service", "example_consumer.consumer.blocking_consumer_func", env=env)
    try:
        service.expect(LOST, timeout=10)
        time.sleep(DOWN_FOR)  # well into the backoff
        code, took = service.stop(sig, timeout=5)
        recovery(f"signal to exit (code {code})", took)
        assert code == 0 and took < 2, (code, took)
    finally:
        service.kill()
    assert not any("Traceback" in line for line in service.lines), service.lines


STUBBORN = textwrap.dedent("""
    import asyncio

    async def stubborn(package):
        print("STARTED", flush=True)
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                print("SWALLOWED", flush=True)
""")


@pytest.fixture
def stubborn_service(tmp_path: Path) -> Iterator[Service]:
    """`kamikaze service` with a coroutine consumer that swallows
    CancelledError and sleeps on, running (it printed STARTED)."""
    server = RedisServer(SERVERS[0][1]).start()  # any kind: this is about signals
    (tmp_path / "stubborn_consumer.py").write_text(STUBBORN)
    env = kamikaze_env(server.url, new_key())
    service = Service("service", "stubborn_consumer.stubborn", env=env, cwd=tmp_path)
    try:
        service.expect("STARTED")
        yield service
    finally:
        service.kill()
        server.remove()


@pytest.mark.parametrize(
    "second_after",
    ["SWALLOWED", "going on without it"],
    ids=["while-cancelling", "after-the-grace"],
)
def test_second_sigterm_during_a_slow_shutdown_exits_at_once(
    stubborn_service: Service, recovery: Callable[[str, float], None], second_after: str
) -> None:
    service = stubborn_service
    service.process.send_signal(signal.SIGTERM)
    service.expect(second_after, timeout=3)  # shutting down, slowly
    second_at = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    code = service.process.wait(timeout=5)
    took = time.monotonic() - second_at
    recovery(f"second SIGTERM to exit (code {code})", took)
    assert took < 0.5, (took, service.lines)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_one_signal_exits_despite_a_consumer_that_swallows_cancellation(
    stubborn_service: Service, sig: int
) -> None:
    """Issue 5: SIGTERM/SIGINT cancel a running consumer task, close the
    connections and exit 0 within 2 s."""
    started = time.monotonic()
    code, took = stubborn_service.stop(sig, timeout=3)  # raises TimeoutExpired: still running
    assert code == 0 and took < 2, (code, time.monotonic() - started)
