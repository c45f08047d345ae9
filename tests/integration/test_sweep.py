"""The sweep and the payload index: docs/contract.rst §1 (extra keys) and §2
(sweeping), docs/data.rst (the layout).

Covers: kamikaze/sweep.py, kamikaze/lua/sweep.lua, kamikaze/lua/reconcile.lua."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from kamikaze.consumer import Runner
from kamikaze.package import index_entry
from kamikaze.queue import Queue
from kamikaze.service import serve
from kamikaze.settings import Settings
from kamikaze.sweep import Sweeper
from tests.integration.conftest import Recorder


async def members(redis: Any, key: str) -> list[bytes]:
    return list(await redis.zrange(key, 0, -1))


async def entries(queue: Queue) -> set[bytes]:
    return set(await queue.redis.zrange(queue.index_key, 0, -1))


async def indexed(queue: Queue) -> set[bytes]:
    """The payload index the queue's members should have: one entry each."""
    return {index_entry(member) for member in await members(queue.redis, queue.key)}


async def test_the_index_is_hash_tagged_and_follows_push_and_remove(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    assert queue.index_key == f"{{{settings.key}}}:by-payload"
    package = await queue.push("job", 100, 1)
    await queue.push("forever", None, 2)
    digest = hashlib.sha1(b"job").digest()[:8]
    text = package.raw_entry.partition(":")[0].encode()
    assert await entries(queue) == {b"d" + digest + text, b"nforever"}
    assert all(
        score == 0 for _, score in await redis.zrange(queue.index_key, 0, -1, withscores=True)
    )
    await queue.remove("job")
    assert await entries(queue) == {b"nforever"}


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
    assert await entries(queue) == await indexed(queue)


async def test_zero_one_data_without_the_index_is_swept_and_indexed(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    """0.1.x wrote only the sorted set: its packages are still swept."""
    now = time.time()
    await queue.push("top", 100, 1)
    await redis.zadd(settings.key, {f"{now - 1}:old-expired": 5, f"{now + 100}:old-live": 6})
    assert await Sweeper(queue).sweep_once() == 1
    assert await redis.zscore(queue.index_key, index_entry(f"{now + 100}:old-live")) == 0
    assert await queue.sizes() == (2, 2)


async def test_what_zero_one_removed_leaves_the_index(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    """An entry tells a package that never expires, or someone else's member,
    in full: the reconcile pass drops it once the member is gone. One of a
    package that expires names its payload by a digest: our own remove of
    that payload drops it, and the reconcile pass an hour past its expiry."""
    kept = await queue.push("kept", 100, 1)
    gone = await queue.push("gone", 100, 2)
    forever = await queue.push("forever", None, 3)
    await redis.zadd(settings.key, {"not ours": 4})
    long_ago = f"{time.time() - 3700!r}:long-ago"
    await redis.zadd(queue.index_key, {index_entry(long_ago): 0})  # its member swept long ago
    for member in (gone.member, forever.member, b"not ours"):
        await redis.zrem(settings.key, member)  # 0.1.x's remove: the sorted set only
    await Sweeper(queue).sweep_once()
    assert await entries(queue) == {index_entry(kept.member), index_entry(gone.member)}
    assert await queue.remove("gone") == 0
    assert await entries(queue) == {index_entry(kept.member)} == await indexed(queue)


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
    kept = await queue.push("a:b", 100, 1)
    await queue.push("gone", 100, 2)
    await queue.push("short", 0.01, 3)
    await queue.remove("gone")
    await asyncio.sleep(0.05)
    await Sweeper(queue).sweep_once()
    assert await entries(queue) == {index_entry(kept.member)}


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
    await write_as_before_1_0(queue, {padded: 1, zero: 2})
    before = await queue.top()
    await Sweeper(queue).sweep_once()
    rewritten = [f"{float(m.split(':')[0])!r}:{m.split(':')[1]}".encode() for m in (padded, zero)]
    assert await members(redis, settings.key) == rewritten
    assert rewritten[1].startswith(f"{int(now) + 200}.5:".encode())
    assert await entries(queue) == await indexed(queue)
    assert await queue.sizes() == (2, 2)
    after = await queue.top()
    assert after is not None and after.same_as(before) and after != before
    assert await queue.remove("zero") == 1 and await queue.remove("padded") == 1
    assert await redis.exists(queue.index_key, *queue.keys.legacy) == 0


async def write_as_before_1_0(queue: Queue, members: dict[str, float]) -> None:
    """What versions before 1.0 wrote: the queue, an expiry index of whole
    members scored by expire time, a payload index of payload NUL member."""
    expiry, payloads = queue.keys.legacy
    for member, score in members.items():
        text, _, payload = member.partition(":")
        await queue.redis.zadd(queue.key, {member: score})
        await queue.redis.zadd(expiry, {member: float(text) if text else float("inf")})
        await queue.redis.zadd(payloads, {f"{payload}\0{member}": 0})


async def test_the_layout_before_1_0_is_migrated_without_a_stop(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    """docs/data.rst: its indexes are replaced by the payload index in the
    first sweep's reconcile pass; until then remove walks the queue."""
    now = time.time()
    await write_as_before_1_0(
        queue,
        {f"{now + 100!r}:a": 1, f"{now + 200!r}:b": 2, ":forever": 3, f"{now - 5!r}:old": 4},
    )
    assert await queue.remove("b") == 1  # no index of ours yet: found by walking
    await queue.push("c", 100, 5)
    assert await Sweeper(queue).sweep_once() == 1  # 'old' had expired
    assert [p.payload for p in await queue.packages()] == ["a", "forever", "c"]
    assert await entries(queue) == await indexed(queue)
    assert await redis.exists(*queue.keys.legacy) == 0
    assert await queue.remove("forever") == 1 and await queue.remove("a") == 1
