"""The live view of `kamikaze watch`, against a fake fetch and a queue of change signals."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pty
import re
import termios
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from kamikaze import watch as live
from kamikaze.package import Package
from kamikaze.watch import LEAVE, REVERSE, Snapshot, render, run_view

NOW = 1795824900.0  # 2026-11-28T00:15:00 UTC
END = object()
SIZE = (80, 10)
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def package(payload: str, priority: float, ttl: float | None = 100.0) -> Package:
    return Package.create(payload, priority, None if ttl is None else NOW + ttl)


class FakeQueue:
    """Serves `packages` (top first) as of NOW; records each fetch's limit."""

    def __init__(self, packages: list[Package] | None = None) -> None:
        self.packages = packages or []
        self.active = ""  # the active exclusive service, as Queue.active_service() says it
        self.limits: list[int] = []
        self.signals: asyncio.Queue[object] = asyncio.Queue()

    async def fetch(self, limit: int) -> Snapshot:
        self.limits.append(limit)
        return self.packages[:limit], len(self.packages), NOW, self.active

    async def changes(self) -> AsyncIterator[None]:
        while await self.signals.get() is not END:
            yield None

    def signal(self, count: int = 1) -> None:
        for _ in range(count):
            self.signals.put_nowait(None)

    def end(self) -> None:
        self.signals.put_nowait(END)


async def until(condition: Callable[[], object], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


def start(
    queue: FakeQueue,
    out: io.StringIO,
    interactive: bool,
    inp: int | None = None,
    tick: float = 0.01,
) -> asyncio.Task[None]:
    view = run_view(queue.fetch, queue.changes(), out, inp, interactive, lambda: SIZE, tick)
    return asyncio.ensure_future(view)


def frames(out: io.StringIO) -> list[str]:
    return out.getvalue().split(live.HOME)[1:]


def text(frame: str) -> list[str]:
    return [ESCAPE.sub("", line) for line in frame.splitlines()]


# render ---------------------------------------------------------------------------------


def test_render_header_titles_rows_top_first() -> None:
    screen = render([package("top", 1), package("next", 2)], 2, NOW, 80, 10)
    assert screen[0] == "kamikaze watch  2 packages  2026-11-28T00:15:00Z  (q to quit)"
    assert re.split(r" {2,}", screen[1]) == ["Score", "Payload", "Expire Time", "TTL (secs)"]
    assert re.split(r" {2,}", ESCAPE.sub("", screen[2])) == [
        "1.0",
        "top",
        "2026-11-28T00:16:40",
        "100.000",
    ]
    assert "next" in screen[3]
    assert len(screen) == 4


def test_render_shows_a_status_note_in_the_header() -> None:
    screen = render([package("top", 1)], 1, NOW, 120, 10, "Redis lost 3 s ago; reconnecting")
    assert screen[0] == (
        "kamikaze watch  1 package  2026-11-28T00:15:00Z  (q to quit)"
        "  [Redis lost 3 s ago; reconnecting]"
    )


def test_render_highlights_only_the_top_row() -> None:
    screen = render([package("top", 1), package("next", 2)], 2, NOW, 80, 10)
    assert screen[2].startswith(REVERSE)
    assert screen[2].endswith(live.RESET)
    assert "\x1b" not in screen[3]


def test_render_empty_queue() -> None:
    assert render([], 0, NOW, 80, 10)[2:] == ["(queue empty)"]


def test_render_more_than_fit() -> None:
    packages = [package(f"p{i}", i) for i in range(10)]
    screen = render(packages, 25, NOW, 80, 6)
    assert len(screen) == 6
    assert [ESCAPE.sub("", line).split()[1] for line in screen[2:5]] == ["p0", "p1", "p2"]
    assert screen[-1] == "\u2026 and 22 more"


def test_render_expired_rows_are_dimmed_at_zero() -> None:
    soon, later = package("soon", 2, ttl=1), package("later", 3, ttl=50)
    screen = render([package("top", 1), soon, later], 3, NOW + 2, 80, 10)
    assert screen[3].startswith(live.DIM)
    assert ESCAPE.sub("", screen[3]).endswith(" 0.000")
    assert screen[4].endswith("48.000")
    assert live.DIM not in screen[4]


def test_render_never_expiring() -> None:
    row = render([package("forever", 1, ttl=None)], 1, NOW, 80, 10)[2]
    assert re.split(r" {2,}", ESCAPE.sub("", row)) == ["1.0", "forever", "never", "inf"]


def test_render_truncates_payloads_to_the_width() -> None:
    screen = render([package("x" * 200, 1), package("short", 2)], 2, NOW, 60, 10)
    plain = [ESCAPE.sub("", line) for line in screen]
    assert all(len(line) <= 60 for line in plain)
    assert "x\u2026" in plain[2]
    assert plain[2].endswith("100.000")  # the TTL column survives


def test_render_escapes_control_characters() -> None:
    screen = render([package("a\x1b[2Jb\nc", 1)], 1, NOW, 80, 10)
    assert "a\\x1b[2Jb\\nc" in screen[2]
    assert screen[2].count("\x1b") == 2  # only the highlight and its reset


def test_render_any_expire_time_and_score() -> None:
    members = {"1e17:far": 9, "1e300:x": 1, "-1e300:past": 1, "1e-300:tiny": 1}
    members |= {":huge": 1e300, "253402300800:y": -1e300}
    packages = [Package.from_member(member, score) for member, score in members.items()]
    screen = render(packages, len(packages), NOW, 120, 20)
    rows = [re.split(r" {2,}", ESCAPE.sub("", line)) for line in screen[2:]]
    assert [row[1:3] for row in rows] == [
        ["far", ">9999-12-31T23:59:59"],
        ["x", ">9999-12-31T23:59:59"],
        ["past", "<0001-01-01T00:00:00"],
        ["tiny", "1970-01-01T00:00:00"],
        ["huge", "never"],
        ["y", ">9999-12-31T23:59:59"],
    ]
    assert [row[0] for row in rows[4:]] == ["1e+300", "-1e+300"]
    snapshot = live.snapshot_text(packages, len(packages), NOW)
    assert snapshot.count("\n") == 1 + len(packages)


# plain mode -----------------------------------------------------------------------------


async def test_plain_prints_a_snapshot_per_change() -> None:
    queue, out = FakeQueue([package("a", 1)]), io.StringIO()
    task = start(queue, out, interactive=False)
    await until(lambda: len(queue.limits) == 1)
    queue.packages = [package("b", 0, ttl=None), package("a", 1)]
    queue.signal()
    await until(lambda: len(queue.limits) == 2)
    queue.packages = []
    queue.signal()
    queue.end()
    await asyncio.wait_for(task, 2)
    a_row = "1.0\ta\t2026-11-28T00:16:40\t100.000"
    assert out.getvalue().split("\n\n") == [
        f"# 2026-11-28T00:15:00Z 1 package\n{a_row}",
        f"# 2026-11-28T00:15:00Z 2 packages\n0.0\tb\tnever\tinf\n{a_row}",
        "# 2026-11-28T00:15:00Z 0 packages\n",
    ]
    assert "\x1b" not in out.getvalue()


async def test_plain_coalesces_a_burst_and_shows_the_last_state() -> None:
    queue, out = FakeQueue(), io.StringIO()
    task = start(queue, out, interactive=False)
    await until(lambda: len(queue.limits) == 1)
    queue.packages = [package("last", 1)]
    queue.signal(5)
    queue.end()
    await asyncio.wait_for(task, 2)
    assert len(queue.limits) - 1 < 5
    assert out.getvalue().rstrip("\n").endswith("\tlast\t2026-11-28T00:16:40\t100.000")


async def test_a_change_during_a_fetch_is_not_lost() -> None:
    queue, out = FakeQueue(), io.StringIO()
    fetch = queue.fetch

    async def slow_fetch(limit: int) -> Snapshot:
        if len(queue.limits) == 1:
            queue.packages = [package("late", 1)]
            queue.signal()
            await asyncio.sleep(0.01)
        return await fetch(limit)

    task = asyncio.ensure_future(run_view(slow_fetch, queue.changes(), out, None, False))
    await until(lambda: len(queue.limits) == 1)
    queue.signal()
    await until(lambda: len(queue.limits) == 3)
    queue.end()
    await asyncio.wait_for(task, 2)
    assert "\tlate\t" in out.getvalue().split("\n\n")[-1]


async def test_plain_fetches_a_fixed_limit() -> None:
    queue = FakeQueue()
    queue.end()
    await run_view(queue.fetch, queue.changes(), io.StringIO(), None, False)
    assert queue.limits == [live.PLAIN_LIMIT]


async def test_plain_ends_quietly_on_a_broken_pipe() -> None:
    class Closed(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError

    queue = FakeQueue()
    queue.signal(3)
    await asyncio.wait_for(run_view(queue.fetch, queue.changes(), Closed(), None, False), 2)
    assert len(queue.limits) == 1


async def test_plain_passes_on_an_error_of_the_changes() -> None:
    async def failing() -> AsyncIterator[None]:
        yield None
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        await run_view(FakeQueue().fetch, failing(), io.StringIO(), None, False)


async def test_plain_ends_on_cancellation() -> None:
    queue, out = FakeQueue(), io.StringIO()
    task = start(queue, out, interactive=False)
    await until(lambda: queue.limits)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# terminal mode --------------------------------------------------------------------------


async def test_terminal_enters_and_leaves_the_alternate_screen() -> None:
    queue, out = FakeQueue([package("top", 1)]), io.StringIO()
    queue.end()
    await asyncio.wait_for(start(queue, out, interactive=True), 2)
    assert out.getvalue().startswith(live.ENTER)
    assert out.getvalue().endswith(LEAVE)


async def test_terminal_header_count_and_highlighted_top_row() -> None:
    queue, out = FakeQueue([package("top", 1), package("next", 2)]), io.StringIO()
    queue.end()
    await asyncio.wait_for(start(queue, out, interactive=True), 2)
    frame = frames(out)[0]
    assert "kamikaze watch  2 packages  2026-11-28T00:15:00Z  (q to quit)" in frame
    assert re.search(rf"\n{re.escape(REVERSE)}1\.0 +top ", frame)
    assert "next" in frame


async def test_both_modes_show_the_active_exclusive_service() -> None:
    """docs/ha.rst: watch shows which service is active, and a change of it."""
    queue, out = FakeQueue([package("a", 1)]), io.StringIO()
    queue.active = "host-a:41, term 3"
    task = start(queue, out, interactive=False)
    await until(lambda: len(queue.limits) == 1)
    queue.active = "host-b:42, term 4"
    queue.signal()
    queue.end()
    await asyncio.wait_for(task, 2)
    headers = [shot.split("\n")[0] for shot in out.getvalue().split("\n\n")]
    assert headers == [
        "# 2026-11-28T00:15:00Z 1 package (active: host-a:41, term 3)",
        "# 2026-11-28T00:15:00Z 1 package (active: host-b:42, term 4)",
    ]
    screen, terminal = FakeQueue([package("a", 1)]), io.StringIO()
    screen.active = "host-b:42, term 4"
    screen.end()
    await asyncio.wait_for(start(screen, terminal, interactive=True), 2)
    assert "(q to quit)  active: host-b:42" in frames(terminal)[0]  # clipped to the width


async def test_terminal_fetches_what_fits() -> None:
    queue = FakeQueue([package(f"p{i}", i) for i in range(20)])
    out = io.StringIO()
    queue.end()
    await asyncio.wait_for(start(queue, out, interactive=True), 2)
    assert queue.limits == [SIZE[1] - 3]
    assert text(frames(out)[0])[-1] == "\u2026 and 13 more"


async def test_terminal_empty_queue() -> None:
    queue, out = FakeQueue(), io.StringIO()
    queue.end()
    await asyncio.wait_for(start(queue, out, interactive=True), 2)
    assert "(queue empty)" in frames(out)[0]


async def test_terminal_counts_down_without_fetching() -> None:
    queue, out = FakeQueue([package("top", 1)]), io.StringIO()
    task = start(queue, out, interactive=True, tick=0.01)
    await until(lambda: len(frames(out)) >= 3)
    queue.end()
    await asyncio.wait_for(task, 2)
    assert len(queue.limits) == 1
    first, last = text(frames(out)[0])[2], text(frames(out)[-1])[2]
    assert first.endswith("100.000")
    assert last.endswith(tuple(f"99.{n:03}" for n in range(1000)))


async def test_terminal_coalesces_a_burst_and_shows_the_last_state() -> None:
    queue, out = FakeQueue(), io.StringIO()
    task = start(queue, out, interactive=True, tick=10)
    await until(lambda: queue.limits)
    queue.packages = [package("last", 1)]
    queue.signal(5)
    await until(lambda: "last" in frames(out)[-1])
    queue.end()
    await asyncio.wait_for(task, 2)
    assert len(queue.limits) - 1 < 5


async def test_terminal_restores_the_screen_when_cancelled() -> None:
    queue, out = FakeQueue(), io.StringIO()
    task = start(queue, out, interactive=True)
    await until(lambda: frames(out))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert out.getvalue().endswith(LEAVE)


async def test_terminal_restores_the_screen_on_an_error() -> None:
    async def broken(limit: int) -> Snapshot:
        raise ConnectionError("gone")

    out = io.StringIO()
    with pytest.raises(ConnectionError):
        await run_view(broken, FakeQueue().changes(), out, None, True, lambda: SIZE)
    assert out.getvalue() == live.ENTER + LEAVE


async def test_terminal_keyboard_interrupt_quits() -> None:
    async def interrupted(limit: int) -> Snapshot:
        raise KeyboardInterrupt

    out = io.StringIO()
    await run_view(interrupted, FakeQueue().changes(), out, None, True, lambda: SIZE)
    assert out.getvalue().endswith(LEAVE)


@pytest.mark.parametrize("interactive", [True, False], ids=["terminal", "plain"])
async def test_the_stop_event_quits(interactive: bool) -> None:
    """kamikaze.runtime sets it on Ctrl-C or SIGTERM."""
    queue, out, stop = FakeQueue(), io.StringIO(), asyncio.Event()
    task = asyncio.ensure_future(
        run_view(queue.fetch, queue.changes(), out, None, interactive, lambda: SIZE, stop=stop)
    )
    await until(lambda: out.getvalue())
    stop.set()
    await asyncio.wait_for(task, 2)
    assert out.getvalue().endswith(LEAVE) == interactive


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    for fd in (read, write):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.mark.parametrize("key", [b"q", b"Q", b"xyq"])
async def test_q_quits(pipe: tuple[int, int], key: bytes) -> None:
    queue, out = FakeQueue(), io.StringIO()
    task = start(queue, out, interactive=True, inp=pipe[0])
    await until(lambda: frames(out))
    os.write(pipe[1], key)
    await asyncio.wait_for(task, 2)
    assert out.getvalue().endswith(LEAVE)


async def test_other_keys_and_end_of_input_do_not_quit(pipe: tuple[int, int]) -> None:
    queue, out = FakeQueue(), io.StringIO()
    task = start(queue, out, interactive=True, inp=pipe[0])
    await until(lambda: frames(out))
    os.write(pipe[1], b"x ")
    os.close(pipe[1])
    await asyncio.sleep(0.05)
    assert not task.done()
    queue.end()
    await asyncio.wait_for(task, 2)


async def test_a_terminal_is_in_cbreak_mode_and_restored() -> None:
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        modes: list[int] = []
        queue, out = FakeQueue(), io.StringIO()

        async def fetch(limit: int) -> Snapshot:
            modes.append(termios.tcgetattr(slave)[3])
            return await queue.fetch(limit)

        view = run_view(fetch, queue.changes(), out, slave, True, lambda: SIZE, 0.01)
        task = asyncio.ensure_future(view)
        await until(lambda: frames(out))
        os.write(master, b"q")
        await asyncio.wait_for(task, 2)
        assert modes[0] & (termios.ICANON | termios.ECHO) == 0
        assert modes[0] & termios.ISIG
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
