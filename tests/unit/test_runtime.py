"""kamikaze.runtime: how a long-running command handles SIGTERM and SIGINT
(the first asks it to stop, a second ends the process at once: see
tests/integration/test_consumer_timing.py for that, in a real process)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from kamikaze import runtime


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_the_loop_runs_sets_the_stop_event(sig: int) -> None:
    before = {s: signal.getsignal(s) for s in runtime.SIGNALS}
    seen: list[str] = []

    async def main(stop: asyncio.Event) -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), sig)
        async with asyncio.timeout(5):
            await stop.wait()
        seen.append("stopped")

    with runtime.shutdown_on_signals(quiet=True) as shutdown:
        runtime.run(main, shutdown)
    assert seen == ["stopped"]
    assert shutdown.received == 1
    # The process is on its way out: a second signal must still end it at once.
    assert all(signal.getsignal(s) == shutdown.handle for s in runtime.SIGNALS)
    for s, handler in before.items():
        signal.signal(s, handler)


def test_a_signal_before_the_loop_unwinds_the_block_quietly() -> None:
    before = {s: signal.getsignal(s) for s in runtime.SIGNALS}
    reached = []
    with runtime.shutdown_on_signals(quiet=True):
        os.kill(os.getpid(), signal.SIGTERM)
        reached.append("after")  # never: the handler raised ShutdownRequested
    assert reached == []
    for s, handler in before.items():
        signal.signal(s, handler)


def test_no_signal_restores_the_handlers() -> None:
    before = {s: signal.getsignal(s) for s in runtime.SIGNALS}

    async def main(stop: asyncio.Event) -> None:
        await asyncio.sleep(0)

    with runtime.shutdown_on_signals() as shutdown:
        runtime.run(main, shutdown)
    assert {s: signal.getsignal(s) for s in runtime.SIGNALS} == before


async def test_stop_task_insists_on_a_task_that_absorbs_one_cancellation() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(60)  # absorbs the first; the second ends it

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert await runtime.stop_task(task, 2)


async def test_stop_task_without_insisting_lets_a_task_tidy_up() -> None:
    tidied = []

    async def tidy() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)
            tidied.append(True)
            raise

    task = asyncio.create_task(tidy())
    await asyncio.sleep(0)
    assert await runtime.stop_task(task, 2, insist=False)
    assert tidied == [True]


def test_a_signal_that_asks_to_unwind_waits_for_a_deferred_block() -> None:
    """Starting the embedded server: a SIGTERM inside Popen (after the fork)
    would leave the child running unknown; deferred, it unwinds after."""
    from kamikaze import runtime

    done = []
    with runtime.shutdown_on_signals(quiet=True):  # which ends the block on ShutdownRequested
        try:
            with runtime.deferred_shutdown():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler ran meanwhile: deferred
                done.append("the block went on")
        finally:
            done.append("then it unwound")
        done.append("never reached")
    assert done == ["the block went on", "then it unwound"]
