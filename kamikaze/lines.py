"""JSON lines for `kamikaze push -`: one package a line, read in batches."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator

from kamikaze.queue import check_expire_time

Item = tuple[str, float, float]


class BadLine(ValueError):
    """A line that is not a package; the message names its number."""


def parse_line(line: str, number: int) -> Item:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise BadLine(f"line {number}: not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadLine(f"line {number}: not a JSON object")
    payload, ttl, priority = obj.get("payload"), obj.get("ttl"), obj.get("priority")
    if not isinstance(payload, str):
        raise BadLine(f"line {number}: payload must be a string, not {payload!r}")
    ttl_value, priority_value = _number(ttl), _number(priority)
    if ttl_value is None or ttl_value <= 0:
        raise BadLine(f"line {number}: ttl must be a finite number > 0, not {ttl!r}")
    if priority_value is None:
        raise BadLine(f"line {number}: priority must be a finite number, not {priority!r}")
    try:
        check_expire_time(ttl_value)
    except ValueError as exc:
        raise BadLine(f"line {number}: {exc}") from None
    return payload, ttl_value, priority_value


def _number(value: object) -> float | None:
    """A finite JSON number as a float; None for anything else (bools too)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def batches(lines: Iterable[str], size: int) -> Iterator[list[Item]]:
    """Whole batches of parsed lines (blank lines skipped); raises BadLine
    before yielding the batch that holds a bad line."""
    batch: list[Item] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            batch.append(parse_line(line, number))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
