"""Output formats of `kamikaze list`: table, plain columns, JSON."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence

from kamikaze.package import Package

HEADERS = ("Score", "Payload", "Expire Time", "TTL (secs)")


def _expire_text(package: Package) -> str:
    if package.expire_time is None:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(package.expire_time))


def _ttl_text(package: Package, now: float) -> str:
    ttl = package.ttl(now)
    return "inf" if ttl is None else f"{ttl:.3f}"


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
    # JSON has no infinity; 1e999 is valid JSON and reads back as infinity.
    if value is None:
        return "null"
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    return json.dumps(value)


def as_json(packages: Sequence[Package], now: float) -> str:
    """One JSON array of {payload, priority, expire_time, ttl}, top first."""
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
