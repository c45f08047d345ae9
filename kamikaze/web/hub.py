"""The fan-out to viewers: the page's latest state, serialized once per change,
and each viewer's wait for the next one.

A viewer gets the latest state, never a backlog of states: one that reads
slowly skips the states it missed. The timeline is the exception, since the
page keeps it and gets only its changes: a viewer that missed a few states
(up to HISTORY) first gets the timeline changes of those, each a small
`timeline` event; one further behind, or new, gets the whole state. Every
message is serialized once, whoever receives it, so memory and work do not
grow with slow or many viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

HISTORY = 32  # versions whose timeline changes are kept for viewers that fell behind


def event(data: bytes, kind: str | None = None) -> bytes:
    """One server-sent event."""
    head = b"" if kind is None else b"event: " + kind.encode() + b"\n"
    return head + b"data: " + data + b"\n\n"


class Hub:
    def __init__(self) -> None:
        self.version = 0
        self.delta = b""  # the state, with only the timeline's changes since version - 1
        self.history: deque[tuple[int, bytes]] = deque(maxlen=HISTORY)  # timeline changes
        self.closed = False
        self.viewers = 0
        self._changed = asyncio.Event()
        self._whole: Callable[[], bytes] = bytes
        self._whole_data: bytes | None = None

    def publish(self, delta: bytes, changes: bytes, whole: Callable[[], bytes]) -> None:
        """A new state: as its difference from the last one (`delta`), the
        timeline's `changes` alone (for viewers that skip this state), and how
        to make it whole (for new viewers: called at most once, if needed)."""
        self.version += 1
        self.delta = delta
        self.history.append((self.version, changes))
        self._whole, self._whole_data = whole, None
        self._wake()

    @property
    def data(self) -> bytes:
        """The latest state, whole."""
        if self._whole_data is None:
            self._whole_data = self._whole()
        return self._whole_data

    def message_for(self, seen: int) -> bytes:
        """The events that bring a viewer that has version `seen` to the latest."""
        if seen == self.version - 1 and seen > 0:
            return event(self.delta)
        oldest = self.history[0][0] if self.history else self.version
        if seen <= 0 or seen < oldest - 1 or seen >= self.version:
            return event(self.data)
        missed = [event(changes, "timeline") for version, changes in self.history
                  if seen < version < self.version]  # fmt: skip
        return b"".join([*missed, event(self.delta)])

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
