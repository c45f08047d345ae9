"""Integrity (docs/guarantees.rst): a write is applied at most
once, all or nothing; a listing shows no package twice and misses none that
stayed; a remove finds every package that was there throughout; equal
priorities put the earlier expiry first. Against real servers, with stalls
(DEBUG SLEEP), lost replies (a proxy that swallows them) and concurrent
writers.

Covers: kamikaze/writes.py, kamikaze/queue.py, kamikaze/lua/."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
from redis.exceptions import ResponseError

import kamikaze.connections
from kamikaze import OutcomeUnknown, SyncQueue
from kamikaze.keys import companion_key
from kamikaze.queue import Queue
from kamikaze.sweep import Sweeper
from tests.integration.processes import kamikaze_env, run
from tests.proxy import Proxy
from tests.servers import RedisServer, server_binaries

pytestmark = pytest.mark.timeout(90)

SERVERS = sorted(server_binaries().items())
STALL = 4  # seconds of DEBUG SLEEP: longer than the 3 s socket timeout


@pytest.fixture(scope="module", params=SERVERS, ids=lambda p: p[0])
def debug_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    server = RedisServer(request.param[1], extra_args=("--enable-debug-command", "local"))
    server.start()
    yield server
    server.remove()


_keys = iter(range(10**6))


@pytest.fixture
def key() -> str:
    return f"integrity-{next(_keys)}"


@pytest.fixture
def admin(debug_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=debug_server.port)
    yield client
    client.close()


def load_scripts(server: RedisServer) -> None:
    """Make Redis know the write scripts, so that EVALSHA runs them (a first
    NOSCRIPT reply would hide a repeated call)."""

    async def load() -> None:
        async with Queue.connect(server.url, "integrity-loader") as queue:
            await queue.push("loader", 1, 1)
            await queue.remove("loader")

    asyncio.run(load())


def stall(server: RedisServer, seconds: float = STALL) -> socket.socket:
    """DEBUG SLEEP on a connection of its own; returns at once (the reply
    comes when the stall is over). Close the socket afterwards."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(f"DEBUG SLEEP {seconds}\r\n".encode())
    time.sleep(0.3)  # in force
    return sock


@pytest.fixture
def proxy(debug_server: RedisServer) -> Iterator[Proxy]:
    """A plain forwarding proxy (as a TLS tunnel or a load balancer would be):
    what a client sent has left its socket, so closing it cannot take the
    request back; Redis runs it when the stall is over."""
    with Proxy(debug_server.port) as forwarding:
        yield forwarding


def payloads(admin: redis.Redis, key: str) -> list[str]:
    return [m.decode().split(":", 1)[1] for m in admin.zrange(key, 0, -1)]


# 1. At most once ------------------------------------------------------------------------


def test_a_push_during_a_stall_lands_once(
    debug_server: RedisServer, admin: redis.Redis, key: str, proxy: Proxy
) -> None:
    env = kamikaze_env(proxy.url, key)
    load_scripts(debug_server)
    sock = stall(debug_server)
    try:
        result = run("push", "job-once", "600", "1", env=env)
    finally:
        sock.close()
    assert result.returncode == 0, result.stderr
    assert payloads(admin, key) == ["job-once"]
    assert admin.zcard(companion_key(key, "by-payload")) == 1


def test_push_lines_during_a_stall_land_once_each(
    debug_server: RedisServer, admin: redis.Redis, key: str
) -> None:
    env = kamikaze_env(debug_server.url, key)
    process = subprocess.Popen(
        [sys.executable, "-m", "kamikaze", "push", "-", "--batch-size", "1"],
        env=env,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write('{"payload": "one", "ttl": 600, "priority": 1}\n')
    process.stdin.flush()
    deadline = time.monotonic() + 10
    while admin.zcard(key) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    sock = stall(debug_server)
    try:
        process.stdin.write('{"payload": "two", "ttl": 600, "priority": 2}\n')
        process.stdin.write('{"payload": "three", "ttl": 600, "priority": 3}\n')
        process.stdin.close()
        process.wait(timeout=30)
        assert process.stderr is not None
        stderr = process.stderr.read()
    finally:
        sock.close()
    assert process.returncode == 0, stderr
    assert "pushed 3 packages" in stderr
    assert payloads(admin, key) == ["one", "two", "three"]


async def test_a_remove_during_a_stall_counts_once(
    debug_server: RedisServer, admin: redis.Redis, key: str, proxy: Proxy
) -> None:
    await asyncio.to_thread(load_scripts, debug_server)
    async with Queue.connect(proxy.url, key) as queue:
        await queue.push_many([("gone", 600, 1), ("gone", 700, 2), ("stays", 600, 3)])
        sock = await asyncio.to_thread(stall, debug_server)
        try:
            assert await queue.remove("gone") == 2
        finally:
            sock.close()
    assert payloads(admin, key) == ["stays"]


class ReplySwallower:
    """A proxy that passes requests to Redis but drops its replies once a
    connection has sent EVALSHA: the write lands, its reply is lost."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        swallowing = asyncio.Event()

        async def requests() -> None:
            while data := await reader.read(65536):
                if b"EVALSHA" in data:
                    swallowing.set()
                up_writer.write(data)
                await up_writer.drain()

        async def replies() -> None:
            while data := await up_reader.read(65536):
                if not swallowing.is_set():
                    writer.write(data)
                    await writer.drain()

        tasks = [asyncio.create_task(requests()), asyncio.create_task(replies())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            writer.close()
            up_writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def swallower(debug_server: RedisServer) -> AsyncIterator[tuple[ReplySwallower, int]]:
    proxy = ReplySwallower(debug_server.port)
    port = await proxy.start()
    yield proxy, port
    await proxy.close()


async def test_a_lost_reply_is_exit_1_saying_the_outcome_is_unknown(
    debug_server: RedisServer,
    admin: redis.Redis,
    key: str,
    swallower: tuple[ReplySwallower, int],
) -> None:
    async with Queue.connect(debug_server.url, key) as queue:
        await queue.push("loaded", 600, 5)  # the script is known to Redis: EVALSHA runs
    env = kamikaze_env(f"redis://127.0.0.1:{swallower[1]}/0", key)
    result = await asyncio.to_thread(run, "push", "lost-reply", "600", "1", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, lines
    assert "may have been applied or not" in lines[0], lines
    assert sorted(payloads(admin, key)) == ["loaded", "lost-reply"]  # once, not twice


async def test_a_lost_reply_raises_outcome_unknown_in_the_api(
    debug_server: RedisServer,
    admin: redis.Redis,
    key: str,
    swallower: tuple[ReplySwallower, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kamikaze.connections, "SOCKET_TIMEOUT", 0.3)
    async with Queue.connect(debug_server.url, key) as queue:
        await queue.push("loaded", 600, 5)
        await queue.remove("nothing")  # both scripts known to Redis: EVALSHA runs
    async with Queue.connect(f"redis://127.0.0.1:{swallower[1]}/0", key) as queue:
        with pytest.raises(OutcomeUnknown, match="may have been applied or not"):
            await queue.push("lost-reply", 600, 1)
        with pytest.raises(OutcomeUnknown):
            await queue.remove("loaded")
    assert payloads(admin, key) == ["lost-reply"]


def test_a_refused_connection_is_not_an_unknown_outcome(key: str) -> None:
    from tests.servers import free_port

    env = kamikaze_env(f"redis://127.0.0.1:{free_port()}/0", key)
    result = run("push", "x", "60", "1", env=env)
    assert result.returncode == 1
    assert "cannot connect to Redis" in result.stderr
    assert "may have been applied" not in result.stderr


# 2. All or nothing ----------------------------------------------------------------------


COMPANIONS = ("by-payload", "seq", "calls", "call-expiries")


def snapshot(admin: redis.Redis, key: str) -> list[object]:
    return [admin.dump(k) for k in (key, *(companion_key(key, c) for c in COMPANIONS))]


def spoil(admin: redis.Redis, key: str, companion: str) -> None:
    """Give the companion key a value of the wrong kind."""
    if companion == "seq":
        admin.delete(key)
        admin.hset(key, "a", "b")
    else:
        admin.delete(key)
        admin.set(key, "garbage")


WRITES: dict[str, Callable[[Queue], Any]] = {
    "push": lambda q: q.push("new", 60, 1),
    "push_many": lambda q: q.push_many([("new", 60, 1), ("newer", 60, 2)]),
    "remove": lambda q: q.remove("kept"),
    "sweep": lambda q: q.sweep(),
    "reconcile-queue": lambda q: q.reconcile_step("queue", 0),
    "reconcile-index": lambda q: q.reconcile_step("index", 0),
    "top": lambda q: q.top(),
}


@pytest.mark.parametrize("wrong", COMPANIONS)
@pytest.mark.parametrize("operation", sorted(WRITES))
async def test_a_companion_key_of_the_wrong_type_changes_nothing(
    debug_server: RedisServer, admin: redis.Redis, key: str, wrong: str, operation: str
) -> None:
    async with Queue.connect(debug_server.url, key) as queue:
        await queue.push("kept", 60, 1)
        await queue.push("expired", 0.01, 0)
        await asyncio.sleep(0.05)
        spoil(admin, companion_key(key, wrong), wrong)
        before = snapshot(admin, key)
        pubsub = admin.pubsub()
        pubsub.subscribe(key)
        assert pubsub.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
        with pytest.raises(ResponseError) as raised:
            await WRITES[operation](queue)
        assert str(raised.value).startswith("WRONGTYPE"), raised.value
        assert "user_script" not in str(raised.value)  # one clean line
        assert snapshot(admin, key) == before
        assert pubsub.get_message(timeout=0.1) is None  # no change signalled
        pubsub.close()


@pytest.mark.parametrize("wrong", COMPANIONS)
def test_the_cli_push_on_a_companion_key_of_the_wrong_type_writes_nothing(
    debug_server: RedisServer, admin: redis.Redis, key: str, wrong: str
) -> None:
    spoil(admin, companion_key(key, wrong), wrong)
    result = run("push", "a", "60", "1", env=kamikaze_env(debug_server.url, key))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "WRONGTYPE" in lines[0] and "user_script" not in lines[0], lines
    assert admin.exists(key) == 0


# 3. Listings under writes ---------------------------------------------------------------


class Churn:
    """Pushes 1,500 packages at priority 0 and removes them again, in a
    loop, on a thread of its own, until stopped."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.stopped = threading.Event()
        self.rounds = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with SyncQueue(self.url, self.key) as queue:
            while not self.stopped.is_set():
                queue.push_many((f"churn-{i}", 600, 0) for i in range(1500))
                for i in range(0, 1500, 500):
                    queue.remove(f"churn-{i}")
                queue.push_many((f"churn-{i}", 600, 0) for i in range(1500))
                for i in range(1500):
                    queue.remove(f"churn-{i}")
                self.rounds += 1

    def __enter__(self) -> Churn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)


def test_list_json_under_churn_shows_each_package_once_and_misses_none(
    debug_server: RedisServer, key: str
) -> None:
    with SyncQueue(debug_server.url, key) as queue:
        queue.push_many((f"filler-{i}", 600, 10) for i in range(6000))
    env = kamikaze_env(debug_server.url, key)
    with Churn(debug_server.url, key) as churn:
        for _ in range(5):
            result = run("list", "--json", env=env)
            assert result.returncode == 0, result.stderr
            rows = json.loads(result.stdout)
            identities = [(row["payload"], row["expire_time"]) for row in rows]
            assert len(identities) == len(set(identities)), "a package shown twice"
            fillers = {row["payload"] for row in rows if row["payload"].startswith("filler-")}
            assert len(fillers) == 6000, f"missed {6000 - len(fillers)} fillers"
    assert churn.rounds > 0  # the listing really ran under writes


# 4. Remove under concurrency ------------------------------------------------------------


@pytest.mark.parametrize("trial", range(3))
def test_concurrent_removes_of_overlapping_payloads_miss_nothing(
    debug_server: RedisServer, key: str, trial: int
) -> None:
    longer = "x\0!"  # its index entries sort inside the range of "x" and before it
    with SyncQueue(debug_server.url, key) as queue:
        queue.push_many((longer, 600 + i / 1000, 5) for i in range(20_000))
        queue.push_many([("x", 600, 1), ("x", 601, 2), ("x", 602, 3)])
    removed: dict[str, int] = {}

    def remove(payload: str) -> None:
        with SyncQueue(debug_server.url, key) as queue:
            removed[payload] = queue.remove(payload)

    threads = [threading.Thread(target=remove, args=(p,)) for p in (longer, "x")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert removed == {longer: 20_000, "x": 3}
    with SyncQueue(debug_server.url, key) as queue:
        assert queue.packages() == []


async def test_a_remove_after_0_1_x_writes_finds_the_package_once_reconciled(
    debug_server: RedisServer, admin: redis.Redis, key: str
) -> None:
    """0.1.x removes one of ours and pushes one of its own: the sizes of
    queue and index agree, so remove cannot tell (docs/data.rst: 0.1.x data) until
    the next reconcile pass, which indexes the newcomer. The entry of ours that
    0.1.x removed goes with our remove of its payload."""
    async with Queue.connect(debug_server.url, key) as queue:
        mine = await queue.push("mine", 600, 1)
        admin.zrem(key, mine.member)  # 0.1.x's remove
        admin.zadd(key, {f"{time.time() + 600}:x": 1})  # 0.1.x's push
        assert await queue.sizes() == (1, 1)
        await Sweeper(queue).reconcile()
        assert await queue.remove("x") == 1
        assert await queue.remove("mine") == 0
        assert await queue.sizes() == (0, 0)


async def test_a_remove_finds_0_1_x_data_that_a_reconcile_indexes_during_it(
    debug_server: RedisServer, admin: redis.Redis, key: str
) -> None:
    """The index step misses a member 0.1.x pushed (not indexed yet); a
    reconcile step then indexes it, so the sizes agree. Whether the queue
    must be walked is decided with the index step, in the same call: before,
    sizes read after it found nothing to walk, and the package stayed (a
    service missed the change)."""
    from kamikaze import operations

    async with Queue.connect(debug_server.url, key) as queue:
        await queue.push("mine", 600, 1)
        admin.zadd(key, {f"{time.time() + 600!r}:theirs": 2})  # 0.1.x's push
        steps = operations.remove(queue.keys, "theirs")
        reply = await queue._perform(steps.send(None))  # the index step
        assert reply[1] == 0
        assert await queue.reconcile_step("queue", 0) == (0, 1)  # the pass indexes it
        assert await queue.sizes() == (2, 2)
        with pytest.raises(StopIteration) as done:
            while True:
                reply = await queue._perform(steps.send(reply))
        assert done.value.value == 1
        assert [p.payload for p in await queue.packages()] == ["mine"]


# 7. Equal priorities --------------------------------------------------------------------


def test_equal_priorities_put_the_earlier_expiry_first(
    debug_server: RedisServer, admin: redis.Redis, key: str
) -> None:
    env = kamikaze_env(debug_server.url, key)
    assert run("push", "soon", "60", "1", env=env).returncode == 0
    assert run("push", "later", "1e8", "1", env=env).returncode == 0  # in 2029
    assert run("push", "never-pushed-first", "30", "2", env=env).returncode == 0
    rows = json.loads(run("list", "--json", env=env).stdout)
    assert [row["payload"] for row in rows] == ["soon", "later", "never-pushed-first"]
    for member in admin.zrange(key, 0, -1):
        expire_text = member.decode().split(":", 1)[0]
        assert float(expire_text) > time.time()  # 0.1.x reads it with float()


async def test_a_ttl_past_year_9999_by_the_servers_clock_is_refused_by_the_script(
    debug_server: RedisServer, admin: redis.Redis, key: str
) -> None:
    async with Queue.connect(debug_server.url, key) as queue:
        with pytest.raises(ResponseError, match="past 9999-12-31"):
            args = [b"ok", "60", "1.0", b"far", "1e17", "1.0"]
            await queue._write("push", queue.keys.all, args, "the push")
    assert admin.exists(key) == 0
