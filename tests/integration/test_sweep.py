"""The sweep and the expiry index: docs/contract.rst §1 (extra keys) and §2 (sweeping).

Covers: kamikaze/sweep.py, kamikaze/lua/sweep.lua, kamikaze/lua/reconcile.lua."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kamikaze.consumer import Runner
from kamikaze.queue import Queue
from kamikaze.service import serve
from kamikaze.settings import Settings
from kamikaze.sweep import Sweeper
from tests.integration.conftest import Recorder


async def members(redis: Any, key: str) -> list[bytes]:
    return list(await redis.zrange(key, 0, -1))


async def test_the_index_is_hash_tagged_and_follows_push_and_remove(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    assert queue.index_key == f"{{{settings.key}}}:expiry"
    package = await queue.push("job", 100, 1)
    forever = await queue.push("forever", None, 2)
    assert await redis.zscore(queue.index_key, package.member) == package.expire_time
    assert await redis.zscore(queue.index_key, forever.member) == float("inf")
    await queue.remove("job")
    assert await members(redis, queue.index_key) == [forever.member]


async def test_expired_packages_below_the_top_are_swept(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    top = await queue.push("top", 100, 1)
    for i in range(20):
        await queue.push(f"short-{i}", 0.05, 5 + i)
    await queue.push("long", 100, 50)
    await asyncio.sleep(0.1)
    assert await Sweeper(queue).sweep_once() == 20
    remaining = await members(redis, settings.key)
    assert remaining == [top.member, remaining[1]] and remaining[1].endswith(b":long")
    assert sorted(await members(redis, queue.index_key)) == sorted(remaining)


async def test_zero_one_data_without_the_index_is_swept_and_indexed(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    """0.1.x wrote only the sorted set: its packages are still swept."""
    now = time.time()
    await queue.push("top", 100, 1)
    await redis.zadd(settings.key, {f"{now - 1}:old-expired": 5, f"{now + 100}:old-live": 6})
    assert await Sweeper(queue).sweep_once() == 1
    assert await redis.zscore(queue.index_key, f"{now + 100}:old-live") is not None
    assert await queue.sizes() == (2, 2)


async def test_what_zero_one_removed_leaves_the_index(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    kept = await queue.push("kept", 100, 1)
    gone = await queue.push("gone", 100, 2)
    await redis.zrem(settings.key, gone.member)  # 0.1.x's remove: the sorted set only
    await Sweeper(queue).sweep_once()
    assert await members(redis, queue.index_key) == [kept.member]


async def test_the_sweep_never_deletes_others_data(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    await redis.zadd(settings.key, {"garbage": 0, "abc:x": 1, "nan:y": 2})
    await queue.push("short", 0.01, 3)
    await asyncio.sleep(0.05)
    await Sweeper(queue).sweep_once()
    assert sorted(await members(redis, settings.key)) == [b"abc:x", b"garbage", b"nan:y"]
    assert await queue.sizes() == (3, 3)  # indexed at +inf: never swept
    assert await Sweeper(queue).sweep_once() == 0


async def test_the_service_sweeps_without_calling_the_consumer(
    settings: Settings, queue: Queue, redis: Any
) -> None:
    await queue.push("top", 100, 1)
    await queue.push("below", 0.1, 9)
    recorder = Recorder()
    stop = asyncio.Event()
    service = asyncio.create_task(serve(settings, Runner(recorder), stop, sweep_interval=0.05))
    try:
        await recorder.wait_for(1)
        async with asyncio.timeout(5):
            while await redis.zcard(settings.key) != 1:
                await asyncio.sleep(0.02)
        assert recorder.payloads == ["top"]
    finally:
        stop.set()  # as SIGTERM does
        async with asyncio.timeout(5):
            await service


async def test_the_payload_index_follows_push_remove_and_sweep(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    assert queue.payload_key == f"{{{settings.key}}}:payload"
    kept = await queue.push("a:b", 100, 1)
    await queue.push("gone", 100, 2)
    await queue.push("short", 0.01, 3)
    await queue.remove("gone")
    await asyncio.sleep(0.05)
    await Sweeper(queue).sweep_once()
    assert await members(redis, queue.payload_key) == [b"a:b\0" + kept.member]


async def test_remove_uses_the_index_without_walking_the_queue(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    for i in range(300):
        await queue.push(f"other-{i}", 100, i)
    await queue.push("target", 100, 5)
    await queue.push("target", 200, 6)
    scans_before = await zscan_calls(redis)
    assert await queue.remove("target") == 2
    assert await zscan_calls(redis) == scans_before
    assert await redis.zcard(settings.key) == 300


async def test_remove_is_exact_with_nul_and_prefixes(queue: Queue, redis: Any) -> None:
    for payload in ["a", "a\0b", "a\0", "ab", "\0a", "a\1"]:
        await queue.push(payload, 100, 1)
    assert await queue.remove("a") == 1
    assert await queue.remove("a\0") == 1
    assert sorted(p.payload for p in await queue.packages()) == ["\0a", "a\0b", "a\1", "ab"]


async def test_what_zero_one_removed_leaves_the_payload_index(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    gone = await queue.push("gone", 100, 2)
    await redis.zrem(settings.key, gone.member)  # 0.1.x's remove: the sorted set only
    await Sweeper(queue).sweep_once()
    assert await members(redis, queue.payload_key) == []


async def zscan_calls(redis: Any) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_zscan", {}).get("calls", 0))


async def test_the_first_sweep_rewrites_members_an_earlier_version_padded(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    """docs/data.rst: zero-padded expire texts (1.0.dev) and six decimals ending
    in 0 (before it), which 0.1.x cannot rebuild to remove them, are rewritten
    with the shortest text of the same time; the indexes follow."""
    now = time.time()
    padded, zero = f"{now + 100:019.6f}:padded", f"{int(now) + 200}.500000:zero"
    for member, score in ((padded, 1), (zero, 2)):
        expire_text = member.split(":")[0]
        await redis.zadd(settings.key, {member: score})
        await redis.zadd(queue.index_key, {member: float(expire_text)})
        await redis.zadd(queue.payload_key, {f"{member.split(':')[1]}\0{member}": 0})
    before = await queue.top()
    await Sweeper(queue).sweep_once()
    rewritten = [f"{float(m.split(':')[0])!r}:{m.split(':')[1]}".encode() for m in (padded, zero)]
    assert await members(redis, settings.key) == rewritten
    assert rewritten[1].startswith(f"{int(now) + 200}.5:".encode())
    assert sorted(await members(redis, queue.index_key)) == sorted(rewritten)
    assert await queue.sizes() == (2, 2)
    after = await queue.top()
    assert after is not None and after.same_as(before) and after != before
    assert await queue.remove("zero") == 1 and await queue.remove("padded") == 1
    assert await redis.exists(queue.index_key, queue.payload_key) == 0
