"""The documented Python API: Queue.connect, Queue.watch() and SyncQueue,
against a real server, as a producer or consumer script would use them.

Covers: kamikaze/queue.py, kamikaze/sync.py, kamikaze/follower.py."""

from __future__ import annotations

import asyncio
import threading

import kamikaze
from kamikaze import Package, Queue, SyncQueue
from kamikaze.settings import Settings


async def test_connect_push_top_packages_remove(settings: Settings) -> None:
    async with Queue.connect(settings.redis_url, settings.key) as queue:
        await queue.push("later", 100, 5)
        (urgent, forever) = await queue.push_many([("urgent", 100, 1), ("forever", None, 9)])
        assert urgent.payload == "urgent" and forever.expire_time is None
        assert await queue.top() == urgent
        assert [p.payload for p in await queue.packages()] == ["urgent", "later", "forever"]
        assert [p.payload for p in await queue.packages(limit=2)] == ["urgent", "later"]
        assert await queue.size() == 3
        assert await queue.remove("urgent") == 1
        assert (await queue.top()).payload == "later"  # type: ignore[union-attr]


async def test_watch_yields_the_top_and_each_change(settings: Settings) -> None:
    async with Queue.connect(settings.redis_url, settings.key) as producer:
        await producer.push("first", 100, 5)
        async with Queue.connect(settings.redis_url, settings.key) as consumer:
            seen: list[str | None] = []
            changes = consumer.watch()
            async with asyncio.timeout(10):
                seen.append(_payload(await anext(changes)))
                await producer.push("below", 100, 9)  # not a change of the top
                await producer.push("urgent", 100, 1)
                seen.append(_payload(await anext(changes)))
                await producer.push("brief", 0.2, 0)
                seen.append(_payload(await anext(changes)))
                seen.append(_payload(await anext(changes)))  # it expired
                await producer.remove("urgent")
                seen.append(_payload(await anext(changes)))
                for payload in ("first", "below"):
                    await producer.remove(payload)
                seen.append(_payload(await anext(changes)))
                if seen[-1] == "below":  # its moment as the top was seen: fine too
                    seen.append(_payload(await anext(changes)))
            await changes.aclose()
    assert seen in (
        ["first", "urgent", "brief", "urgent", "first", None],
        ["first", "urgent", "brief", "urgent", "first", "below", None],
    )


def _payload(package: Package | None) -> str | None:
    return None if package is None else package.payload


def test_sync_queue_for_scripts(settings: Settings) -> None:
    with SyncQueue(settings.redis_url, settings.key) as queue:
        package = queue.push("job", ttl=60, priority=2)
        assert package.payload == "job" and package.priority == 2.0
        queue.push_many([("a", 60, 1), ("b", None, 3)])
        assert queue.top() == next(p for p in queue.packages() if p.payload == "a")
        assert [p.payload for p in queue.packages()] == ["a", "job", "b"]
        assert queue.remove("a") == 1
        assert queue.top().payload == "job"  # type: ignore[union-attr]
        assert queue.key == settings.key


def test_sync_queue_works_beside_a_running_event_loop_thread(settings: Settings) -> None:
    """Each SyncQueue has its own loop: one per thread is fine."""
    results: list[int] = []

    def worker(n: int) -> None:
        with SyncQueue(settings.redis_url, settings.key) as queue:
            queue.push(f"from-thread-{n}", 60, n)
            results.append(len(queue.packages()))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 3
    with SyncQueue(settings.redis_url, settings.key) as queue:
        assert sorted(p.payload for p in queue.packages()) == [
            "from-thread-0",
            "from-thread-1",
            "from-thread-2",
        ]


async def test_sync_queue_inside_a_running_event_loop(settings: Settings) -> None:
    """As in a plain consumer, which the service calls from its event loop."""
    with SyncQueue(settings.redis_url, settings.key) as queue:
        queue.push("inside", 60, 1)
        assert queue.remove("inside") == 1


def test_the_api_is_exported_lazily() -> None:
    assert kamikaze.Queue is Queue and kamikaze.SyncQueue is SyncQueue
    assert set(kamikaze.__all__) >= {"Queue", "SyncQueue", "Package", "Settings"}
