"""The fan-out to viewers (kamikaze web): the latest state, never a backlog;
the difference for a viewer that kept up, the whole state for the others."""

from __future__ import annotations

import asyncio

from kamikaze.web.hub import Hub


async def test_a_viewer_that_kept_up_gets_the_difference_the_others_the_whole() -> None:
    hub = Hub()
    hub.publish(b"whole-1")
    hub.publish(b"whole-2", b"delta-1-2")
    assert hub.version == 2
    assert hub.message_for(0) == b"whole-2"  # a new viewer
    assert hub.message_for(1) == b"delta-1-2"
    hub.publish(b"whole-3", b"delta-2-3")
    assert hub.message_for(1) == b"whole-3"  # it skipped version 2
    assert hub.message_for(2) == b"delta-2-3"


async def test_the_same_state_again_wakes_nobody() -> None:
    hub = Hub()
    hub.publish(b"a")
    hub.publish(b"a", b"nothing")
    assert hub.version == 1
    assert await hub.wait(1, timeout=0.05) == 1


async def test_waiting_viewers_wake_on_a_new_state_and_on_close() -> None:
    hub = Hub()
    hub.publish(b"a")
    waiting = [asyncio.create_task(hub.wait(1, timeout=10)) for _ in range(100)]
    await asyncio.sleep(0)
    hub.publish(b"b")
    assert await asyncio.gather(*waiting) == [2] * 100
    closing = asyncio.create_task(hub.wait(2, timeout=10))
    await asyncio.sleep(0)
    hub.close()
    async with asyncio.timeout(1):
        assert await closing == 2
    assert hub.closed
