"""How a long-running command (service, watch) runs: its event loop (uvloop
when installed), SIGTERM and SIGINT (the first asks it to stop, a second
ends the process at once, whatever it is doing), and stopping tasks with a
deadline. The CLI only parses and reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

log = logging.getLogger("kamikaze.service")

LEFTOVER_GRACE = 0.5  # seconds for tasks still running when the command returns
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShutdownRequested(Exception):
    """SIGTERM or SIGINT arrived before the event loop ran (or after): the
    command unwinds (an embedded server being started is stopped again)."""


_deferring: list[int] = []  # set while a block must not be cut short: signals held, by number


@contextlib.contextmanager
def deferred_shutdown() -> Iterator[None]:
    """Hold a SIGTERM or SIGINT that asks to unwind (ShutdownRequested) until
    the block ends, and raise it then: a block that starts a process must
    know the process before it is cut short."""
    _deferring.append(0)
    try:
        yield
    finally:
        signum = _deferring.pop()
        if signum and not _deferring:
            raise ShutdownRequested(signum)
        if signum:
            _deferring[-1] = signum


class Shutdown:
    """SIGTERM and SIGINT for one command. Python-level handlers, not the
    loop's: they run even while a plain consumer blocks the loop, so a
    second signal always ends the process at once (status 128 + signal)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.received = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None

    def handle(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        self.received += 1
        if self.received > 1:
            os.write(2, f"received {name} again: exiting at once\n".encode())
            os._exit(128 + signum)
        if self.loop is None or self.stop is None:
            if _deferring:
                _deferring[-1] = signum
                return
            raise ShutdownRequested(signum)
        self.loop.call_soon_threadsafe(self._request, name)

    def _request(self, name: str) -> None:
        if not self.quiet:
            log.info("received %s, shutting down", name)
        assert self.stop is not None
        self.stop.set()


@contextlib.contextmanager
def shutdown_on_signals(quiet: bool = False) -> Iterator[Shutdown]:
    """Handle SIGTERM and SIGINT for the block: before `run()` starts the
    loop a signal unwinds the block (exit 0), while it runs it sets the
    command's stop event, and a second one exits at once."""
    shutdown = Shutdown(quiet)
    previous = {signum: signal.signal(signum, shutdown.handle) for signum in SIGNALS}
    try:
        yield shutdown
    except ShutdownRequested:
        if not quiet:
            log.info("shutting down")
    finally:
        if not shutdown.received:  # else the process is on its way out: keep ours
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's when it is installed (kamikaze[speed]), else asyncio's."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def run(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]], shutdown: Shutdown) -> None:
    """Run `main(stop)` until it returns; `stop` is set by the first signal.
    Tasks still running then get LEFTOVER_GRACE to finish after being cancelled."""
    loop = new_event_loop()
    try:
        shutdown.stop = asyncio.Event()  # bound to `loop` when first awaited
        shutdown.loop = loop
        loop.run_until_complete(main(shutdown.stop))
        _cancel_leftovers(loop)
    finally:
        shutdown.loop = None
        loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in leftovers:
        task.cancel()
    if not leftovers:
        return
    _, pending = loop.run_until_complete(asyncio.wait(leftovers, timeout=LEFTOVER_GRACE))
    if pending:
        # A consumer task that ignores cancellation must not keep the process
        # from exiting (asyncio.run would wait for it forever).
        log.warning("a consumer task ignored cancellation; exiting without it")
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)


async def stop_task(task: asyncio.Task[Any], timeout: float, insist: bool = True) -> bool:
    """Cancel `task` and wait until it has finished; True if it did in time.

    `insist`: repeat the cancellation, since one that lands while a library
    handles its own timeout can be absorbed (our own tasks: shutdown must not
    hang). Without it, one cancellation (a consumer may tidy up)."""
    deadline = time.monotonic() + timeout
    task.cancel()
    while not task.done() and time.monotonic() < deadline:
        await asyncio.wait({task}, timeout=min(0.05, max(deadline - time.monotonic(), 0)))
        if insist and not task.done():
            task.cancel()
    return task.done()
