"""Queue: the async API over one queue key, shared by the CLI and the service.

Every write is one Lua script (kamikaze/lua/, loaded here) that changes the
sorted set and publishes the change signal together, with expiry from the
server's clock; every write call is applied at most once (kamikaze.writes).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from kamikaze import connections, operations
from kamikaze.follower import Follower
from kamikaze.keys import DEFAULT_KEY, QueueKeys
from kamikaze.operations import (  # noqa: F401 - their home before operations.py
    NAMED_SKIPS,
    PAGE_SIZE,
    REMOVE_BATCH,
    REMOVE_WALK_COUNT,
    SkipLog,
    script_source,
    server_time,
)
from kamikaze.package import Package
from kamikaze.writes import at_most_once

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

T = TypeVar("T")

TOP_BUDGET = 256  # entries one top.lua call may look at (expired or unparseable)
SWEEP_BATCH = 100  # expired packages one sweep.lua call may delete (~1 ms)
RECONCILE_SCAN_COUNT = 100  # ZSCAN COUNT per reconcile.lua call (~2-3 ms)


@dataclass(frozen=True)
class TopReading:
    """The live top (None: queue empty) and the server's clock when it was
    read. The clock is anchored locally (time.monotonic()): `sent_at` before
    the request left, `read_at` after the reply came, so that deadlines
    computed later stay true however long the caller was busy."""

    top: Package | None
    server_time: float
    sent_at: float = field(default_factory=time.monotonic)
    read_at: float = field(default_factory=time.monotonic)

    def server_now(self) -> float:
        """The server's clock now, at the earliest it can be (the reply left
        Redis before `read_at`): waiting by it is never early."""
        return self.server_time + time.monotonic() - self.read_at

    def seconds_to_expiry(self) -> float | None:
        if self.top is None or self.top.expire_time is None:
            return None
        return max(0.0, self.top.expire_time - self.server_now())

    def top_expired(self) -> bool:
        """Whether the top may have expired by now: by the server's clock at
        the latest it can be (the request left after `sent_at`)."""
        latest = self.server_time + time.monotonic() - self.sent_at
        return self.top is not None and self.top.expired(latest)


class Queue:
    """Prioritised packages with expiry times on one Redis sorted set.

    Lower score = higher priority: the top is the live package with the lowest score.
    """

    def __init__(self, redis: Redis, key: str = DEFAULT_KEY, owns_client: bool = False) -> None:
        self.redis = redis
        self.owns_client = owns_client
        self.key = key
        self.keys = QueueKeys(key)
        self.index_key = self.keys.expiry
        self.payload_key = self.keys.payload
        self._keys = self.keys.all
        self.signal_command = connections.signal_command(redis)
        self._scripts: dict[str, AsyncScript] = {}
        self.skips = SkipLog(key)

    @classmethod
    def connect(cls, url: str | None = None, key: str = DEFAULT_KEY, **options: Any) -> Queue:
        """A queue on its own client; `options` are Settings fields
        (password_file, tls_ca_file, sentinels, cluster, ...). Close it with
        `aclose()`, or use it as `async with Queue.connect(...) as queue:`."""
        from kamikaze.settings import Settings

        settings = Settings(redis_url=url, key=key, **options)
        settings.check()
        return cls(settings.client(), key, owns_client=True)

    @classmethod
    def from_environment(cls) -> Queue:
        """A queue on its own client, configured by the KAMIKAZE_* variables
        as the CLI would be; inside `kamikaze service`, the service's own
        queue and server (the service exports its settings to its consumer)."""
        from kamikaze.environment import settings_from_environment

        settings = settings_from_environment()
        settings.check()
        return cls(settings.client(), settings.key, owns_client=True)

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
            source = script_source(name, self.signal_command)
            self._scripts[name] = self.redis.register_script(source)
        return self._scripts[name]

    async def push(self, payload: str, ttl: float | None, priority: float) -> Package:
        """Add one package; ttl None means it never expires."""
        (package,) = await self.push_many([(payload, ttl, priority)])
        return package

    async def push_many(self, items: Iterable[tuple[str, float | None, float]]) -> list[Package]:
        """Add packages in one atomic call with one change signal: all of
        them or none. Applied at most once: if the reply is lost it raises
        OutcomeUnknown (see kamikaze.writes)."""
        return await self._run(operations.push_many(items))

    async def remove(self, payload: str) -> int:
        """Remove every package whose payload is exactly `payload`; returns the count.

        The payload index finds them at once; only while the queue holds
        members no index knows of (0.1.x pushed them, the sweep has not yet
        reconciled) is the queue walked as well, in bounded steps."""
        return await self._run(operations.remove(self.keys, payload))

    async def clear(self) -> int:
        """Delete every package (the queue and its indexes, in one atomic
        call) and signal the change; returns how many members there were.
        Applied at most once, like every write."""
        return await self._run(operations.clear())

    async def _run(self, steps: operations.Steps[T]) -> T:
        """Run an operation's steps (kamikaze.operations) on this client."""
        reply: Any = None
        try:
            while True:
                reply = await self._perform(steps.send(reply))
        except StopIteration as done:
            result: T = done.value
            return result

    async def _perform(self, step: operations.Step) -> Any:
        if isinstance(step, operations.Commands):
            async with self.redis.pipeline(transaction=False) as pipe:
                for command in step.commands:
                    pipe.execute_command(*command)
                return await pipe.execute()
        if step.what is not None:
            return await self._write(step.name, step.args, step.what)
        keys = self._keys if step.keys is None else step.keys
        return await self._script(step.name)(keys=keys, args=step.args)

    async def _write(self, name: str, args: list[Any], what: str) -> Any:
        """One write script call, with a call key of its own (KEYS[4]) so
        that a repeat of it (redis-py retries) is applied once."""
        keys = [*self._keys, self.keys.new_call()]
        script = self._script(name)
        return await at_most_once(lambda: script(keys=keys, args=args), what)

    async def top(self) -> Package | None:
        """The live top (None: the queue is empty), deleting expired packages
        above it on the way."""
        return (await self.read_top()).top

    async def read_top(self) -> TopReading:
        """The live top and the server's clock when it was read (what the
        service needs to wait for the top's expiry), deleting expired
        packages above it on the way."""
        script = self._script("top")
        after: list[bytes | str] = ["", ""]  # the last of others' members skipped
        skipped: list[bytes] = []
        while True:
            sent_at = time.monotonic()
            sec, usec, _removed, step_skipped, more, *entry = await script(
                keys=self._keys, args=[*after, TOP_BUDGET]
            )
            skipped += step_skipped[::2]
            if step_skipped:
                after = [step_skipped[-1], step_skipped[-2]]
            if not more:
                self.skips.report(skipped)
                top = Package.from_member(entry[0], entry[1]) if entry else None
                return TopReading(top, server_time(sec, usec), sent_at)

    async def sweep(self, batch: int = SWEEP_BATCH) -> int:
        """Delete expired packages anywhere in the queue, found through the
        expiry index, in bounded calls; returns how many were deleted."""
        deleted = 0
        while True:
            removed, more = await self.sweep_step(batch)
            deleted += removed
            if not more:
                return deleted

    async def sweep_step(self, batch: int = SWEEP_BATCH) -> tuple[int, bool]:
        """Delete up to `batch` expired packages; returns (deleted, whether
        there may be more)."""
        looked_at, removed = await self._script("sweep")(keys=self._keys, args=[batch])
        return int(removed), int(looked_at) >= batch

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
        return await self._run(operations.sizes(self.keys))

    async def server_time(self) -> float:
        """The Redis server's clock."""
        return server_time(*await self.redis.time())

    async def packages(self, limit: int | None = None) -> list[Package]:
        """Live packages, top first, at most `limit` of them (read-only:
        expired ones are left for the service)."""
        return (await self.listing(limit))[0]

    async def listing(self, limit: int | None = None) -> tuple[list[Package], float]:
        """Live packages, top first (at most `limit`), and the server's clock
        when the listing began. Read in pages, each going on just past the
        last entry of the one before: whatever is pushed or removed
        meanwhile, no package is shown twice and none that stayed in the
        queue throughout is missed."""
        return await self._run(operations.listing(self.keys, limit, self.skips))

    async def entries(self, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        """The sorted set's members and scores exactly as stored, in Redis'
        order: expired packages and others' members included (what
        `kamikaze list --raw` prints). Read in pages, like `listing()`."""
        found, _ = await self._run(operations.pages(self.keys, limit))
        return found[:limit]

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

    async def follow(self) -> AsyncIterator[Package | None]:
        """The top now, then each time it changes (a more urgent push, its
        removal or expiry, the queue emptying: then None); follows change
        signals, acts on the top's expire time, and rides out Redis outages.
        Like the service, it deletes an expired top as it goes."""
        follower = Follower(lambda: self, connections.describe(self.redis), owns_clients=False)
        async for change in follower.changes():
            yield change.top

    watch = follow  # its name before 1.0: `watch` is now the command (kamikaze.watch)
