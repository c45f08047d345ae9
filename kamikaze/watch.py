"""`kamikaze watch`: a live view of the queue, redrawn on change signals.

`watch_queue()` joins the Redis side (a SignalFeed and the queue's listing)
to the view. The view's Redis side is injected: ``fetch(limit)`` reads the
top of the queue and ``changes`` yields once per change signal, so nothing is
polled. On a terminal the view is a full screen whose TTLs count down
locally between signals; elsewhere it prints one plain snapshot per change.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import termios
import time
import tty
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from kamikaze import output
from kamikaze.package import Package
from kamikaze.runtime import stop_task
from kamikaze.signals import Outage, Signals

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from kamikaze.queue import Queue

Snapshot = tuple[list[Package], int, float, str]
"""The first packages (top first), how many the queue holds, the server time
of reading, and the active exclusive service ("" when none: docs/ha.rst)."""

Fetch = Callable[[int], Awaitable[Snapshot]]
Size = Callable[[], tuple[int, int]]

ENTER = "\x1b[?1049h\x1b[?25l\x1b[?7l"  # alternate screen, hide cursor, no line wrap
LEAVE = "\x1b[0m\x1b[?7h\x1b[?25h\x1b[?1049l"
HOME = "\x1b[H"
CLEAR_LINE = "\x1b[K"
CLEAR_BELOW = "\x1b[J"
REVERSE = "\x1b[7m"
DIM = "\x1b[2m"
RESET = "\x1b[0m"
ELLIPSIS = "\u2026"
QUIT_KEYS = b"qQ"
CHROME = 3  # screen lines that are not rows: header, column titles, footer
PLAIN_LIMIT = 1000
STOP_TIMEOUT = 2.0  # seconds to stop following the change signals
PAYLOAD = output.HEADERS.index("Payload")


async def run_view(
    fetch: Fetch,
    changes: AsyncIterator[None],
    out: TextIO,
    inp: int | None,
    interactive: bool,
    size: Size = shutil.get_terminal_size,
    tick: float = 1.0,
    status: Callable[[], str] = str,
    stop: asyncio.Event | None = None,
) -> None:
    """Show the queue until `q`, `stop` (Ctrl-C, SIGTERM), the end of `changes`
    or cancellation.

    `status()` is a note for the terminal's header line (say, that Redis is
    being reconnected to); empty for none.

    Terminal mode (`interactive`) restores the screen and `inp`'s tty mode on every exit.
    Plain mode prints a snapshot per (coalesced) change and ends quietly on a broken pipe.
    """
    if interactive:
        await _watch_terminal(fetch, changes, out, inp, size, tick, status, stop)
    else:
        await _watch_plain(fetch, changes, out, stop)


def render(
    packages: Sequence[Package],
    total: int,
    now: float,
    columns: int,
    lines: int,
    note: str = "",
    active: str = "",
) -> list[str]:
    """The screen at server time `now`: header, column titles, rows top first, footer."""
    shown = list(packages[: max(lines - CHROME, 0)])
    header = f"kamikaze watch  {_count(total)}  {_utc(now)}  (q to quit)"
    if active:
        header += f"  active: {active}"
    if note:
        header += f"  [{note}]"
    titles, *rows = _table(shown, now, columns)
    styled = [
        _style(row, top=i == 0, expired=package.expired(now))
        for i, (row, package) in enumerate(zip(rows, shown, strict=True))
    ]
    screen = [_clip(header, columns), titles, *styled, *_footer(total, len(shown))]
    return screen[: max(lines, 1)]


def snapshot_text(packages: Sequence[Package], total: int, now: float, active: str = "") -> str:
    """One plain snapshot: a `#` line with the time, the count (and the active
    exclusive service), then `kamikaze list` rows."""
    header = f"# {_utc(now)} {_count(total)}"
    if active:
        header += f" (active: {active})"
    body = output.plain(packages, now)
    return f"{header}\n{body}\n" if body else f"{header}\n"


# The Redis side -------------------------------------------------------------------------


async def watch_queue(
    queue: Queue,
    address: str,
    out: TextIO,
    inp: int | None,
    interactive: bool,
    stop: asyncio.Event | None = None,
) -> None:
    """`kamikaze watch`: follow the queue's change signals and show it until
    `q`, `stop` or a broken pipe. Fails at once, like `list`, if Redis is not
    there to begin with."""

    async def fetch(limit: int) -> Snapshot:
        packages, now = await queue.listing(limit)
        return packages, await queue.size(), now, await queue.active_service()

    await fetch(1)
    feed = SignalFeed(queue.redis, queue.key, address, quiet=interactive)
    await run_view(fetch, aiter(feed), out, inp, interactive, status=feed.status, stop=stop)


class SignalFeed:
    """Every change signal of a queue, for views (`kamikaze watch`): it
    yields once as soon as it is subscribed, and again after each outage
    (changes before a subscription are not signalled), and keeps the outage
    for a status line. An idle subscription must answer a PING, as in the
    service."""

    def __init__(self, client: Redis, key: str, address: str, quiet: bool = False) -> None:
        self.client = client
        self.key = key
        # quiet: no log lines (a full-screen view shows status() instead)
        self.outage = Outage(address, quiet=quiet, logger="kamikaze.watch")

    def status(self) -> str:
        if self.outage.since is None:
            return ""
        return f"Redis lost {time.monotonic() - self.outage.since:.0f} s ago; reconnecting"

    async def __aiter__(self) -> AsyncIterator[None]:
        while True:
            signals = Signals(self.client, self.key)
            async with self.outage.attempt(signals):
                await signals.subscribe()
                self.outage.back()
                yield None  # subscribed: what changed before is not signalled, so read again
                while True:
                    while not await signals.wait_or_ping():
                        pass
                    signals.take()  # a view reads the whole list anyway
                    yield None
            await self.outage.pause()


# Rendering ------------------------------------------------------------------------------


def _count(total: int) -> str:
    return f"{total} package" if total == 1 else f"{total} packages"


def _utc(timestamp: float) -> str:
    return output.utc_text(timestamp) + "Z"


def _table(shown: Sequence[Package], now: float, columns: int) -> list[str]:
    cells = [output.HEADERS, *(_cells(package, now) for package in shown)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(output.HEADERS))]
    widths[PAYLOAD] = _payload_width(widths, columns)
    return [_line(row, widths, columns) for row in cells]


def _line(cells: Sequence[str], widths: list[int], columns: int) -> str:
    text = "  ".join(_fit(cell, width) for cell, width in zip(cells, widths, strict=True))
    return _clip(text.rstrip(), columns)


def _cells(package: Package, now: float) -> tuple[str, ...]:
    # The local clock stops at the expiry: a row expired since the fetch reads 0.000.
    if package.expire_time is not None:
        now = min(now, package.expire_time)
    return output.rows([package], now, for_terminal=True)[0]


def _payload_width(widths: list[int], columns: int) -> int:
    others = sum(widths) - widths[PAYLOAD] + 2 * (len(widths) - 1)
    return max(len(output.HEADERS[PAYLOAD]), min(widths[PAYLOAD], columns - others))


def _fit(cell: str, width: int) -> str:
    return _clip(cell, width).ljust(width)


def _clip(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: width - 1] + ELLIPSIS if width > 0 else ""


def _style(row: str, top: bool, expired: bool) -> str:
    codes = (REVERSE if top else "") + (DIM if expired else "")
    return f"{codes}{row}{RESET}" if codes else row


def _footer(total: int, shown: int) -> list[str]:
    if total == 0:
        return ["(queue empty)"]
    if total > shown:
        return [f"{ELLIPSIS} and {total - shown} more"]
    return []


def _frame(lines: list[str]) -> str:
    return HOME + (CLEAR_LINE + "\n").join(lines) + CLEAR_LINE + CLEAR_BELOW


def _write(out: TextIO, text: str) -> None:
    out.write(text)
    out.flush()


# Following the changes ------------------------------------------------------------------


@dataclass(frozen=True)
class _Shot:
    packages: list[Package]
    total: int
    server_time: float
    active: str
    fetched_at: float  # time.monotonic()

    def now(self) -> float:
        """The server time, estimated locally without asking the server again."""
        return self.server_time + time.monotonic() - self.fetched_at


@dataclass
class _View:
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dirty: bool = True
    ended: bool = False
    quit: bool = False

    def changed(self) -> None:
        self.dirty = True
        self.wake.set()

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    def stop(self) -> None:
        self.quit = True
        self.wake.set()


async def _read(fetch: Fetch, limit: int) -> _Shot:
    packages, total, server_time, active = await fetch(limit)
    return _Shot(packages, total, server_time, active, time.monotonic())


async def _pump(changes: AsyncIterator[None], view: _View) -> None:
    try:
        async for _ in changes:
            view.changed()
    finally:
        view.end()


async def _follow(
    view: _View,
    fetch: Fetch,
    changes: AsyncIterator[None],
    limit: Callable[[], int],
    show: Callable[[_Shot], None],
    tick: float | None,
    stop: asyncio.Event | None = None,
) -> None:
    """Fetch and show after each burst of changes; with a `tick`, also show
    every tick; until `stop` is set."""
    pump = asyncio.ensure_future(_pump(changes, view))
    stopper = asyncio.ensure_future(stop.wait() if stop else asyncio.Event().wait())
    stopper.add_done_callback(lambda _: view.stop())
    try:
        await _refresh(view, fetch, limit, show, tick)
        if pump.done():
            pump.result()  # raises what `changes` raised
    finally:
        stopper.cancel()
        # Cancelled once, redis-py may swallow it (while subscribing): repeat until it ends.
        await stop_task(pump, STOP_TIMEOUT)


async def _refresh(
    view: _View,
    fetch: Fetch,
    limit: Callable[[], int],
    show: Callable[[_Shot], None],
    tick: float | None,
) -> None:
    shot: _Shot | None = None
    while not view.quit:
        view.wake.clear()
        if view.dirty:
            view.dirty = False
            shot = await _read(fetch, limit())
            show(shot)
        elif shot is not None and tick is not None:
            show(shot)
        if view.ended and not view.dirty:
            return
        if not (view.dirty or view.quit):
            await _sleep(view.wake, tick)


async def _sleep(wake: asyncio.Event, timeout: float | None) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await wake.wait()


# Plain mode -----------------------------------------------------------------------------


async def _watch_plain(
    fetch: Fetch, changes: AsyncIterator[None], out: TextIO, stop: asyncio.Event | None = None
) -> None:
    shown: tuple[list[Package], int, str] | None = None

    def show(shot: _Shot) -> None:
        nonlocal shown
        if shown == (shot.packages, shot.total, shot.active):
            return  # a signal that changed nothing shown (or a re-read after subscribing)
        separator = "" if shown is None else "\n"
        shown = (shot.packages, shot.total, shot.active)
        text = snapshot_text(shot.packages, shot.total, shot.server_time, shot.active)
        _write(out, separator + text)

    try:
        await _follow(_View(), fetch, changes, lambda: PLAIN_LIMIT, show, None, stop)
    except BrokenPipeError:
        _silence(out)


def _silence(out: TextIO) -> None:
    """Point a broken stdout at /dev/null, so the interpreter's last flush stays quiet."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)


# Terminal mode --------------------------------------------------------------------------


async def _watch_terminal(
    fetch: Fetch,
    changes: AsyncIterator[None],
    out: TextIO,
    inp: int | None,
    size: Size,
    tick: float,
    status: Callable[[], str] = str,
    stop: asyncio.Event | None = None,
) -> None:
    view = _View()

    def limit() -> int:
        # Never 0: ZRANGE key 0 -1 would read the whole queue.
        return max(size()[1] - CHROME, 1)

    def draw(shot: _Shot) -> None:
        columns, lines = size()
        screen = render(
            shot.packages, shot.total, shot.now(), columns, lines, status(), shot.active
        )
        _write(out, _frame(screen))

    with (
        contextlib.suppress(KeyboardInterrupt),
        _cbreak(inp),
        _keys(inp, view),
        _screen(out),
    ):
        await _follow(view, fetch, changes, limit, draw, tick, stop)


@contextlib.contextmanager
def _screen(out: TextIO) -> Iterator[None]:
    _write(out, ENTER)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            _write(out, LEAVE)


@contextlib.contextmanager
def _cbreak(fd: int | None) -> Iterator[None]:
    """Keys without Enter and without echo; Ctrl-C still sends SIGINT."""
    saved = _tty_mode(fd)
    if fd is None or saved is None:
        yield
        return
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _tty_mode(fd: int | None) -> list[Any] | None:
    if fd is None:
        return None
    try:
        return termios.tcgetattr(fd)
    except termios.error:
        return None


@contextlib.contextmanager
def _keys(fd: int | None, view: _View) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    if fd is None or not _add_reader(loop, fd, view):
        yield
        return
    try:
        yield
    finally:
        loop.remove_reader(fd)


def _add_reader(loop: asyncio.AbstractEventLoop, fd: int, view: _View) -> bool:
    try:
        loop.add_reader(fd, _on_key, loop, fd, view)
    except OSError:  # a regular file cannot be watched
        return False
    return True


def _on_key(loop: asyncio.AbstractEventLoop, fd: int, view: _View) -> None:
    try:
        data = os.read(fd, 1024)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        loop.remove_reader(fd)  # no more keys; keep watching
    elif any(key in QUIT_KEYS for key in data):
        view.stop()
