"""What the commands say, on both paths (kamikaze.quick and kamikaze.cli):
`list`'s output, the log lines of push, remove and clear, and the one line
of a failure. It imports what it needs only when it has something to say:
the one-shot commands start once per package.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from logging import Logger

    from kamikaze.package import Package
    from kamikaze.settings import Settings

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_threshold: int | None = None  # set: write human log lines here, as logging would
_pending_logs: tuple[str, str] | None = None  # (level, format) for logging, at the first line


def configure_logs(level: str, fmt: str) -> None:
    """Log at `level` in `fmt` (human or json). In the human format the lines
    are written here, as kamikaze.logs would format them, without loading
    logging (a few ms at every start); JSON lines go through logging."""
    global _threshold, _pending_logs
    if fmt == "human":
        _threshold = LEVELS[level.upper()]
    else:
        _pending_logs = (level, fmt)


def reset_logs() -> None:
    """Back to logging's own set-up (the fast path is done)."""
    global _threshold, _pending_logs
    _threshold = _pending_logs = None


def say(level: str, logger: str, message: str, *args: object) -> None:
    """A log line of `logger` at `level` (message % args, as logging does)."""
    if _threshold is not None:
        if LEVELS[level] >= _threshold:
            _write_human(level, logger, message % args if args else message)
        return
    log(logger).log(LEVELS[level], message, *args)


def _write_human(level: str, logger: str, message: str) -> None:
    """kamikaze.logs.HUMAN_FORMAT, with logging's own asctime (local time, ms)."""
    import time

    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    sys.stderr.write(f"{stamp},{int((now - int(now)) * 1000):03d} {level} {logger}: {message}\n")
    sys.stderr.flush()


def log(name: str = "kamikaze") -> Logger:
    """The logger `name`, set up as configure_logs() (or the full CLI) said."""
    global _pending_logs
    import logging

    if _pending_logs is not None:
        from kamikaze.logs import configure

        configure(*_pending_logs)
        _pending_logs = None
    return logging.getLogger(name)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def pushed(count: int) -> None:
    say("INFO", "kamikaze", "pushed %s", _plural(count, "package"))


def removed(count: int, payload: str) -> None:
    say("INFO", "kamikaze", "removed %s with payload %r", _plural(count, "package"), payload)


def cleared(count: int, key: str) -> None:
    say("INFO", "kamikaze", "cleared %s from %s", _plural(count, "package"), key)


def echo(text: str, errors: str = "surrogateescape") -> None:
    """Print text; by default bytes of payloads that are not UTF-8 pass through."""
    sys.stdout.buffer.write(text.encode("utf-8", errors) + b"\n")
    sys.stdout.flush()


def listing(packages: Sequence[Package], now: float, as_json: bool) -> None:
    """`list`: JSON, a table on a terminal, else plain columns (nothing for none)."""
    from kamikaze import output

    if as_json:
        # Lone surrogates (non-UTF-8 bytes) become JSON escapes: the output stays UTF-8.
        echo(output.as_json(packages, now), errors="backslashreplace")
    elif sys.stdout.isatty():
        echo(output.table(packages, now))
    elif packages:
        echo(output.plain(packages, now))


def raw_listing(entries: Sequence[tuple[bytes, bytes]]) -> None:
    """`list --raw`: score, tab, member, as Redis holds them."""
    from kamikaze import output

    if entries:
        echo(output.raw(entries, for_terminal=sys.stdout.isatty()))


def failure_line(settings: Settings, exc: BaseException, configured: bool) -> str:
    """What went wrong with Redis, in one line; with a hint for the embedded
    server when nothing said where Redis is and nothing listened there."""
    from kamikaze.errors import EMBEDDED_HINT, is_refused, redis_error_line

    line = redis_error_line(settings, exc)
    if is_refused(exc) and not configured:
        line += EMBEDDED_HINT
    return line


def failure(line: str) -> int:
    """Say a failure in one line (a JSON log line under --log-format json); exit 1."""
    if _threshold is None and (_pending_logs is not None or _json_logs()):
        log().error(line)
    else:
        sys.stderr.write(f"Error: {line}\n")
        sys.stderr.flush()
    return 1


def _json_logs() -> bool:
    if "logging" not in sys.modules:
        return False
    from kamikaze.logs import json_active

    return json_active()


def embedded_problem(settings: Settings) -> str | None:
    """Why the embedded server cannot be used now, if settings ask for it."""
    if not settings.embedded:
        return None
    from kamikaze.embedded import EmbeddedError

    try:
        settings.embedded_server().require_running()
    except EmbeddedError as exc:
        return str(exc)
    return None
