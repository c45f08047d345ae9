"""The package: one queue entry, and the member format of docs/contract.rst §1.

A member is ``<expire_time>:<payload>``; the payload is everything after the
first colon and an empty ``expire_time`` means the package never expires.
The Lua side (kamikaze/lua/common.lua: expire_text, split_member,
parse_expiry) writes and reads the same format; tests hold both to one table
of good and bad members (tests/members.py).
"""

from __future__ import annotations

import math
import re
import time

# The same rule as parse_expiry() in lua/common.lua: a plain decimal number,
# optionally with an exponent; no "nan", "inf", hex, spaces or underscores.
_EXPIRY = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)

# The latest expire time a push may set: 9999-12-31T23:59:59 UTC, the last second a
# date can show. Members written by others may hold any finite number.
MAX_EXPIRE_TIME = 253402300799
MAX_EXPIRE_TEXT = "9999-12-31T23:59:59"


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


class UnparseableMember(ValueError):
    """A sorted-set member that is not ``<expire_time>:<payload>``."""


def expire_text(expire_time: float | None) -> str:
    """The expire-time part of a member, as push.lua writes it (see
    canonical_expiry); empty for a package that never expires."""
    return "" if expire_time is None else canonical_expiry(expire_time)[0]


def canonical_expiry(expire_time: float) -> tuple[str, float]:
    """The expire text push.lua writes for `expire_time`, and the time it
    holds (common.lua's expire_text, the same steps in the same floats): the
    time to the microsecond, moved on by the fewest microseconds (one, mostly)
    that make its shortest text six decimals wide. The text is what
    ``repr(float(text))`` gives, so 0.1.x, which rebuilds a member as
    ``'{}:{}'.format(float(text), payload)`` to remove it, finds it; and, as
    wide as every other until the year 2286, it keeps equal priorities in
    expiry order (docs/data.rst)."""
    micros = float(math.floor(expire_time * 1_000_000 + 0.5))
    for nudge in range(21):
        value = (micros + nudge) / 1_000_000
        text = "%.6f" % value  # noqa: UP031 - printf's rounding, as Lua's string.format
        if float(text) == value and float("%.5f" % value) != value:  # noqa: UP031
            return text, value
    value = micros / 1_000_000
    return shortest_text(value), value


def shortest_text(value: float) -> str:
    """The shortest decimal text that reads back as `value` (>= 1): repr()'s
    digits, found as common.lua's shortest_text finds them."""
    for decimals in range(1, 18):
        text = f"{value:.{decimals}f}"
        if float(text) == value:
            return text
    return f"{value:.17g}"


def join_member(expire_part: str, payload: str) -> str:
    return f"{expire_part}:{payload}"


def encode_member(payload: str, expire_time: float | None) -> str:
    """The member of `payload` expiring at `expire_time`, as push.lua writes it."""
    return join_member(expire_text(expire_time), payload)


def index_entry(member: str | bytes) -> bytes:
    """The member's entry in the payload index, as lua/common.lua's index_entry
    writes it: b"d" + the first 8 bytes of the payload's SHA1 + the expire
    text for ours that expire, b"n" + payload for ours that never do, b"x" +
    member for others' (docs/data.rst)."""
    import hashlib

    raw = member if isinstance(member, bytes) else as_bytes(member)
    text, colon, payload = raw.partition(b":")
    try:
        expire_time = parse_expiry(text.decode("ascii")) if colon else None
    except (UnicodeDecodeError, UnparseableMember):
        return b"x" + raw
    if not colon:
        return b"x" + raw
    if expire_time is None:
        return b"n" + payload
    return b"d" + hashlib.sha1(payload).digest()[:8] + text


def parse_expiry(text: str) -> float | None:
    """Parse the part before the first colon; None means 'never expires'."""
    if text == "":
        return None
    if not _EXPIRY.fullmatch(text):
        raise UnparseableMember(f"expire time {text!r} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise UnparseableMember(f"expire time {text!r} is not finite")
    return value


def as_text(member: str | bytes) -> str:
    """Members are bytes on the wire; surrogateescape keeps any byte round-trippable."""
    if isinstance(member, bytes):
        return member.decode("utf-8", "surrogateescape")
    return member


def as_bytes(member: str) -> bytes:
    return member.encode("utf-8", "surrogateescape")


class Package:
    """A prioritised payload with an optional expiry: the 0.1.x interface.
    Immutable. (A plain class: the one-shot commands start without dataclasses.)"""

    __slots__ = ("expire_time", "payload", "raw_entry", "score")
    payload: str
    score: float
    expire_time: float | None
    raw_entry: str

    def __init__(
        self, payload: str, score: float, expire_time: float | None, raw_entry: str
    ) -> None:
        for name, value in (
            ("payload", payload),
            ("score", score),
            ("expire_time", expire_time),
            ("raw_entry", raw_entry),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Package is immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a Package is immutable: cannot delete {name}")

    @classmethod
    def create(cls, payload: str, priority: float, expire_time: float | None) -> Package:
        return cls(payload, float(priority), expire_time, encode_member(payload, expire_time))

    @classmethod
    def from_member(cls, member: str | bytes, score: float | str | bytes) -> Package:
        """Decode a sorted-set entry; raises UnparseableMember for someone else's data."""
        raw_entry = as_text(member)
        expire_text, colon, payload = raw_entry.partition(":")
        if not colon:
            raise UnparseableMember(f"member {raw_entry!r} has no colon")
        return cls(payload, float(score), parse_expiry(expire_text), raw_entry)

    @property
    def priority(self) -> float:
        return self.score

    @property
    def member(self) -> bytes:
        """The exact bytes of the member in Redis."""
        return as_bytes(self.raw_entry)

    def ttl(self, now: float | None = None) -> float | None:
        """Seconds left until expiry (negative once expired); None if it never expires."""
        if self.expire_time is None:
            return None
        return self.expire_time - (time.time() if now is None else now)

    def expired(self, now: float | None = None) -> bool:
        ttl = self.ttl(now)
        return ttl is not None and ttl <= 0

    def same_as(self, other: Package | None) -> bool:
        """The same package, whatever the text of its expire time: the
        reconcile pass rewrites old texts (docs/data.rst), and a follower must
        not take that for a new top."""
        return other is not None and (self.payload, self.score, self.expire_time) == (
            other.payload,
            other.score,
            other.expire_time,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Package):
            return NotImplemented
        return self.raw_entry == other.raw_entry and self.score == other.score

    def __hash__(self) -> int:
        return hash((self.raw_entry, self.score))

    def __repr__(self) -> str:
        return (
            f"Package(payload={self.payload!r}, priority={self.score!r}, "
            f"expire_time={self.expire_time!r})"
        )
