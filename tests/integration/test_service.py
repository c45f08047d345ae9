"""The service (Dispatcher + Runner) against a real Redis: docs/contract.rst §2, service.

Covers: kamikaze/service.py, kamikaze/follower.py, kamikaze/consumer.py."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from kamikaze.package import Package
from kamikaze.queue import Queue
from kamikaze.settings import Settings
from tests.integration.conftest import Recorder, RunningService, start_watcher, stop


async def test_called_with_none_on_an_empty_queue_at_start(service: RunningService) -> None:
    assert await service.recorder.wait_for(1) == [None]


async def test_called_with_the_top_at_start(settings: Settings, queue: Queue) -> None:
    await queue.push("low", 100, 5)
    await queue.push("high", 100, 1)
    recorder = Recorder()
    runner, task = await start_watcher(settings, recorder)
    try:
        assert await recorder.wait_for(1) == ["high"]
        assert recorder.calls[0][1] == await queue.top()
    finally:
        await stop(task, runner)


async def test_a_more_urgent_push_calls_the_consumer(service: RunningService) -> None:
    await service.recorder.wait_for(1)
    await service.queue.push("five", 100, 5)
    assert await service.recorder.wait_for(2) == [None, "five"]
    await service.queue.push("one", 100, 1)
    assert await service.recorder.wait_for(3) == [None, "five", "one"]


async def test_a_less_urgent_push_does_not_call_the_consumer(service: RunningService) -> None:
    await service.queue.push("top", 100, 1)
    await service.recorder.wait_for(2)
    await service.queue.push("below", 100, 9)
    await service.queue.push("equal-score-later-expiry", 200, 1)
    assert await service.recorder.quiet_for() == [None, "top"]


async def test_removing_the_top_calls_with_the_next(service: RunningService) -> None:
    await service.queue.push("top", 100, 1)
    await service.queue.push("next", 100, 2)
    await service.recorder.wait_for(2)
    assert await service.queue.remove("top") == 1
    assert (await service.recorder.wait_for(3))[-1] == "next"


async def test_removing_below_the_top_does_not_call(service: RunningService) -> None:
    await service.queue.push("top", 100, 1)
    await service.queue.push("next", 100, 2)
    await service.recorder.wait_for(2)
    await service.queue.remove("next")
    await service.queue.remove("not-there")
    assert (await service.recorder.quiet_for())[-1] == "top"
    assert len(service.recorder.calls) == 2


async def test_emptying_the_queue_calls_with_none(service: RunningService) -> None:
    await service.queue.push("only", 100, 1)
    await service.recorder.wait_for(2)
    await service.queue.remove("only")
    assert await service.recorder.wait_for(3) == [None, "only", None]


async def test_the_top_expires_on_time(service: RunningService) -> None:
    """The expired top is deleted and the next top delivered within 50 ms (median)."""
    recorder = service.recorder
    await service.queue.push("base", 100, 10)
    await recorder.wait_for(2)
    lateness = []
    for i in range(5):
        before = len(recorder.calls)  # the call may come before push() returns
        package = await service.queue.push(f"short-{i}", 0.15, 1)
        await recorder.wait_for(before + 2)  # short-i becomes the top, then expires
        assert recorder.payloads[before:] == [f"short-{i}", "base"]
        called_at, top = recorder.calls[-1]
        assert top is not None and top.payload == "base"
        assert package.expire_time is not None
        lateness.append(called_at - package.expire_time)
    assert min(lateness) >= -0.002, lateness  # never early (same clock, µs rounding)
    assert statistics.median(lateness) < 0.05, lateness
    assert [p.payload for p in await service.queue.packages()] == ["base"]


async def test_expiry_empties_the_queue(service: RunningService) -> None:
    await service.queue.push("short", 0.1, 1)
    assert await service.recorder.wait_for(3) == [None, "short", None]
    assert await service.queue.packages() == []


async def test_consumer_gets_args_and_kwargs(settings: Settings, queue: Queue) -> None:
    seen: list[tuple[Any, ...]] = []
    runner, task = await start_watcher(
        settings,
        lambda package, *args, **kwargs: seen.append((package, args, kwargs)),
        args=(3, "x"),
        kwargs={"flag": True},
    )
    try:
        async with asyncio.timeout(5):
            while not seen:
                await asyncio.sleep(0.01)
        assert seen == [(None, (3, "x"), {"flag": True})]
    finally:
        await stop(task, runner)


async def test_a_running_coroutine_consumer_is_cancelled_before_the_next_call(
    settings: Settings, queue: Queue
) -> None:
    events: list[str] = []
    started = asyncio.Event()

    async def consumer(package: Package | None) -> None:
        name = "none" if package is None else package.payload
        events.append(f"start {name}")
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append(f"cancelled {name}")
            raise

    runner, task = await start_watcher(settings, consumer)
    try:
        async with asyncio.timeout(5):
            await started.wait()
            await queue.push("first", 100, 1)
            while events[-1] != "start first":
                await asyncio.sleep(0.005)
        assert events == ["start none", "cancelled none", "start first"]
    finally:
        await stop(task, runner)
    assert events[-1] == "cancelled first"


async def test_an_exception_in_the_consumer_is_logged_and_the_service_goes_on(
    settings: Settings, queue: Queue, caplog: Any
) -> None:
    calls: list[str | None] = []

    def consumer(package: Package | None) -> None:
        calls.append(None if package is None else package.payload)
        raise RuntimeError("consumer failed on purpose")

    runner, task = await start_watcher(settings, consumer)
    try:
        async with asyncio.timeout(5):
            while not calls:
                await asyncio.sleep(0.005)
            await queue.push("after", 100, 1)
            while calls[-1] != "after":
                await asyncio.sleep(0.005)
    finally:
        await stop(task, runner)
    assert "consumer failed on purpose" in caplog.text
    assert "Traceback" in caplog.text or any(r.exc_info for r in caplog.records)


async def test_an_expired_zero_one_member_is_removed_and_the_next_delivered(
    service: RunningService, redis: Any, settings: Settings
) -> None:
    """0.1.x wrote client-clock expiry with str(float): read and expired all the same."""
    await service.recorder.wait_for(1)
    await redis.zadd(settings.key, {f"{time.time() + 0.2}:old-style": 1.0})
    await service.queue.push("next", 100, 2)
    assert (await service.recorder.wait_for(2))[-1] == "old-style"
    assert (await service.recorder.wait_for(3))[-1] == "next"
    members = await redis.zrange(settings.key, 0, -1)
    assert len(members) == 1 and members[0].endswith(b":next")
