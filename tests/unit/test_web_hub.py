"""The fan-out to viewers (kamikaze web): the latest state, never a backlog of
states; the timeline's changes for a viewer that kept up or fell a little
behind, the whole state for the others, serialized at most once a version."""

from __future__ import annotations

import asyncio

from kamikaze.web.hub import HISTORY, Hub, event


def publish(hub: Hub, version: int, made: list[int] | None = None) -> None:
    def whole() -> bytes:
        if made is not None:
            made.append(version)
        return b"whole-%d" % version

    hub.publish(b"delta-%d" % version, b"c%d" % version, whole)


def test_a_viewer_that_kept_up_gets_the_difference_a_new_one_the_whole() -> None:
    hub = Hub()
    publish(hub, 1)
    publish(hub, 2)
    assert hub.version == 2
    assert hub.message_for(0) == event(b"whole-2")
    assert hub.message_for(1) == event(b"delta-2")


def test_a_viewer_a_little_behind_gets_the_timeline_changes_it_missed_then_the_state() -> None:
    hub = Hub()
    for version in range(1, 6):
        publish(hub, version)
    assert hub.message_for(2) == (
        event(b"c3", "timeline") + event(b"c4", "timeline") + event(b"delta-5")
    )


def test_a_viewer_far_behind_gets_the_whole_state() -> None:
    hub = Hub()
    for version in range(1, HISTORY + 4):
        publish(hub, version)
    assert hub.message_for(1) == event(b"whole-%d" % (HISTORY + 3))
    assert hub.message_for(3).startswith(event(b"c4", "timeline"))  # the oldest kept


def test_the_whole_state_is_made_only_when_needed_and_once() -> None:
    hub = Hub()
    made: list[int] = []
    for version in range(1, 4):
        publish(hub, version, made)
        hub.message_for(version - 1)  # only viewers that kept up
    assert made == [1]  # version 1's "viewer" at 0 was new
    for _ in range(3):
        hub.message_for(0)
    assert hub.data == b"whole-3"
    assert made == [1, 3]


async def test_waiting_viewers_wake_on_a_new_state_and_on_close() -> None:
    hub = Hub()
    publish(hub, 1)
    waiting = [asyncio.create_task(hub.wait(1, timeout=10)) for _ in range(100)]
    await asyncio.sleep(0)
    publish(hub, 2)
    assert await asyncio.gather(*waiting) == [2] * 100
    closing = asyncio.create_task(hub.wait(2, timeout=10))
    await asyncio.sleep(0)
    hub.close()
    async with asyncio.timeout(1):
        assert await closing == 2
    assert hub.closed


async def test_a_wait_without_news_ends_at_its_timeout() -> None:
    hub = Hub()
    publish(hub, 1)
    async with asyncio.timeout(5):  # a bound against hangs, not a timing claim
        assert await hub.wait(1, timeout=0.05) == 1
