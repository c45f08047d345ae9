"""Which package was on top, from when to when: the timeline the page draws.

Kept in memory by the web process from the moment it started, and bounded:
only what ended within the window (an hour) is kept, at most MAX_BANDS
bands and MAX_GAPS outages, and each label at most LABEL_LIMIT characters.
Times are the Redis server's clock (the clock of expire times).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from kamikaze.package import Package

WINDOW = 3600.0
MAX_BANDS = 1000
MAX_GAPS = 100
LABEL_LIMIT = 200
ELLIPSIS = "\u2026"


@dataclass
class Band:
    """One package's time on top; `end` None while it is on top now."""

    seq: int  # numbers the bands in order, for the page to merge changes
    identity: int  # the package's member and score, hashed: labels are cut short
    payload: str
    priority: str
    expire_time: float | None
    start: float
    end: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "payload": self.payload,
            "priority": self.priority,
            "expire_time": self.expire_time,
            "start": self.start,
            "end": self.end,
        }


@dataclass
class Gap:
    """A time when Redis was lost: what was on top then is not known."""

    start: float
    end: float | None = None


def label(payload: str) -> str:
    return payload if len(payload) <= LABEL_LIMIT else payload[: LABEL_LIMIT - 1] + ELLIPSIS


class Timeline:
    def __init__(
        self, window: float = WINDOW, max_bands: int = MAX_BANDS, max_gaps: int = MAX_GAPS
    ) -> None:
        self.window = window
        self.bands: deque[Band] = deque(maxlen=max_bands)
        self.gaps: deque[Gap] = deque(maxlen=max_gaps)
        self.since: float | None = None  # the first reading
        self.next_seq = 1
        self.changed_from: int | None = None  # the first band changed since take_changes()

    @property
    def current(self) -> Band | None:
        return self.bands[-1] if self.bands and self.bands[-1].end is None else None

    def observe(self, top: Package | None, now: float) -> None:
        """The top read at server time `now` (None: the queue is empty)."""
        if self.since is None:
            self.since = now
        current = self.current
        if current is not None and top is not None and current.identity == hash(top):
            return
        if current is None and top is None:
            return
        changed_at = now
        if current is not None:
            expired_at = current.expire_time
            if expired_at is not None and expired_at <= now:
                changed_at = max(current.start, expired_at)  # it left the top then
            current.end = changed_at
            self._changed(current.seq)
        if top is not None:
            band = Band(
                self.next_seq, hash(top), label(top.payload), repr(top.score), top.expire_time,
                changed_at,
            )  # fmt: skip
            self.next_seq += 1
            self.bands.append(band)
            self._changed(band.seq)
        self.prune(now)

    def _changed(self, seq: int) -> None:
        if self.changed_from is None or seq < self.changed_from:
            self.changed_from = seq

    def lost(self, now: float) -> None:
        """Redis was lost at (about) server time `now`."""
        if not self.gaps or self.gaps[-1].end is not None:
            self.gaps.append(Gap(now))

    def back(self, now: float) -> None:
        if self.gaps and self.gaps[-1].end is None:
            self.gaps[-1].end = max(now, self.gaps[-1].start)

    def prune(self, now: float) -> None:
        """Forget what ended before the window."""
        oldest = now - self.window
        while self.bands and self.bands[0].end is not None and self.bands[0].end < oldest:
            self.bands.popleft()
        while self.gaps and self.gaps[0].end is not None and self.gaps[0].end < oldest:
            self.gaps.popleft()

    def take_changes(self) -> int | None:
        """The first band changed (or added) since the last call; None: none."""
        changed, self.changed_from = self.changed_from, None
        return changed

    def as_json(self, changed_from: int | None = 0) -> dict[str, Any]:
        """All of it; or, given `changed_from`, only the bands from that one on
        (None: no band), and `first`, the oldest band kept: a page that had
        the timeline before merges these into it."""
        if changed_from is None:
            bands: list[Band] = []
        else:
            bands = [band for band in self.bands if band.seq >= changed_from]
        return {
            "window": self.window,
            "since": self.since,
            "whole": changed_from == 0,
            "first": self.bands[0].seq if self.bands else self.next_seq,
            "bands": [band.as_json() for band in bands],
            "gaps": [{"start": gap.start, "end": gap.end} for gap in self.gaps],
        }
