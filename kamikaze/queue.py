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
from kamikaze.package import Package, UnparseableMember
from kamikaze.writes import at_most_once

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

    from kamikaze.settings import Settings

T = TypeVar("T")

TOP_BUDGET = 256  # entries one top.lua call may look at (expired or unparseable)
SWEEP_BUDGET = 2000  # entries one sweep.lua call may look at (~1-2 ms)
RECONCILE_SCAN_COUNT = 100  # ZSCAN COUNT per reconcile.lua call (~2-3 ms)
LEASE_SIGNAL = b"kamikaze-lease "  # lua/lease.lua publishes these on the queue's channel


@dataclass(frozen=True)
class TopReading:
    """The live top (None: queue empty) and the server's clock when it was
    read. The clock is anchored locally (time.monotonic()): `sent_at` before
    the request left, `read_at` after the reply came, so that deadlines
    computed later stay true however long the caller was busy. `seq` is the
    queue's change counter as of the reading (the change signal's number),
    when known."""

    top: Package | None
    server_time: float
    sent_at: float = field(default_factory=time.monotonic)
    read_at: float = field(default_factory=time.monotonic)
    seq: int | None = None

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
        self.index_key = self.keys.index
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
        return cls(reachable_client(settings), key, owns_client=True)

    @classmethod
    def from_environment(cls) -> Queue:
        """A queue on its own client, configured by the KAMIKAZE_* variables
        as the CLI would be; inside `kamikaze service`, the service's own
        queue and server (the service exports its settings to its consumer)."""
        from kamikaze.environment import settings_from_environment

        settings = settings_from_environment()
        settings.check()
        return cls(reachable_client(settings), settings.key, owns_client=True)

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
        """Delete every package (the queue and its index, in one atomic
        call) and signal the change; returns how many members there were.
        Applied at most once, like every write."""
        return await self._run(operations.clear(self.keys))

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
        keys = self._keys if step.keys is None else step.keys
        if step.what is not None:
            return await self._write(step.name, keys, step.args, step.what)
        return await self._script(step.name)(keys=keys, args=step.args)

    async def _write(self, name: str, keys: list[str], args: list[Any], what: str) -> Any:
        """One write script call, with a call token of its own (ARGV[1]) so
        that a repeat of it (redis-py retries) is applied once."""
        args = [self.keys.new_token(), *args]
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
            sec, usec, _removed, step_skipped, more, seq, *entry = await script(
                keys=self._keys, args=[*after, TOP_BUDGET]
            )
            skipped += step_skipped[::2]
            if step_skipped:
                after = [step_skipped[-1], step_skipped[-2]]
            if not more:
                self.skips.report(skipped)
                top = Package.from_member(entry[0], entry[1]) if entry else None
                return TopReading(top, server_time(sec, usec), sent_at, seq=int(seq))

    async def change_number(self) -> int:
        """The queue's change counter: the number of the last change signal."""
        return int(await self.redis.get(self.keys.seq) or 0)

    def signalled(self, previous: TopReading, signals: list[bytes]) -> TopReading | None:
        """What change signals (their data, in order; lua/common.lua,
        signal_change) say of the top since `previous`: a new reading, no
        read needed; `previous` itself when they all came before it (a
        signal can arrive after the read that already saw its change); or
        None when the top must be read: a signal without the top (0.1.x's,
        or one that could not tell it), a gap in the change numbers, or no
        number to go on from."""
        seq, latest = previous.seq, previous
        for data in signals:
            if data.startswith(LEASE_SIGNAL):
                continue  # exclusive services' news of their lease: the queue is as it was
            parts = data.split(b" ", 5)
            if parts[0] != b"new_message" or len(parts) < 2 or not parts[1].isdigit():
                return None  # 0.1.x's, or an older version's: read
            number = int(parts[1])
            if seq is not None and number <= seq:
                continue  # its change was read already
            if seq is None or number != seq + 1 or len(parts) not in (4, 6):
                return None  # a gap, or a signal that does not tell the top
            seq = number
            try:
                top = Package.from_member(parts[5], parts[4]) if len(parts) == 6 else None
            except (UnparseableMember, ValueError):
                return None
            latest = TopReading(top, server_time(parts[2], parts[3]), seq=seq)
        return latest

    async def sweep(self, budget: int = SWEEP_BUDGET) -> int:
        """Delete expired packages anywhere in the queue: one pass over it, in
        bounded calls (sweep.lua skips what cannot have expired); returns how
        many were deleted."""
        deleted, after = 0, None
        while True:
            removed, after = await self.sweep_step(after, budget)
            deleted += removed
            if after is None:
                return deleted

    async def sweep_step(
        self, after: tuple[Any, Any] | None = None, budget: int = SWEEP_BUDGET
    ) -> tuple[int, tuple[Any, Any] | None]:
        """One bounded step of a sweep pass, going on just past `after` (a
        (score, member) a step before returned; None: from the top). Returns
        (deleted, where the next step goes on), None at the end of the pass."""
        score, member = after or ("", "")
        _looked, removed, more, *going_on = await self._script("sweep")(
            keys=self._keys, args=[score, member, budget]
        )
        return int(removed), (going_on[0], going_on[1]) if int(more) else None

    async def reconcile_step(
        self, walked: str, cursor: int, count: int = RECONCILE_SCAN_COUNT
    ) -> tuple[int, int]:
        """One bounded step of indexing what 0.1.x wrote (walked='queue') or
        dropping what it removed (walked='index'); returns (cursor, changed)."""
        next_cursor, changed = await self._script("reconcile")(
            keys=[*self._keys, *self.keys.legacy], args=[walked, cursor, count]
        )
        return int(next_cursor), int(changed)

    async def sizes(self) -> tuple[int, int]:
        """Members in the queue and entries in its payload index."""
        return await self._run(operations.sizes(self.keys))

    async def active_service(self) -> str:
        """Which exclusive service is active on this queue, and its term:
        "host:pid, term 12"; "" when none is (docs/ha.rst)."""
        held = await self.redis.get(self.keys.lease)
        return describe_lease(held) if held else ""

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

    async def size(self) -> int:
        """Members in the queue (O(1)): expired packages the sweep has not yet
        deleted (at most a sweep's interval) included."""
        return int(await self.redis.zcard(self.key))

    async def follow(self) -> AsyncIterator[Package | None]:
        """The top now, then each time it changes (a more urgent push, its
        removal or expiry, the queue emptying: then None); follows change
        signals, acts on the top's expire time, and rides out Redis outages.
        Like the service, it deletes an expired top as it goes."""
        follower = Follower(lambda: self, connections.describe(self.redis), owns_clients=False)
        async for change in follower.changes():
            yield change.top

    watch = follow  # its name before 1.0: `watch` is now the command (kamikaze.watch)


def describe_lease(held: bytes | str) -> str:
    """The lease's "TERM host:pid:random" (lua/lease.lua) as "host:pid, term TERM"."""
    text = held.decode("utf-8", "replace") if isinstance(held, bytes) else held
    term, _, owner = text.partition(" ")
    return f"{owner.rsplit(':', 1)[0]}, term {term}"


def reachable_client(settings: Settings) -> Redis:
    """The settings' client; the embedded server is started on demand if none
    runs (kamikaze.EmbeddedError, with the CLI's message, says why it cannot be)."""
    if settings.embedded:
        settings.embedded_server().require_running()
    return settings.client()
