"""The fan-out to viewers (kamikaze web): the latest state, never a backlog of
states; the timeline's changes for a viewer that kept up or fell a little
behind, the whole state for the others; each serialized once."""

from __future__ import annotations

import asyncio

from kamikaze.web.hub import HISTORY, Hub, event


def test_a_viewer_that_kept_up_gets_the_difference_a_new_one_the_whole() -> None:
    hub = Hub()
    hub.publish(b"whole-1", b"delta-1", b"changes-1")
    hub.publish(b"whole-2", b"delta-2", b"changes-2")
    assert hub.version == 2
    assert hub.message_for(0) == event(b"whole-2")
    assert hub.message_for(1) == event(b"delta-2")


def test_a_viewer_a_little_behind_gets_the_timeline_changes_it_missed_then_the_state() -> None:
    hub = Hub()
    for version in range(1, 6):
        hub.publish(f"whole-{version}".encode(), f"delta-{version}".encode(), b"c%d" % version)
    assert hub.message_for(2) == (
        event(b"c3", "timeline") + event(b"c4", "timeline") + event(b"delta-5")
    )
    assert hub.message_for(2).count(b"whole") == 0


def test_a_viewer_far_behind_gets_the_whole_state() -> None:
    hub = Hub()
    for version in range(1, HISTORY + 4):
        hub.publish(f"whole-{version}".encode(), f"delta-{version}".encode(), b"c")
    assert hub.message_for(1) == event(f"whole-{HISTORY + 3}".encode())
    assert hub.message_for(3).startswith(event(b"c", "timeline"))  # the oldest kept: 4


def test_a_state_without_a_difference_is_sent_whole_to_all_but_the_latest() -> None:
    hub = Hub()
    hub.publish(b"whole-1", b"delta-1", b"c1")
    hub.publish(b"whole-2", b"delta-2", b"c2")
    hub.publish(b"whole-3")
    assert hub.message_for(2) == event(b"whole-3")
    assert hub.message_for(1) == event(b"whole-3")


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
