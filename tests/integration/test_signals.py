"""On a single server the change signal stays 0.1.x's: PUBLISH of a message
that starts `new_message` on the channel named like the key (a cluster uses
SPUBLISH: see test_cluster.py), followed by the change's number, the server's
clock and the top (docs/data.rst).

Covers: kamikaze/lua/common.lua (signal_change), kamikaze/connections.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from kamikaze.settings import Settings
from tests.integration.processes import run


async def test_every_write_publishes_new_message_on_the_key_channel(
    settings: Settings, redis: Any, env: dict[str, str]
) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(settings.key)
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
    told = []
    for command in (["push", "a", "100", "1"], ["remove", "a"]):
        assert (await asyncio.to_thread(run, *command, env=env)).returncode == 0
        message = await pubsub.get_message(timeout=5)
        assert message is not None
        assert (message["type"], message["channel"]) == ("message", settings.key.encode())
        told.append(message["data"].split(b" ", 5))
    await pubsub.aclose()
    pushed, removed = told
    member = pushed[5]
    assert member.endswith(b":a") and pushed[0] == removed[0] == b"new_message"
    assert (pushed[1], removed[1]) == (b"1", b"2") and pushed[4] == b"1"
    assert len(removed) == 4  # the queue is empty: the clock, no top
    assert float(member.split(b":")[0]) == pytest.approx(time.time() + 100, abs=5)


# A write that keeps Redis busy (0.2 s here; TIME stands still inside a
# Valkey script, so a loop counts instead) and publishes the change as it ends.
SLOW_WRITE = """
for i = 1, 50000000 do end
redis.call('PUBLISH', KEYS[1], 'new_message')
return 1
"""


async def test_a_signal_that_comes_before_the_pong_is_a_signal(
    settings: Settings, redis: Any, monkeypatch: Any
) -> None:
    """The PING of an idle subscription waits behind a slow write, whose signal
    arrives first: wait_or_ping() must say a signal came (before: it took the
    signal for the PONG, and `watch` and the web page missed the change)."""
    from kamikaze import signals as signals_module

    monkeypatch.setattr(signals_module, "IDLE_RECHECK", 0.1)
    monkeypatch.setattr(signals_module, "PONG_TIMEOUT", 10.0)  # however slow the machine
    signals = signals_module.Subscription(redis, settings.key)
    await signals.subscribe()
    other = settings.client()
    try:
        waiting = asyncio.create_task(signals.wait_or_ping())
        await asyncio.sleep(0.02)  # the PING leaves at 0.1 s, while the write runs
        writing = asyncio.create_task(other.eval(SLOW_WRITE, 1, settings.key))
        assert await asyncio.wait_for(waiting, 5) is True
        await writing
        assert await signals.wait_or_ping() is False  # idle again: the PONG alone
    finally:
        await signals.close()
        await other.aclose()
