"""The fan-out to viewers: the page's latest state, serialized once per change
(whole, and as its difference from the state before), and each viewer's wait
for the next one.

A viewer gets the latest state, never a backlog: one that reads slowly skips
the states it missed, and then gets the whole state, so memory does not grow
with slow or many viewers. A viewer that kept up gets the difference.
"""

from __future__ import annotations

import asyncio
import contextlib


class Hub:
    def __init__(self) -> None:
        self.version = 0
        self.data = b""  # the whole state
        self.delta = b""  # what changed from version - 1 to version
        self.closed = False
        self.viewers = 0
        self._changed = asyncio.Event()

    def publish(self, data: bytes, delta: bytes | None = None) -> None:
        """A new state, whole, and the change from the last one (None: send it whole)."""
        if data == self.data:
            return
        self.version += 1
        self.data = data
        self.delta = data if delta is None else delta
        self._wake()

    def message_for(self, seen: int) -> bytes:
        """What a viewer that has version `seen` needs to get the latest."""
        return self.delta if 0 < seen == self.version - 1 else self.data

    async def wait(self, seen: int, timeout: float) -> int:
        """The latest version once it is past `seen` (at once if it is), or
        `seen` again after `timeout` seconds, or when the hub closes."""
        if self.version == seen and not self.closed:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await changed.wait()
        return self.version

    def close(self) -> None:
        """Wake every viewer, for good: the process is stopping."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
