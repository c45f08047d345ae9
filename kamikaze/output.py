"""Output formats of `kamikaze list`: table, plain columns, JSON."""

from __future__ import annotations

import math
import time

from kamikaze.package import MAX_EXPIRE_TIME, Package

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

HEADERS = ("Score", "Payload", "Expire Time", "TTL (secs)")
FIRST_SECOND = -62135596800  # 0001-01-01T00:00:00 UTC
LONGEST_FIXED_TTL = 1e12  # past any TTL a push may set; beyond it, 1e+17 beats 18 digits


def utc_text(timestamp: float) -> str:
    """UTC YYYY-MM-DDTHH:MM:SS; past year 9999 (or before year 1), the last (first)
    second with '>' ('<'): members written by others may hold any number."""
    if timestamp > MAX_EXPIRE_TIME:
        return f">{utc_text(MAX_EXPIRE_TIME)}"
    if timestamp < FIRST_SECOND:
        return f"<{utc_text(FIRST_SECOND)}"
    if timestamp >= 0:  # time.gmtime: datetime costs a few ms at every `list`
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(timestamp)))
    from datetime import datetime, timedelta

    moment = datetime(1970, 1, 1) + timedelta(seconds=timestamp)
    return moment.isoformat(timespec="seconds")


def _expire_text(package: Package) -> str:
    return "never" if package.expire_time is None else utc_text(package.expire_time)


def _ttl_text(package: Package, now: float) -> str:
    ttl = package.ttl(now)
    if ttl is None:
        return "inf"
    return f"{ttl:.3f}" if abs(ttl) < LONGEST_FIXED_TTL else f"{ttl:.6g}"


def _payload_text(payload: str, for_terminal: bool) -> str:
    # A terminal must not receive raw control characters from someone's data.
    if for_terminal and not payload.isprintable():
        return repr(payload)[1:-1]
    return payload


def rows(packages: Sequence[Package], now: float, for_terminal: bool) -> list[tuple[str, ...]]:
    return [
        (repr(p.score), _payload_text(p.payload, for_terminal), _expire_text(p), _ttl_text(p, now))
        for p in packages
    ]


def table(packages: Sequence[Package], now: float) -> str:
    """Aligned columns under headers, for a terminal."""
    lines = [HEADERS, *rows(packages, now, for_terminal=True)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def plain(packages: Sequence[Package], now: float) -> str:
    """Tab-separated columns without headers, for scripts (0.1.x)."""
    return "\n".join("\t".join(row) for row in rows(packages, now, for_terminal=False))


def _json_number(value: float | None) -> str:
    import json

    # JSON has no infinity; 1e999 is valid JSON and reads back as infinity.
    if value is None:
        return "null"
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    return json.dumps(value)


def as_json(packages: Sequence[Package], now: float) -> str:
    """One JSON array of {payload, priority, expire_time, ttl}, top first."""
    import json  # only for --json: the CLI starts once per package

    return (
        "["
        + ", ".join(
            f'{{"payload": {json.dumps(p.payload, ensure_ascii=False)}, '
            f'"priority": {_json_number(p.score)}, '
            f'"expire_time": {_json_number(p.expire_time)}, '
            f'"ttl": {_json_number(p.ttl(now))}}}'
            for p in packages
        )
        + "]"
    )


def raw(entries: Sequence[tuple[bytes, bytes]], for_terminal: bool) -> str:
    """Score, tab, member: as Redis holds them (`list --raw`)."""
    return "\n".join(
        f"{score.decode('ascii')}\t"
        + _payload_text(member.decode("utf-8", "surrogateescape"), for_terminal)
        for member, score in entries
    )
