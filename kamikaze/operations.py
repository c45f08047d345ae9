"""The queue's operations as steps any client can run (sans I/O): push,
remove, listing, clear. Each step is a script to call or commands to send;
the reply is sent back into the step generator. kamikaze.queue runs them on
redis-py (async), kamikaze.quick on kamikaze.wire (the one-shot commands,
which must start fast): one copy of the logic for both.

Nothing here imports redis-py or asyncio.
"""

from __future__ import annotations

import math
import os
import time

from kamikaze.keys import QueueKeys
from kamikaze.package import (
    Package,
    UnparseableMember,
    as_bytes,
    as_text,
    check_priority,
    check_ttl,
    join_member,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator, Iterable
    from typing import Any, TypeAlias, TypeVar

    T = TypeVar("T")
    Step: TypeAlias = "Script | Commands"
    Steps: TypeAlias = "Generator[Step, Any, T]"

REMOVE_BATCH = 500  # payload-index entries per remove.lua call
REMOVE_WALK_COUNT = 5000  # queue entries per remove_scanning.lua call (~3 ms)
PAGE_SIZE = 2000  # members per page.lua call when listing
NAMED_SKIPS = 100  # others' members warned about one by one, per queue
SKIP_SUMMARY_INTERVAL = 60.0  # seconds between summary lines for the rest

_LUA_DIR = os.path.join(os.path.dirname(__file__), "lua")


_sources: dict[tuple[str, str], str] = {}


def script_source(name: str, signal_command: str = "PUBLISH") -> str:
    """common.lua, then the script: shared helpers included, BullMQ-style.
    `signal_command` is how the topology signals a change (kamikaze.connections)."""
    if (name, signal_command) not in _sources:
        texts = [f"local SIGNAL_COMMAND = '{signal_command}'"]
        for part in ("common", name):
            with open(os.path.join(_LUA_DIR, f"{part}.lua"), encoding="utf-8") as lua:
                texts.append(lua.read())
        _sources[name, signal_command] = "\n".join(texts)
    return _sources[name, signal_command]


def script_sha(name: str, signal_command: str = "PUBLISH") -> str:
    """The SHA1 Redis knows script_source() by (EVALSHA)."""
    try:  # CPython's own SHA1: hashlib loads OpenSSL, a few ms at every start
        module = __import__("_sha1")
    except ImportError:  # pragma: no cover - other Pythons
        module = __import__("hashlib")
    digest: str = module.sha1(script_source(name, signal_command).encode()).hexdigest()
    return digest


def server_time(seconds: bytes | int, microseconds: bytes | int) -> float:
    """The server's clock, from Redis' TIME reply."""
    return int(seconds) + int(microseconds) / 1_000_000


class Script:
    """Call the Lua script `name` with the queue's keys (or `keys`). A write
    (`what` names it, say "the push") also gets a call token of its own, as
    its first argument, so that it is applied at most once (kamikaze.writes)."""

    __slots__ = ("args", "keys", "name", "what")

    def __init__(
        self, name: str, args: list[Any], what: str | None = None, keys: list[str] | None = None
    ) -> None:
        self.name = name
        self.args = args
        self.what = what
        self.keys = keys


class Commands:
    """Send these commands at once (pipelined); the reply is their replies."""

    __slots__ = ("commands",)

    def __init__(self, commands: list[tuple[Any, ...]]) -> None:
        self.commands = commands


def push_many(items: Iterable[tuple[str, float | None, float]]) -> Steps[list[Package]]:
    """Add packages in one atomic call with one change signal; checks every
    one before anything is sent (ValueError)."""
    items = list(items)
    argv: list[Any] = []
    for payload, ttl, priority in items:
        check_ttl(ttl)
        check_priority(priority)
        argv += [as_bytes(payload), "" if ttl is None else repr(float(ttl)), repr(float(priority))]
    if not items:
        return []
    what = "the push" if len(items) == 1 else f"the push of {len(items)} packages"
    expire_texts = yield Script("push", argv, what)
    return [
        Package.from_member(join_member(as_text(text), payload), priority)
        for (payload, _, priority), text in zip(items, expire_texts, strict=True)
    ]


def remove(keys: QueueKeys, payload: str) -> Steps[int]:
    """Remove every package whose payload is exactly `payload`; the count.

    The payload index finds them at once; only while the queue holds more
    members than the index (0.1.x pushed some, the sweep has not yet
    reconciled), as an index step found it, is the queue walked as well, in
    bounded steps (docs/data.rst)."""
    exact = as_bytes(payload)
    removed, last, walk = 0, b"", False
    while True:
        looked_at, count, unindexed, last = yield Script(
            "remove", [exact, last, REMOVE_BATCH], "the remove"
        )
        removed += int(count)
        walk = walk or bool(int(unindexed))  # as each step found it, atomically
        if int(looked_at) < REMOVE_BATCH:
            break
    if not walk:
        return removed
    after: list[Any] = [b"", b""]
    while True:
        looked_at, count, *after = yield Script(
            "remove_scanning", [exact, *after, REMOVE_WALK_COUNT], "the remove"
        )
        removed += int(count)
        if int(looked_at) < REMOVE_WALK_COUNT:
            return removed


def sizes(keys: QueueKeys) -> Steps[tuple[int, int]]:
    """Members in the queue and entries in its payload index."""
    queue_size, index_size = yield Commands([("ZCARD", keys.queue), ("ZCARD", keys.index)])
    return int(queue_size), int(index_size)


def clear(keys: QueueKeys) -> Steps[int]:
    """Delete the queue and its indexes; how many members there were."""
    return int((yield Script("clear", [], "the clear", keys=[*keys.all, *keys.legacy])))


def pages(keys: QueueKeys, limit: int | None) -> Steps[tuple[list[tuple[Any, Any]], float]]:
    """Entries (member, score) in Redis' order, at most `limit`, and the
    server's clock when the walk began. Each page goes on just past the last
    entry of the one before: whatever is pushed or removed meanwhile, none is
    shown twice, and none that stayed in the queue throughout is missed."""
    after: list[Any] = ["", ""]
    found: list[tuple[Any, Any]] = []
    now: float | None = None
    page = PAGE_SIZE if limit is None else min(PAGE_SIZE, max(limit, 1))
    while True:
        sec, usec, *flat = yield Script("page", [*after, page], keys=[keys.queue])
        now = server_time(sec, usec) if now is None else now
        found += zip(flat[::2], flat[1::2], strict=True)
        if len(flat) < 2 * page or (limit is not None and len(found) >= limit):
            return found, now
        after = [flat[-1], flat[-2]]


def listing(
    keys: QueueKeys, limit: int | None, skips: SkipLog
) -> Steps[tuple[list[Package], float]]:
    """Live packages, top first (at most `limit`), and the server's clock when
    the listing began (read-only: expired ones are left for the service)."""
    live: list[Package] = []
    skipped: list[bytes] = []
    after: list[Any] = ["", ""]
    now: float | None = None
    page = PAGE_SIZE if limit is None else min(PAGE_SIZE, max(limit, 1))
    while limit is None or len(live) < limit:
        sec, usec, *flat = yield Script("page", [*after, page], keys=[keys.queue])
        now = server_time(sec, usec) if now is None else now
        for member, score in zip(flat[::2], flat[1::2], strict=True):
            try:
                package = Package.from_member(member, score)
            except UnparseableMember:
                skipped.append(member)
                continue
            if not package.expired(now):
                live.append(package)
        if len(flat) < 2 * page:
            break
        after = [flat[-1], flat[-2]]
    skips.report(skipped)
    assert now is not None
    return live[:limit], now


class SkipLog:
    """Warnings about members that are not ours (they are skipped, never
    deleted), bounded however many there are: the first NAMED_SKIPS
    distinct members get a line each; the others, a count in one line per
    read, at most once per SKIP_SUMMARY_INTERVAL."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.named: set[str] = set()
        self.last_summary = -math.inf

    def report(self, members: Iterable[bytes]) -> None:
        members = list(members)
        if not members:
            return
        from kamikaze.report import say

        unnamed = 0
        for member in members:
            text = as_text(member)
            if text in self.named:
                continue
            if len(self.named) < NAMED_SKIPS:
                self.named.add(text)
                say(
                    "WARNING",
                    "kamikaze.queue",
                    "skipping member %r of %s: not <expire_time>:<payload>",
                    text,
                    self.key,
                )
            else:
                unnamed += 1
        if unnamed and time.monotonic() - self.last_summary >= SKIP_SUMMARY_INTERVAL:
            self.last_summary = time.monotonic()
            say(
                "WARNING",
                "kamikaze.queue",
                "skipping %d more members of %s that are not <expire_time>:<payload> "
                "(the first %d were named; this line comes at most every %.0f s)",
                unnamed,
                self.key,
                NAMED_SKIPS,
                SKIP_SUMMARY_INTERVAL,
            )
