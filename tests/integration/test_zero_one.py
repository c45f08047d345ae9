"""Kamikaze 0.1.1, the real release from the package index (tests/legacy.py),
and this version on one queue, both ways (docs/data.rst, "Sharing a queue
with 0.1.x"; docs/contract.rst §1): push, remove and list each way, a service
of ours that notices 0.1.1's writes, and members an earlier version of ours
wrote, which 0.1.1 can remove once the reconcile pass has rewritten them.

Covers: kamikaze/package.py, kamikaze/lua/common.lua, kamikaze/lua/push.lua,
kamikaze/lua/reconcile.lua, kamikaze/follower.py."""

from __future__ import annotations

import json
import random
import shlex
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kamikaze.queue import Queue
from kamikaze.settings import Settings
from kamikaze.sweep import Sweeper
from tests.integration.conftest import Recorder, start_watcher, stop
from tests.integration.processes import kamikaze_env, run
from tests.legacy import ZeroOne, ensure_venv
from tests.servers import RedisServer, own_server_binary

KEY = "kamikaze"  # 0.1.1 knows no other


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    server = RedisServer(own_server_binary()).start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def zero_one(server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> ZeroOne:
    return ZeroOne(ensure_venv(), server.port, tmp_path_factory.mktemp("zero-one"))


@pytest.fixture
async def queue(server: RedisServer) -> AsyncIterator[Queue]:
    async with Queue.connect(server.url, KEY) as queue:
        await queue.redis.flushall()
        yield queue


@pytest.fixture
def env(server: RedisServer) -> dict[str, str]:
    return kamikaze_env(server.url, KEY)


def payloads(rows: list[list[str]]) -> list[str]:
    return [row[1] for row in rows]


async def test_zero_one_removes_every_package_we_push(queue: Queue, zero_one: ZeroOne) -> None:
    """Before: ZREM of 0.1.1's rebuilt member missed every one (zero-padded
    texts), or one in ten (six decimals ending in 0)."""
    rng = random.Random(17)
    pushed = [f"ours-{i}" for i in range(200)]
    for payload in pushed:
        await queue.push(payload, rng.uniform(10, 10_000), rng.choice([1, 2, 3]))
    zero_one.remove(*pushed)
    assert await queue.redis.zcard(KEY) == 0


async def test_zero_one_lists_and_removes_what_our_cli_pushes(
    queue: Queue, zero_one: ZeroOne, env: dict[str, str]
) -> None:
    pushed_at = time.time()
    for payload, ttl, priority in (("ours-a", "60", "1"), ("ours-b", "600", "5")):
        assert run("push", payload, ttl, priority, env=env).returncode == 0
    rows = zero_one.list()
    taken = time.time() - pushed_at
    assert payloads(rows) == ["ours-a", "ours-b"]
    assert [float(row[0]) for row in rows] == [1.0, 5.0]
    assert 60 - taken - 0.1 < float(rows[0][3]) <= 60
    zero_one.remove("ours-a")
    assert [p.payload for p in await queue.packages()] == ["ours-b"]


async def test_we_list_and_remove_what_zero_one_pushes(
    queue: Queue, zero_one: ZeroOne, env: dict[str, str]
) -> None:
    pushed_at = time.time()
    zero_one.push("theirs-a", 60, 2)
    zero_one.push("theirs-b", 600, 1)
    listed = json.loads(run("list", "--json", env=env).stdout)
    taken = time.time() - pushed_at  # a loaded machine takes seconds for three processes
    assert [row["payload"] for row in listed] == ["theirs-b", "theirs-a"]
    assert 60 - taken - 0.1 < listed[1]["ttl"] <= 60 and listed[1]["priority"] == 2.0
    removed = run("remove", "theirs-b", env=env)
    assert removed.returncode == 0 and "removed 1 package" in removed.stderr
    assert payloads(zero_one.list()) == ["theirs-a"]


async def test_a_service_of_ours_follows_zero_ones_writes(
    server: RedisServer, queue: Queue, zero_one: ZeroOne
) -> None:
    recorder = Recorder()
    runner, task = await start_watcher(Settings(redis_url=server.url, key=KEY), recorder)
    try:
        assert await recorder.wait_for(1) == [None]
        zero_one.push("theirs", 60, 5)
        assert await recorder.wait_for(2) == [None, "theirs"]
        await queue.push("ours", 60, 1)
        assert await recorder.wait_for(3) == [None, "theirs", "ours"]
        zero_one.remove("ours")  # our top, removed by 0.1.1
        assert await recorder.wait_for(4) == [None, "theirs", "ours", "theirs"]
        zero_one.remove("theirs")
        assert await recorder.wait_for(5) == [None, "theirs", "ours", "theirs", None]
    finally:
        await stop(task, runner)


async def test_zero_one_removes_what_an_earlier_version_wrote_once_reconciled(
    queue: Queue, zero_one: ZeroOne
) -> None:
    """Zero-padded members (1.0.dev) are rewritten by the first sweep's
    reconcile pass; then 0.1.1's remove finds them."""
    now = time.time()
    expiry, payloads = queue.keys.legacy  # 1.0.dev's indexes
    for i in range(20):
        member = f"{now + 100 + i / 10:019.6f}:old-{i}"
        await queue.redis.zadd(KEY, {member: 1})
        await queue.redis.zadd(expiry, {member: float(member.split(":")[0])})
        await queue.redis.zadd(payloads, {f"old-{i}\0{member}": 0})
    zero_one.remove("old-0")
    assert await queue.redis.zcard(KEY) == 20  # 0.1.1 cannot rebuild a padded member
    await Sweeper(queue).sweep_once()
    zero_one.remove(*(f"old-{i}" for i in range(20)))
    assert await queue.redis.zcard(KEY) == 0
    # Their index entries name the payloads by a digest: they go with our own
    # remove of a payload, or an hour past their expire time (docs/data.rst).
    assert await queue.remove("old-0") == 0
    assert await queue.sizes() == (0, 19)


def test_the_release_is_the_real_one(zero_one: ZeroOne) -> None:
    done = zero_one.call(
        "import kamikaze, importlib.metadata as m\nprint(m.version('kamikaze'), kamikaze.__file__)"
    )
    version, path = done.stdout.split()
    assert version == "0.1.1" and ".venv-0.1.1" in path and Path(path).exists()


def test_the_upgrade_page_walked_forward_and_back(
    queue: Queue, zero_one: ZeroOne, env: dict[str, str], server: RedisServer
) -> None:
    """docs/upgrade.rst, step by step: a queue 0.1.1 filled, our service
    started on it, both side by side, then back to 0.1.x with the page's DEL."""
    from tests.integration.processes import Service

    zero_one.push("theirs-urgent", 600, 1)
    zero_one.push("theirs-later", 600, 5)
    service = Service("service", "example_consumer.consumer.blocking_consumer_func", env=env)
    try:
        service.expect("Consuming 'theirs-urgent' (priority 1.0)")  # step 2: the current top
        assert run("remove", "theirs-urgent", env=env).returncode == 0  # before any reconcile
        service.expect("Consuming 'theirs-later' (priority 5.0)")
        zero_one.push("theirs-new", 600, 3)  # step 4: 0.1.x producers, this service
        service.expect("Consuming 'theirs-new' (priority 3.0)")
        assert run("push", "ours", "600", "2", env=env).returncode == 0
        service.expect("Consuming 'ours' (priority 2.0)")
        assert payloads(zero_one.list()) == ["ours", "theirs-new", "theirs-later"]
        assert service.stop(signal.SIGTERM)[0] == 0  # step 5: going back
    finally:
        service.kill()
    page = (Path(__file__).parents[2] / "docs" / "upgrade.rst").read_text()
    (command,) = [line.strip() for line in page.splitlines() if "redis-cli DEL" in line]
    args = shlex.split(command)
    subprocess.run([args[0], "-p", str(server.port), *args[1:]], check=True, capture_output=True)
    assert [key.decode() for key in all_keys(server)] == [KEY]  # nothing of ours is left
    zero_one.remove("ours")
    assert payloads(zero_one.list()) == ["theirs-new", "theirs-later"]


def all_keys(server: RedisServer) -> list[bytes]:
    import redis

    with redis.Redis(port=server.port) as admin:
        return sorted(admin.keys("*"))
