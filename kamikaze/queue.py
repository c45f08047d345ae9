"""Queue: the async API over one queue key, shared by the CLI and the service.

Every write is one Lua script (kamikaze/lua/) that changes the sorted set and
publishes the change signal together, with expiry from the server's clock.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from kamikaze.package import (
    MAX_EXPIRE_TEXT,
    MAX_EXPIRE_TIME,
    Package,
    UnparseableMember,
    as_bytes,
    as_text,
)
from kamikaze.settings import companion_key

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger(__name__)

TOP_BUDGET = 256  # entries one top.lua call may look at (expired or unparseable)
REMOVE_BATCH = 500  # payload-index entries per remove.lua call
REMOVE_SCAN_COUNT = 1000  # ZSCAN COUNT per remove_scanning.lua call
PAGE_SIZE = 2000  # members per ZRANGE page when listing
SWEEP_BATCH = 100  # expired packages one sweep.lua call may delete (~1 ms)
RECONCILE_SCAN_COUNT = 100  # ZSCAN COUNT per reconcile.lua call (~2-3 ms)
_GLOB_SPECIALS = frozenset(b"*?[]\\")


_LUA_DIR = os.path.join(os.path.dirname(__file__), "lua")


@cache
def script_source(name: str, sharded: bool = False) -> str:
    """common.lua, then the script: shared helpers included, BullMQ-style.

    The change signal is PUBLISH (0.1.x's), or SPUBLISH on a Redis Cluster:
    sharded pub/sub stays on the queue's shard instead of reaching every node."""
    texts = [f"local SIGNAL_COMMAND = '{'SPUBLISH' if sharded else 'PUBLISH'}'"]
    for part in ("common", name):
        with open(os.path.join(_LUA_DIR, f"{part}.lua"), encoding="utf-8") as lua:
            texts.append(lua.read())
    return "\n".join(texts)


def is_cluster(redis: Redis) -> bool:
    from redis.asyncio.cluster import RedisCluster

    return isinstance(redis, RedisCluster)


def glob_escape(payload: bytes) -> bytes:
    """Escape a payload for ZSCAN MATCH so it matches only itself."""
    return b"".join(b"\\" + bytes([b]) if b in _GLOB_SPECIALS else bytes([b]) for b in payload)


def check_ttl(ttl: float | None, now: float | None = None) -> None:
    if ttl is not None and not (math.isfinite(ttl) and ttl > 0):
        raise ValueError(f"TTL must be a finite number of seconds > 0, not {ttl!r}")
    check_expire_time(ttl, now)


def check_expire_time(ttl: float | None, now: float | None = None) -> None:
    """The expire time must be a date that can be shown (year 9999 at the latest).
    `now` defaults to the local clock: an estimate, push.lua checks the server's."""
    if ttl is not None and (time.time() if now is None else now) + ttl > MAX_EXPIRE_TIME:
        raise ValueError(f"TTL {ttl!r} puts the expire time past {MAX_EXPIRE_TEXT}")


def check_priority(priority: float) -> None:
    if not math.isfinite(priority):
        raise ValueError(f"priority must be a finite number, not {priority!r}")


@dataclass(frozen=True)
class TopReading:
    """The live top (None: queue empty) and the server's clock when it was read."""

    top: Package | None
    server_time: float

    def seconds_to_expiry(self) -> float | None:
        if self.top is None or self.top.expire_time is None:
            return None
        return max(0.0, self.top.expire_time - self.server_time)


class Queue:
    """Prioritised packages with expiry times on one Redis sorted set.

    Lower score = higher priority: the top is the live package with the lowest score.
    """

    def __init__(self, redis: Redis, key: str = "kamikaze", owns_client: bool = False) -> None:
        self.redis = redis
        self.owns_client = owns_client
        self.key = key
        self.index_key = companion_key(key, "expiry")
        self.payload_key = companion_key(key, "payload")
        self._keys = [key, self.index_key, self.payload_key]
        self.sharded = is_cluster(redis)
        self._scripts: dict[str, AsyncScript] = {}
        self._warned: set[str] = set()

    @classmethod
    def connect(cls, url: str | None = None, key: str = "kamikaze", **options: Any) -> Queue:
        """A queue on its own client; `options` are Settings fields
        (password_file, tls_ca_file, sentinels, cluster, ...). Close it with
        `aclose()`, or use it as `async with Queue.connect(...) as queue:`."""
        from kamikaze.settings import Settings

        settings = Settings(redis_url=url, key=key, **options)
        settings.check()
        return cls(settings.client(), key, owns_client=True)

    async def __aenter__(self) -> Queue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client, if this queue made it (Queue.connect)."""
        if self.owns_client:
            await self.redis.aclose()

    def _script(self, name: str) -> AsyncScript:
        if name not in self._scripts:
            source = script_source(name, self.sharded)
            self._scripts[name] = self.redis.register_script(source)
        return self._scripts[name]

    async def push(self, payload: str, ttl: float | None, priority: float) -> Package:
        """Add one package; ttl None means it never expires."""
        (package,) = await self.push_many([(payload, ttl, priority)])
        return package

    async def push_many(self, items: Iterable[tuple[str, float | None, float]]) -> list[Package]:
        """Add packages in one atomic call with one change signal."""
        items = list(items)
        argv: list[Any] = []
        for payload, ttl, priority in items:
            check_ttl(ttl)
            check_priority(priority)
            argv += [
                as_bytes(payload),
                "" if ttl is None else repr(float(ttl)),
                repr(float(priority)),
            ]
        if not items:
            return []
        expire_texts = await self._script("push")(keys=self._keys, args=argv)
        return [
            Package(
                payload,
                float(priority),
                float(text) if text else None,
                f"{as_text(text)}:{payload}",
            )
            for (payload, _, priority), text in zip(items, expire_texts, strict=True)
        ]

    async def remove(self, payload: str) -> int:
        """Remove every package whose payload is exactly `payload`; returns the count.

        The payload index finds them at once; only while the queue holds
        members no index knows of (0.1.x pushed them, the sweep has not yet
        reconciled) is the queue walked as well, in bounded steps."""
        removed = await self._remove_indexed(as_bytes(payload))
        queue_size, index_size = await self.sizes()
        if queue_size != index_size:
            removed += await self._remove_scanning(as_bytes(payload))
        return removed

    async def _remove_indexed(self, exact: bytes) -> int:
        script = self._script("remove")
        removed = skipped = 0
        while True:
            looked_at, count, step_skipped = await script(
                keys=self._keys, args=[exact, skipped, REMOVE_BATCH]
            )
            removed += int(count)
            skipped += int(step_skipped)
            if int(looked_at) < REMOVE_BATCH:
                return removed

    async def _remove_scanning(self, exact: bytes) -> int:
        pattern = b"*:" + glob_escape(exact)
        script = self._script("remove_scanning")
        cursor: bytes | int = 0
        removed = 0
        while True:
            cursor, count = await script(
                keys=self._keys, args=[cursor, pattern, exact, REMOVE_SCAN_COUNT]
            )
            removed += int(count)
            if int(cursor) == 0:
                return removed

    async def top(self) -> Package | None:
        """The live top (None: the queue is empty), deleting expired packages
        above it on the way."""
        return (await self.read_top()).top

    async def read_top(self) -> TopReading:
        """The live top and the server's clock when it was read (what the
        service needs to wait for the top's expiry), deleting expired
        packages above it on the way."""
        script = self._script("top")
        rank = 0
        while True:
            sec, usec, _removed, skipped, more, *entry = await script(
                keys=self._keys, args=[rank, TOP_BUDGET]
            )
            self._warn_unparseable(skipped)
            rank += len(skipped)
            if not more:
                server_time = int(sec) + int(usec) / 1_000_000
                top = Package.from_member(entry[0], entry[1]) if entry else None
                return TopReading(top, server_time)

    async def sweep(self, batch: int = SWEEP_BATCH) -> int:
        """Delete expired packages anywhere in the queue, found through the
        expiry index, in bounded calls; returns how many were deleted."""
        script = self._script("sweep")
        deleted = 0
        while True:
            looked_at, removed = await script(keys=self._keys, args=[batch])
            deleted += int(removed)
            if int(looked_at) < batch:
                return deleted

    async def reconcile_step(
        self, walked: str, cursor: int, count: int = RECONCILE_SCAN_COUNT
    ) -> tuple[int, int]:
        """One bounded step of indexing what 0.1.x wrote (walked='queue') or
        dropping what it removed (walked='index'); returns (cursor, changed)."""
        next_cursor, changed = await self._script("reconcile")(
            keys=self._keys, args=[walked, cursor, count]
        )
        return int(next_cursor), int(changed)

    async def sizes(self) -> tuple[int, int]:
        """Members in the queue and entries in its expiry index."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.key)
            pipe.zcard(self.index_key)
            queue_size, index_size = await pipe.execute()
        return int(queue_size), int(index_size)

    async def server_time(self) -> float:
        sec, usec = await self.redis.time()
        return float(sec) + usec / 1_000_000

    async def packages(self, limit: int | None = None) -> list[Package]:
        """Live packages, top first, at most `limit` of them (read-only:
        expired ones are left for the service)."""
        now = await self.server_time()
        live: list[Package] = []
        for start in range(0, await self.redis.zcard(self.key), PAGE_SIZE):
            page: list[tuple[bytes, float]] = await self.redis.zrange(  # type: ignore[assignment]
                self.key, start, start + PAGE_SIZE - 1, withscores=True
            )
            live += (p for p in self._decode(page) if not p.expired(now))
            if limit is not None and len(live) >= limit:
                return live[:limit]
        return live

    async def size(self, now: float | None = None) -> int:
        """Members in the queue; given the server time `now`, without the
        expired ones the expiry index knows of (two O(log N) calls)."""
        if now is None:
            return int(await self.redis.zcard(self.key))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.key)
            pipe.zcount(self.index_key, "-inf", now)
            members, expired = await pipe.execute()
        return max(int(members) - int(expired), 0)

    async def watch(self) -> AsyncIterator[Package | None]:
        """The top now, then each time it changes (a more urgent push, its
        removal or expiry, the queue emptying: then None); follows change
        signals, acts on the top's expire time, and rides out Redis outages.
        Like the service, it deletes an expired top as it goes."""
        from kamikaze.follow import Follower

        follower = Follower(lambda: self.redis, self.key, self.key, owns_clients=False)
        async for change in follower.changes():
            yield change.top

    def _decode(self, entries: Sequence[tuple[bytes, float]]) -> Iterable[Package]:
        for member, score in entries:
            try:
                yield Package.from_member(member, score)
            except UnparseableMember:
                self._warn_unparseable([member])

    def _warn_unparseable(self, members: Iterable[bytes]) -> None:
        for member in members:
            text = as_text(member)
            if text not in self._warned:
                if len(self._warned) >= 10_000:
                    self._warned.clear()
                self._warned.add(text)
                log.warning("skipping member %r of %s: not <expire_time>:<payload>", text, self.key)
