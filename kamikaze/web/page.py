"""What the page shows, as one JSON document: the queue, its packages, the
connection to Redis and the timeline. Updated by the feed, published to
every viewer through the hub."""

from __future__ import annotations

import json
import time
from typing import Any

from kamikaze.output import utc_text
from kamikaze.package import Package
from kamikaze.web.feed import Snapshot
from kamikaze.web.hub import Hub
from kamikaze.web.timeline import Timeline

CONNECTING, CONNECTED, LOST = "connecting", "connected", "lost"


def compact(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def expire_text(package: Package) -> str:
    return "never" if package.expire_time is None else utc_text(package.expire_time)


class PageState:
    """The feed's sink: keeps the latest reading and the timeline, and
    publishes the page's state on each change."""

    def __init__(self, key: str, address: str, writes: bool, hub: Hub) -> None:
        self.key = key
        self.address = address
        self.writes = writes
        self.hub = hub
        self.timeline = Timeline()
        self.redis = CONNECTING
        self.reason: str | None = None
        self.lost_since: float | None = None
        self.last: Snapshot | None = None
        # When each package shown was first read (server time): the TTL bar's full length.
        self.first_seen: dict[int, float] = {}
        self.publish()

    def snapshot(self, snapshot: Snapshot) -> None:
        if self.redis == LOST:
            self.timeline.back(snapshot.server_time)
        self.redis, self.reason, self.lost_since = CONNECTED, None, None
        self.timeline.observe(snapshot.top, snapshot.server_time)
        self.first_seen = {
            hash(p): self.first_seen.get(hash(p), snapshot.server_time) for p in snapshot.packages
        }
        self.last = snapshot
        self.publish()

    def lost(self, reason: str) -> None:
        now = self.server_now()
        self.redis, self.reason, self.lost_since = LOST, reason, now
        self.timeline.lost(now)
        self.publish()

    def server_now(self) -> float:
        """The server's clock, estimated from the last reading (the local one before any)."""
        return self.last.server_now() if self.last is not None else time.time()

    def publish(self) -> None:
        """Tell the viewers. The whole state (the whole timeline) is serialized
        only if a viewer needs it: most get the timeline's changes."""
        changes = self.timeline.as_json(self.timeline.take_changes())
        delta = compact({**self.as_json(timeline=False), "timeline": changes})
        self.hub.publish(delta, compact(changes), lambda: compact(self.as_json()))

    def as_json(self, timeline: bool = True) -> dict[str, Any]:
        """The state, with the whole timeline (or none)."""
        last = self.last
        state = {
            "queue": self.key,
            "address": self.address,
            "writes": self.writes,
            "redis": self.redis,
            "reason": self.reason,
            "lost_since": self.lost_since,
            "server_time": self.server_now(),
            "size": None if last is None else last.size,
            "active": None if last is None or not last.active else last.active,
            "packages": [] if last is None else [self._row(p) for p in last.packages],
        }
        if timeline:
            state["timeline"] = self.timeline.as_json()
        return state

    def _row(self, package: Package) -> dict[str, Any]:
        return {
            "payload": package.payload,
            "priority": repr(package.score),
            "expire_time": package.expire_time,
            "expire_text": expire_text(package),
            "seen": self.first_seen.get(hash(package)),
        }
