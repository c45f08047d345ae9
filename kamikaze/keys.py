"""The queue's key layout (docs/data.rst): the sorted set, its payload
index, its change counter and its write calls' outcomes, all in the queue
key's Redis Cluster slot, and the change channel named like the queue."""

from __future__ import annotations

import os

DEFAULT_KEY = "kamikaze"


def companion_key(key: str, suffix: str) -> str:
    """An extra key in the same Redis Cluster slot as `key`.

    A key with a hash tag already (`a{b}c`) keeps it: `a{b}c:suffix`.
    A key without one is wrapped: `{key}:suffix`.
    """
    if not key:
        raise ValueError("the key is empty")
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    if start >= 0 and end > start + 1:
        return f"{key}:{suffix}"
    if "}" in key:
        raise ValueError(
            f"key {key!r} contains '}}' but no hash tag: give it one, e.g. '{{{key}}}'"
        )
    return f"{{{key}}}:{suffix}"


def check_key(key: str) -> None:
    """Raise ValueError for a key no companion key could share a slot with,
    or one that is not UTF-8 (a byte of argv, surrogate-escaped)."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the key is not valid UTF-8") from None
    companion_key(key, "expiry")


class QueueKeys:
    """The keys of the queue `queue`: what its Lua scripts get as KEYS."""

    __slots__ = ("queue",)

    def __init__(self, queue: str) -> None:
        self.queue = queue

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QueueKeys) and other.queue == self.queue

    def __hash__(self) -> int:
        return hash(self.queue)

    def __repr__(self) -> str:
        return f"QueueKeys({self.queue!r})"

    @property
    def index(self) -> str:
        """The payload index: an entry per member (lua/common.lua, index_entry)."""
        return companion_key(self.queue, "by-payload")

    @property
    def seq(self) -> str:
        """The change counter: each change signal's number."""
        return companion_key(self.queue, "seq")

    @property
    def calls(self) -> str:
        """Recent write calls' outcomes, by call token (kamikaze.writes)."""
        return companion_key(self.queue, "calls")

    @property
    def call_expiries(self) -> str:
        """When each recent call's outcome is forgotten."""
        return companion_key(self.queue, "call-expiries")

    @property
    def lease(self) -> str:
        """Exclusive services' lease: "TERM OWNER", while one is active (docs/ha.rst)."""
        return companion_key(self.queue, "lease")

    @property
    def terms(self) -> str:
        """The exclusive services' term counter: it only grows."""
        return companion_key(self.queue, "term")

    @property
    def legacy(self) -> list[str]:
        """The indexes of versions before 1.0: the expiry index and the
        payload index of whole members, deleted once the queue is indexed anew."""
        return [companion_key(self.queue, "expiry"), companion_key(self.queue, "payload")]

    @property
    def channel(self) -> str:
        return self.queue

    @staticmethod
    def new_token() -> str:
        """A write call's token, unique enough never to meet another's."""
        return os.urandom(12).hex()

    @property
    def all(self) -> list[str]:
        """KEYS[1..5] of every script; clear and reconcile also get the legacy ones."""
        return [self.queue, self.index, self.seq, self.calls, self.call_expiries]
