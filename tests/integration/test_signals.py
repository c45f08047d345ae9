"""On a single server the change signal stays 0.1.x's: PUBLISH of
`new_message` on the channel named like the key (a cluster uses SPUBLISH:
see test_cluster.py).

Covers: kamikaze/lua/common.lua (signal_change), kamikaze/connections.py."""

from __future__ import annotations

import asyncio
from typing import Any

from kamikaze.settings import Settings
from tests.integration.processes import run


async def test_every_write_publishes_new_message_on_the_key_channel(
    settings: Settings, redis: Any, env: dict[str, str]
) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(settings.key)
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
    for command in (["push", "a", "100", "1"], ["remove", "a"]):
        assert (await asyncio.to_thread(run, *command, env=env)).returncode == 0
        message = await pubsub.get_message(timeout=5)
        assert message is not None
        assert (message["type"], message["channel"], message["data"]) == (
            "message",
            settings.key.encode(),
            b"new_message",
        )
    await pubsub.aclose()
