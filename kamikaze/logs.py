"""Logging setup: the human format of the CLI, or one JSON object per line for log shippers."""

from __future__ import annotations

import logging
from typing import Any, TextIO

FORMATS = ("human", "json")
HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
}


def configure(level: str, fmt: str = "human", stream: TextIO | None = None) -> None:
    """Configure the root logger; stream defaults to stderr. The last call wins."""
    if fmt == "human":
        logging.basicConfig(level=level.upper(), format=HUMAN_FORMAT, stream=stream, force=True)
    elif fmt == "json":
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    else:
        raise ValueError(f"unknown log format {fmt!r}, expected one of {', '.join(FORMATS)}")


def json_active() -> bool:
    """Whether the root logger writes JSON lines (configure(..., "json"))."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, ASCII only, so lone surrogates cannot break the line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES:
                entry.setdefault(name, _jsonable(value))
        return _dumps(entry)


def _dumps(value: Any) -> str:
    # allow_nan=False: NaN and Infinity are not JSON; such values fall back to str().
    import json  # only for the JSON format: the CLI starts once per package

    return json.dumps(value, ensure_ascii=True, allow_nan=False, default=_safe_str)


def _jsonable(value: Any) -> Any:
    try:
        _dumps(value)
    except Exception:
        return _safe_str(value)
    return value


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return object.__repr__(value)


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        return f"{_safe_str(record.msg)} % {_safe_str(record.args)}"


def _utc_timestamp(created: float) -> str:
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return moment.removesuffix("+00:00") + "Z"
