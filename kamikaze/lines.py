"""JSON lines for `kamikaze push -`: one package a line (UTF-8), read in batches."""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Iterable, Iterator

from kamikaze.package import as_bytes, check_expire_time

Item = tuple[str, float, float]
FIELDS = ("payload", "ttl", "priority")


class BadLine(ValueError):
    """A line that is not a package; the message names its number."""


def parse_line(line: str | bytes, number: int) -> Item:
    """One package from one line (bytes must be UTF-8); BadLine says why not."""
    text = _text(line, number)
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise BadLine(f"line {number}: not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadLine(f"line {number}: not a JSON object")
    for field in FIELDS:
        if field not in obj:
            raise BadLine(f"line {number}: {field} is missing")
    payload, ttl, priority = (obj[field] for field in FIELDS)
    if not isinstance(payload, str):
        raise BadLine(f"line {number}: payload must be a string, not {_shown(payload)}")
    _check_encodable(payload, number)
    ttl_value, priority_value = _number(ttl), _number(priority)
    if ttl_value is None or ttl_value <= 0:
        raise BadLine(f"line {number}: ttl must be a finite number > 0, not {_shown(ttl)}")
    if priority_value is None:
        raise BadLine(f"line {number}: priority must be a finite number, not {_shown(priority)}")
    try:
        check_expire_time(ttl_value)
    except ValueError as exc:
        raise BadLine(f"line {number}: {exc}") from None
    return payload, ttl_value, priority_value


def _text(line: str | bytes, number: int) -> str:
    if isinstance(line, str):
        return line
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadLine(
            f"line {number}: not UTF-8 (byte {line[exc.start]:#04x} at column {exc.start + 1})"
        ) from None


def _check_encodable(payload: str, number: int) -> None:
    # A surrogate escape (\udc80-\udcff) stands for a byte that is not UTF-8, as
    # `list --json` shows one; any other lone surrogate can be stored as nothing.
    try:
        as_bytes(payload)
    except UnicodeEncodeError as exc:
        raise BadLine(
            f"line {number}: payload has a lone surrogate "
            f"({payload[exc.start]!r} at position {exc.start})"
        ) from None


def _number(value: object) -> float | None:
    """A finite JSON number as a float; None for anything else (bools too)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) else None


def _shown(value: object) -> str:
    """A value for a message, shortened: a line may hold a 300-digit number."""
    return reprlib.repr(value)


def batches(lines: Iterable[str | bytes], size: int) -> Iterator[list[Item]]:
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
