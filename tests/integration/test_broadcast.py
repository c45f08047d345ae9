"""The change signal carries the top (docs/data.rst): followers read nothing
for a signal that tells it; a follower that may have missed one (a gap in the
change numbers, a signal without the top, 0.1.x's plain one) reads once; and
the at-most-once bookkeeping keeps a bounded number of keys per queue.

Covers: kamikaze/follower.py, kamikaze/queue.py (signalled), kamikaze/signals.py,
kamikaze/lua/common.lua (signal_change, recall, remember)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kamikaze.package import Package
from kamikaze.queue import Queue
from kamikaze.settings import Settings


class Counted(Queue):
    """A Queue that counts its reads of the top."""

    reads = 0

    async def read_top(self) -> Any:
        Counted.reads += 1
        return await super().read_top()


@pytest.fixture
async def follower(settings: Settings) -> AsyncIterator[tuple[Queue, asyncio.Queue[Any]]]:
    """A follower on its own client, its tops in an asyncio.Queue."""
    Counted.reads = 0
    following = Counted.connect(settings.redis_url, settings.key)
    tops: asyncio.Queue[Package | None] = asyncio.Queue()

    async def follow() -> None:
        async for top in following.follow():
            await tops.put(top)

    task = asyncio.create_task(follow())
    assert await asyncio.wait_for(tops.get(), 5) is None  # the top now: an empty queue
    yield following, tops
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await following.aclose()


async def next_top(tops: asyncio.Queue[Any]) -> str | None:
    top = await asyncio.wait_for(tops.get(), 5)
    return None if top is None else str(top.payload)


async def test_a_follower_reads_nothing_for_signals_that_carry_the_top(
    queue: Queue, follower: tuple[Queue, asyncio.Queue[Any]]
) -> None:
    _, tops = follower
    reads = Counted.reads  # the first reading, at the start
    await queue.push("a", 60, 5)
    assert await next_top(tops) == "a"
    await queue.push("b", 60, 1)
    assert await next_top(tops) == "b"
    await queue.push("c", 60, 9)  # not the top: nothing to report, nothing to read
    await queue.remove("b")
    assert await next_top(tops) == "a"
    await queue.clear()
    assert await next_top(tops) is None
    assert Counted.reads == reads


async def test_a_follower_that_missed_a_signal_reads_the_top(
    queue: Queue, follower: tuple[Queue, asyncio.Queue[Any]], redis: Any
) -> None:
    _, tops = follower
    await queue.push("a", 60, 5)
    assert await next_top(tops) == "a"
    reads = Counted.reads
    await redis.incr(queue.keys.seq)  # a change whose signal never came
    await queue.push("b", 60, 1)  # its number is one past the next expected
    assert await next_top(tops) == "b"
    assert Counted.reads == reads + 1


@pytest.mark.parametrize("signal", ["new_message", "new_message 999999"])
async def test_a_signal_without_the_top_makes_a_follower_read(
    queue: Queue, follower: tuple[Queue, asyncio.Queue[Any]], redis: Any, signal: str
) -> None:
    """0.1.x's plain signal after its own push (its expire time from its own
    clock), and a signal that cannot tell the top."""
    _, tops = follower
    reads = Counted.reads
    now = await queue.server_time()
    await redis.zadd(queue.key, {f"{now + 60!r}:theirs": 1})  # as 0.1.x's push
    await redis.publish(queue.key, signal)
    assert await next_top(tops) == "theirs"
    assert Counted.reads == reads + 1


async def test_a_signal_that_came_before_a_read_is_not_taken_for_news(
    queue: Queue, settings: Settings
) -> None:
    """A follower that has read the top at change 5 ignores a late signal of
    change 4: its top is older than the one read."""
    await queue.push("new", 60, 1)
    reading = await queue.read_top()
    assert reading.seq is not None and reading.top is not None
    stale = f"new_message {reading.seq - 1} 1 0 1 {reading.top.raw_entry}x".encode()
    assert queue.signalled(reading, [stale]) is reading
    following = f"new_message {reading.seq + 1} 1 0 2 1.5:next".encode()
    told = queue.signalled(reading, [stale, following])
    assert told is not None and told.top is not None and told.top.payload == "next"
    assert queue.signalled(reading, [f"new_message {reading.seq + 2}".encode()]) is None


async def test_the_lease_news_of_exclusive_services_costs_no_read(
    queue: Queue, settings: Settings
) -> None:
    """docs/ha.rst: the lease's messages share the queue's channel; they do
    not change the queue, so a follower reads nothing for them."""
    await queue.push("new", 60, 1)
    reading = await queue.read_top()
    lease_news = [b"kamikaze-lease active 7 host:12:ab", b"kamikaze-lease released 7"]
    assert queue.signalled(reading, lease_news) is reading
    following = f"new_message {reading.seq + 1} 1 0 2 1.5:next".encode()
    told = queue.signalled(reading, [lease_news[0], following, lease_news[1]])
    assert told is not None and told.top is not None and told.top.payload == "next"


async def test_the_calls_keep_two_keys_however_many_writes(
    queue: Queue, redis: Any, settings: Settings
) -> None:
    """Before, each write call left a key of its own for 60 s."""
    for i in range(300):
        await queue.push(f"p{i}", 60, i)
    await queue.remove("p1")
    names = {name.decode() for name in await redis.keys(f"*{settings.key}*")}
    assert names == {settings.key, *(queue.keys.all[1:])}
    assert await redis.hlen(queue.keys.calls) == 301  # one outcome per call, for a minute
    assert 0 < await redis.ttl(queue.keys.calls) <= 60
