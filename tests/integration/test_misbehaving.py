"""Consumers that misbehave and hostile data (issue 5; docs/contract.rst §1, §2 service):
what a user sees in consumer calls, logs, `kamikaze list` and Redis.

Covers: kamikaze/consumer.py, kamikaze/queue.py (others' data), kamikaze/service.py."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import os
import pty
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import kamikaze.consumer
from kamikaze.operations import NAMED_SKIPS
from kamikaze.package import Package, as_text
from kamikaze.queue import Queue
from kamikaze.service import stop_task
from kamikaze.settings import Settings
from kamikaze.signals import IDLE_RECHECK
from kamikaze.sweep import Sweeper
from tests.integration.conftest import Recorder, start_watcher, stop
from tests.integration.processes import Service, run

FAR = "9999999999.5"  # an expire time far in the future (year 2286), as 0.1.x writes it


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.005)


def run_raw(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """Like processes.run, but bytes: `list` passes non-UTF-8 payload bytes through."""
    return subprocess.run(
        [sys.executable, "-m", "kamikaze", *args], env=env, capture_output=True, timeout=60
    )


def run_on_terminal(*args: str, env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run with stdout on a pseudo-terminal (the table format); returns code, stdout, stderr."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "kamikaze", *args], env=env, stdout=slave, stderr=subprocess.PIPE
    )
    os.close(slave)
    stdout = b""
    while True:
        try:
            chunk = os.read(master, 1 << 20)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        stdout += chunk
    os.close(master)
    assert process.stderr is not None
    stderr = process.stderr.read()
    process.stderr.close()
    return process.wait(timeout=60), stdout, stderr


def payload_of(package: Package | None) -> str | None:
    return None if package is None else package.payload


def consumer_errors(caplog: Any) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "kamikaze.consumer" and r.levelno == logging.ERROR and r.exc_info
    ]


def summary_counts(caplog: Any) -> list[int]:
    """The counts in the summary lines about members not named one by one."""
    return [
        int(r.args[0])  # type: ignore[index]
        for r in caplog.records
        if r.name == "kamikaze.queue"
        and r.getMessage().startswith("skipping ")
        and " more members of " in r.getMessage()
    ]


def skip_warnings(caplog: Any) -> collections.Counter[str]:
    """How often each member was warned about as unparseable (by member text)."""
    counts: collections.Counter[str] = collections.Counter()
    for r in caplog.records:
        if r.name == "kamikaze.queue" and r.levelno == logging.WARNING:
            message = r.getMessage()
            if message.startswith("skipping member "):
                counts[str(r.args[0])] += 1  # type: ignore[index]
    return counts


# --------------------------------------------------------------------------
# Consumers that misbehave
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["plain", "coroutine"])
@pytest.mark.parametrize(
    "make_error",
    [lambda name: RuntimeError(f"boom on {name}"), lambda name: SystemExit(3)],
    ids=["raises", "sys.exit(3)"],
)
async def test_a_failing_consumer_is_logged_and_the_next_change_delivered(
    settings: Settings,
    queue: Queue,
    caplog: Any,
    kind: str,
    make_error: Callable[[str | None], BaseException],
) -> None:
    calls: list[str | None] = []

    def plain(package: Package | None) -> None:
        calls.append(payload_of(package))
        raise make_error(payload_of(package))

    async def coroutine(package: Package | None) -> None:
        calls.append(payload_of(package))
        await asyncio.sleep(0)  # fail inside the task, not at the call
        raise make_error(payload_of(package))

    runner, task = await start_watcher(settings, plain if kind == "plain" else coroutine)
    try:
        await eventually(lambda: calls == [None], what="the first call")
        await eventually(lambda: len(consumer_errors(caplog)) == 1, what="the first error logged")
        await queue.push("first", 100, 5)
        await eventually(lambda: calls == [None, "first"], what="the call with 'first'")
        await queue.push("second", 100, 1)
        await eventually(lambda: calls == [None, "first", "second"], what="'second'")
        await eventually(lambda: len(consumer_errors(caplog)) == 3, what="three errors logged")
        assert not task.done(), "the watcher ended"
    finally:
        await stop(task, runner)
    errors = consumer_errors(caplog)
    expected_type = type(make_error(None))
    assert [r.exc_info[0] for r in errors] == [expected_type] * 3  # type: ignore[index]
    assert [r.getMessage() for r in errors][1].startswith("consumer raised on Package(payload=")
    assert "Traceback" in caplog.text
    if expected_type is RuntimeError:
        assert "boom on second" in caplog.text


async def test_a_coroutine_that_never_returns_is_cancelled_at_the_next_change(
    settings: Settings, queue: Queue, caplog: Any
) -> None:
    events: list[str] = []

    async def consumer(package: Package | None) -> None:
        name = str(payload_of(package))
        events.append(f"start {name}")
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            events.append(f"cancelled {name}")
            raise

    runner, task = await start_watcher(settings, consumer)
    try:
        await eventually(lambda: events == ["start None"])
        await queue.push("first", 100, 5)
        await eventually(lambda: events[-1] == "start first")
        await queue.push("second", 100, 1)
        await eventually(lambda: events[-1] == "start second")
        assert events == [
            "start None",
            "cancelled None",
            "start first",
            "cancelled first",
            "start second",
        ]
    finally:
        await stop(task, runner)
    assert events[-1] == "cancelled second"
    assert "ignored cancellation" not in caplog.text
    assert consumer_errors(caplog) == []


async def test_a_coroutine_that_swallows_cancellation_gets_a_warning_and_the_next_call_happens(
    settings: Settings, queue: Queue, caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kamikaze.consumer, "CANCEL_GRACE", 0.2)
    events: list[tuple[float, str]] = []

    async def consumer(package: Package | None) -> None:
        name = str(payload_of(package))
        events.append((time.monotonic(), f"start {name}"))
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if package is not None:
                raise
            events.append((time.monotonic(), f"swallowed {name}"))
            await asyncio.sleep(0.6)  # carries on well past the grace period
            events.append((time.monotonic(), f"finished {name}"))

    names = lambda: [e for _, e in events]  # noqa: E731
    runner, task = await start_watcher(settings, consumer)
    try:
        await eventually(lambda: names() == ["start None"])
        pushed_at = time.monotonic()
        await queue.push("next", 100, 1)
        await eventually(lambda: "start next" in names(), what="the next call")
        started_at = dict((e, t) for t, e in events)["start next"]
        # The next call waited for the grace period, not for the stubborn task
        # (which finishes 0.6 s after the cancellation).
        assert names() == ["start None", "swallowed None", "start next"]
        assert started_at - pushed_at > 0.15, started_at - pushed_at
        warnings = [
            r
            for r in caplog.records
            if r.name == "kamikaze.consumer" and r.levelno == logging.WARNING
        ]
        assert len(warnings) == 1
        assert "ignored cancellation for 0.2 s" in warnings[0].getMessage()
        # The stubborn task is left to finish on its own.
        await eventually(lambda: "finished None" in names(), timeout=2)
        assert not task.done()
    finally:
        await stop(task, runner)
    assert names()[-1] == "finished None"


async def test_a_blocking_plain_consumer_loses_no_change(settings: Settings, queue: Queue) -> None:
    """Plain consumers run inline: the service waits for them. Changes made
    meanwhile (here from another thread, as the event loop is blocked) are not
    lost: afterwards the consumer is called with the real top, and never with
    a package that had expired before the block ended."""
    calls: list[tuple[float, Package | None]] = []
    entered = threading.Event()
    block_ended: list[float] = []
    thread_error: list[BaseException] = []

    def consumer(package: Package | None) -> None:
        calls.append((time.time(), package))
        if package is not None and package.payload == "block":
            entered.set()
            time.sleep(1.0)
            block_ended.append(time.time())

    async def meanwhile() -> None:
        client = settings.client()
        try:
            other = Queue(client, settings.key)
            await other.push("gone-soon", 0.2, 0)  # the top for 0.2 s, during the block
            await asyncio.sleep(0.1)
            await other.push("mid-1", 100, 0.5)
            await other.push("mid-2", 100, 0.4)
            await asyncio.sleep(0.1)
            await other.push("removed-meanwhile", 100, 0.1)
            await asyncio.sleep(0.1)
            assert await other.remove("removed-meanwhile") == 1
        finally:
            await client.aclose()

    def pusher() -> None:
        try:
            assert entered.wait(5)
            asyncio.run(meanwhile())
        except BaseException as exc:  # reported by the test below
            thread_error.append(exc)

    thread = threading.Thread(target=pusher)
    thread.start()
    runner, task = await start_watcher(settings, consumer)
    try:
        await eventually(lambda: len(calls) == 1)
        await queue.push("block", 100, 1)
        await eventually(lambda: bool(block_ended), what="the block to end")
        await asyncio.to_thread(thread.join, 5)
        assert not thread_error, thread_error
        real_top = await queue.top()
        assert real_top is not None and real_top.payload == "mid-2"
        await eventually(lambda: calls[-1][1] == real_top, what="a call with the real top")
        await asyncio.sleep(0.3)  # and nothing after it
        assert calls[-1][1] == real_top
    finally:
        await stop(task, runner)
    payloads = [payload_of(p) for _, p in calls]
    assert payloads[:2] == [None, "block"]
    assert all(at >= block_ended[0] for at, _ in calls[2:])
    # Intermediate tops may be skipped, but nothing already gone is delivered.
    assert "gone-soon" not in payloads and "removed-meanwhile" not in payloads


@pytest.mark.parametrize("kind", ["plain", "coroutine"])
def test_a_service_process_survives_a_consumer_calling_sys_exit(
    env: dict[str, str], services: list[Service], tmp_path: Path, kind: str
) -> None:
    (tmp_path / "exiting_consumer.py").write_text(
        textwrap.dedent("""
        import sys

        calls = 0

        def consume(package):
            global calls
            calls += 1
            print("CALLED", None if package is None else package.payload, flush=True)
            if calls == 1:
                sys.exit(3)

        async def consume_async(package):
            consume(package)
    """)
    )
    name = "consume" if kind == "plain" else "consume_async"
    service = Service("service", f"exiting_consumer.{name}", env=env, cwd=tmp_path)
    services.append(service)
    service.expect("CALLED None")
    service.expect("SystemExit: 3")
    assert service.process.poll() is None
    run("push", "after-exit", "100", "1", env=env)
    service.expect("CALLED after-exit")
    assert service.process.poll() is None
    code, took = service.stop(signal.SIGTERM)
    assert code == 0 and took < 2, (code, took, service.lines)
    assert any("ERROR kamikaze.consumer: consumer raised on None" in x for x in service.lines)


def test_a_service_process_with_a_consumer_that_swallows_every_cancellation(
    env: dict[str, str], services: list[Service], tmp_path: Path
) -> None:
    """The next call still comes (after the 1 s grace), and SIGTERM still exits 0 in 2 s."""
    (tmp_path / "stubborn_consumer.py").write_text(
        textwrap.dedent("""
        import asyncio

        async def consume(package):
            print("CALLED", None if package is None else package.payload, flush=True)
            while True:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    print("SWALLOWED", flush=True)
    """)
    )
    service = Service("service", "stubborn_consumer.consume", env=env, cwd=tmp_path)
    services.append(service)
    service.expect("CALLED None")
    run("push", "next", "100", "1", env=env)
    service.expect("SWALLOWED")
    service.expect("ignored cancellation")
    service.expect("CALLED next")
    code, took = service.stop(signal.SIGTERM)
    assert code == 0 and took < 2, (code, took, service.lines)
    assert not any("Traceback" in line for line in service.lines), service.lines


# --------------------------------------------------------------------------
# Hostile data
# --------------------------------------------------------------------------

# Members other clients wrote that do not parse (docs/contract.rst §1), with their scores.
HOSTILE: dict[bytes, float] = {
    b"": -math.inf,  # sorts before every valid member at -inf
    b"no-colon": -math.inf,
    b"abc:x": -math.inf,
    b"nan:x": 3.5,
    b"inf:x": math.inf,
    b"-inf:x": -1,
    b"0x10:x": -math.inf,
    b"\xff\xfe:x": -math.inf,
    b"1e999:x": 0,  # overflows to infinity
    b" 5:x": 2,
    b"1_000:x": 2,  # float() in Python would take it; the format does not
}

BIG = "b" * 1_000_000
ODD_PAYLOADS = [  # pushed with the Queue, priority = 1 + index
    BIG,
    "line1\nline2\n",
    "nul\x00byte",
    "a:b:c",
    "tab\there",
    "unicode ☃ 日本 🎉",
]
NON_UTF8 = as_text(b"\xff")  # payload of FAR:\xff, written directly


async def load_hostile(redis: Any, queue: Queue) -> list[str]:
    """Hostile members, odd but valid packages, ±inf scores; returns the valid
    payloads, top first."""
    await redis.zadd(queue.key, HOSTILE)
    await redis.zadd(
        queue.key,
        {
            f"{FAR}:minus-inf".encode(): -math.inf,
            f"{FAR}:plus-inf".encode(): math.inf,
            f"{FAR}:".encode() + b"\xff": 7,
        },
    )
    for i, payload in enumerate(ODD_PAYLOADS):
        await queue.push(payload, 100, 1 + i)
    return ["minus-inf", *ODD_PAYLOADS, NON_UTF8, "plus-inf"]


def hostile_texts() -> set[str]:
    return {as_text(m) for m in HOSTILE}


async def test_unparseable_members_are_skipped_warned_once_and_valid_ones_delivered_in_order(
    settings: Settings, queue: Queue, redis: Any, caplog: Any
) -> None:
    expected = await load_hostile(redis, queue)
    recorder = Recorder()
    runner, task = await start_watcher(settings, recorder)
    try:
        assert await recorder.wait_for(1) == ["minus-inf"]
        for i, payload in enumerate(expected):
            assert await queue.remove(payload) == 1, payload
            await recorder.wait_for(i + 2)
        await asyncio.sleep(0.1)
        assert not task.done()
    finally:
        await stop(task, runner)
    assert recorder.payloads == [*expected, None]
    delivered = [p for _, p in recorder.calls[:-1]]
    assert all(p is not None for p in delivered)
    assert [p.score for p in delivered if p] == [-math.inf, 1, 2, 3, 4, 5, 6, 7, math.inf]
    assert delivered[-2] is not None and delivered[-2].raw_entry == f"{FAR}:{NON_UTF8}"
    # Ten top reads or more, one warning per member, each naming it.
    assert skip_warnings(caplog) == {text: 1 for text in hostile_texts()}
    assert "Traceback" not in caplog.text
    # Nothing of anyone else's was deleted.
    assert dict(await redis.zrange(settings.key, 0, -1, withscores=True)) == HOSTILE

    # A fresh reader warns once per member too, however often it reads.
    caplog.clear()
    other = Queue(redis, settings.key)
    for _ in range(3):
        assert await other.top() is None
    assert skip_warnings(caplog) == {text: 1 for text in hostile_texts()}


async def test_the_sweep_deletes_only_expired_packages_of_ours(
    settings: Settings, queue: Queue, redis: Any, caplog: Any
) -> None:
    await redis.zadd(settings.key, HOSTILE)
    expired = {
        b"1000.5:old-style-expired": 1.0,
        b"1000.000000:expired-at-minus-inf": -math.inf,
        b"1000.000000:x": 5.0,  # same payload as the hostile 'abc:x' and co.
        b"1000.000000:": math.inf,
    }
    await redis.zadd(settings.key, expired)
    live = {f"{FAR}:".encode() + b"\xff": 7.0, f"{FAR}:plus-inf".encode(): math.inf}
    await redis.zadd(settings.key, live)
    await queue.push("pushed-expired", 0.05, 2)
    kept = await queue.push("pushed-live", 100, 3)
    never = await queue.push("never-expires", None, 4)
    await asyncio.sleep(0.1)

    sweeper = Sweeper(queue)
    assert await sweeper.sweep_once() == len(expired) + 1
    assert await sweeper.sweep_once() == 0
    left = dict(await redis.zrange(settings.key, 0, -1, withscores=True))
    assert left == {**HOSTILE, **live, kept.member: 3.0, never.member: 4.0}
    # Removing payload 'x' leaves the others' 'abc:x', 'nan:x', '0x10:x'...
    await queue.push("x", 100, 1)
    assert await queue.remove("x") == 1
    assert await queue.remove("x") == 0
    left = dict(await redis.zrange(settings.key, 0, -1, withscores=True))
    assert left == {**HOSTILE, **live, kept.member: 3.0, never.member: 4.0}
    assert "Traceback" not in caplog.text


async def test_list_and_list_json_show_the_valid_packages(
    env: dict[str, str], queue: Queue, redis: Any
) -> None:
    expected = await load_hostile(redis, queue)

    listed = run_raw("list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    packages = json.loads(listed.stdout)
    assert [p["payload"] for p in packages] == expected
    assert [p["priority"] for p in packages] == [-math.inf, 1, 2, 3, 4, 5, 6, 7, math.inf]
    assert packages[-2]["expire_time"] == float(FAR)
    assert all(p["ttl"] > 1e9 or 90 < p["ttl"] <= 100 for p in packages)
    stderr = listed.stderr.decode("utf-8", "surrogateescape")
    assert "Traceback" not in stderr
    for text in hostile_texts():  # one warning line per member, naming it
        assert stderr.count(f"skipping member {text!r} of") == 1, (text, stderr)

    plain = run_raw("list", env=env)
    assert plain.returncode == 0
    assert b"Traceback" not in plain.stderr
    lines = plain.stdout.splitlines()
    assert lines[0].startswith(b"-inf\tminus-inf\t")
    assert lines[-1].startswith(b"inf\tplus-inf\t")
    assert b"7.0\t\xff\t" in plain.stdout  # the payload's own bytes
    assert b"1.0\t" + BIG.encode() + b"\t" in plain.stdout
    assert "unicode ☃ 日本 🎉".encode() in plain.stdout
    for member in HOSTILE:  # unparseable members are not shown
        assert not any(line.split(b"\t")[1:2] == [member] for line in lines if member)

    code, table, stderr = run_on_terminal("list", env=env)
    assert code == 0 and b"Traceback" not in stderr
    rows = table.decode().splitlines()
    assert rows[0].split() == ["Score", "Payload", "Expire", "Time", "TTL", "(secs)"]
    scores = ["-inf", "1.0", "2.0", "3.0", "4.0", "5.0", "6.0", "7.0", "inf"]
    assert [row.split()[0] for row in rows[1:]] == scores
    # Control characters and undecodable bytes are escaped on a terminal.
    assert "line1\\nline2\\n" in rows[3] and "nul\\x00byte" in rows[4]
    assert "tab\\there" in rows[6] and "\\udcff" in rows[8]
    assert b"\x00" not in table and b"\xff" not in table


async def test_a_service_process_warns_once_per_member_and_delivers_valid_packages(
    env: dict[str, str], queue: Queue, redis: Any, services: list[Service], tmp_path: Path
) -> None:
    expected = await load_hostile(redis, queue)
    await queue.remove(BIG)  # keep the output short
    expected.remove(BIG)
    service = Service("service", "example_consumer.consumer.blocking_consumer_func", env=env)
    services.append(service)
    service.expect("Consuming 'minus-inf' (priority -inf)")
    for payload in expected[:-1]:
        await queue.remove(payload)
        await asyncio.to_thread(service.expect, "Consuming ")
    await queue.remove("plus-inf")
    await asyncio.to_thread(service.expect, "Queue is empty")
    code, _ = service.stop(signal.SIGTERM)
    assert code == 0
    consumed = [line for line in service.lines if line.startswith("Consuming ")]
    assert consumed == [
        f"Consuming {p!r} (priority {s})"
        for p, s in zip(expected, [-math.inf, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, math.inf], strict=True)
    ]
    output = "\n".join(service.lines)
    assert "Traceback" not in output
    for text in hostile_texts():
        assert output.count(f"skipping member {text!r} of") == 1, (text, output)


async def test_remove_is_exact_for_odd_payloads(
    env: dict[str, str], queue: Queue, redis: Any
) -> None:
    await redis.zadd(queue.key, HOSTILE)
    long = "y" * 100_000  # argv takes at most 128 KiB per argument
    via_cli = ["line1\nline2\n", "a:b:c", "tab\there", "unicode ☃ 日本 🎉", long, "x"]
    neighbours = [
        "line1",
        "line2",
        "line1\nline2",
        "b:c",
        "a:b",
        "tab",
        "unicode",
        long + "y",
        long[:-1],
    ]
    via_api = ["nul\x00byte", BIG]  # argv cannot carry NUL, nor 1 MB in one argument
    api_neighbours = ["nul", "nul\x00", "nul\x00byte\x00", "byte", BIG + "b", BIG[:-1]]
    for payload in via_cli + neighbours + via_api + api_neighbours:
        await queue.push(payload, 100, 1)
    # As 0.1.x or another client would write them: no index knows of these.
    await redis.zadd(
        queue.key, {f"{FAR}:direct\nnewline": 2, f"{FAR}:direct\x00nul": 2, f"{FAR}:direct": 2}
    )
    via_cli.append("direct\nnewline")
    via_api.append("direct\x00nul")
    neighbours.append("direct")
    for payload in via_cli:
        removed = run("remove", payload, env=env)
        assert removed.returncode == 0 and "removed 1 package" in removed.stderr, removed
        assert "Traceback" not in removed.stderr
    for payload in via_api:
        assert await queue.remove(payload) == 1, payload[:20]
    left = [p.payload for p in await queue.packages()]
    assert sorted(left) == sorted(neighbours + api_neighbours)
    members = set(await redis.zrange(queue.key, 0, -1))
    assert set(HOSTILE) <= members


async def test_hundreds_of_unparseable_members_above_the_top(
    settings: Settings, queue: Queue, redis: Any, caplog: Any
) -> None:
    """More than one top.lua call can look at (TOP_BUDGET) before the top."""
    hostile = {f"junk-{i:04d}".encode(): -math.inf for i in range(700)}
    await redis.zadd(settings.key, hostile)
    await queue.push("below-the-junk", 100, 1)
    for _ in range(3):
        top = await queue.top()
        assert top is not None and top.payload == "below-the-junk"
    # The first NAMED_SKIPS get a line each, the rest one summary line (docs/data.rst).
    named = sorted(as_text(m) for m in hostile)[:NAMED_SKIPS]
    assert skip_warnings(caplog) == {text: 1 for text in named}
    assert summary_counts(caplog) == [len(hostile) - NAMED_SKIPS]
    recorder = Recorder()
    runner, task = await start_watcher(settings, recorder)
    try:
        assert await recorder.wait_for(1) == ["below-the-junk"]
        await queue.remove("below-the-junk")
        assert await recorder.wait_for(2) == ["below-the-junk", None]
    finally:
        await stop(task, runner)
    assert await Sweeper(queue).sweep_once() == 0
    assert await redis.zcard(settings.key) == len(hostile)


async def test_a_key_of_the_wrong_type_in_the_cli(env: dict[str, str], redis: Any) -> None:
    key = env["KAMIKAZE_KEY"]
    await redis.set(key, "someone else's string")
    for args in (["list"], ["list", "--json"], ["push", "p", "10", "1"], ["remove", "p"]):
        result = run(*args, env=env)
        assert result.returncode == 1, (args, result)
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "WRONGTYPE" in lines[0], (args, lines)
    assert await redis.get(key) == b"someone else's string"


async def test_the_service_on_a_key_of_the_wrong_type_logs_once_and_recovers(
    settings: Settings, queue: Queue, redis: Any, caplog: Any
) -> None:
    await redis.set(settings.key, "someone else's string")
    recorder = Recorder()
    runner, task = await start_watcher(settings, recorder)
    sweeper = asyncio.create_task(Sweeper(queue, 0.05).run())
    try:
        await asyncio.sleep(1.0)
        assert not task.done(), task.exception() if task.done() else None
        # Sweeping meanwhile fails without deleting anything, and is not fatal.
        assert not sweeper.done(), sweeper.exception() if sweeper.done() else None
        assert recorder.calls == []
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]  # not one per retry
        assert "WRONGTYPE" in errors[0].getMessage()
        assert await redis.get(settings.key) == b"someone else's string"
        await redis.delete(settings.key)
        await queue.push("fixed", 100, 1)
        await recorder.wait_for(1, timeout=8)
        assert recorder.payloads == ["fixed"]
        await queue.push("expired-below", 0.05, 9)
        await asyncio.sleep(0.3)  # the sweeper runs again
        top = await queue.top()
        assert top is not None
        assert await redis.zrange(settings.key, 0, -1) == [top.member]
    finally:
        # stop_task cancels repeatedly: redis-py can absorb a single cancellation.
        assert await stop_task(sweeper, 5)
        await stop(task, runner)
    assert "Traceback" not in caplog.text


def test_a_service_process_on_a_key_of_the_wrong_type_keeps_running(
    env: dict[str, str], services: list[Service]
) -> None:
    import redis as redis_sync

    client = redis_sync.Redis.from_url(env["KAMIKAZE_REDIS_URL"])
    key = env["KAMIKAZE_KEY"]
    client.set(key, "someone else's string")
    service = Service(
        "service",
        "--sweep-interval",
        "0.1",
        "example_consumer.consumer.blocking_consumer_func",
        env=env,
    )
    services.append(service)
    line = service.expect("WRONGTYPE")
    assert "ERROR" in line
    time.sleep(1.5)
    assert service.process.poll() is None, service.lines
    client.delete(key)
    client.close()
    run("push", "fixed", "100", "1", env=env)
    service.expect("Consuming 'fixed'", timeout=10)
    code, took = service.stop(signal.SIGTERM)
    assert code == 0 and took < 2, (code, took)
    output = "\n".join(service.lines)
    assert output.count("WRONGTYPE") == 1, output  # one line per outage, not per retry
    assert "Traceback" not in output, output


async def test_log_lines_about_others_members_are_bounded_however_many_there_are(
    settings: Settings, queue: Queue, redis: Any, caplog: Any
) -> None:
    """12,000 unparseable members above the top, read again every idle
    period: a line each for the first NAMED_SKIPS, then one summary line per
    SKIP_SUMMARY_INTERVAL, and the real top still delivered."""
    hostile = {f"garbage-{i:05d}": -math.inf for i in range(12_000)}
    for start in range(0, len(hostile), 2000):
        await redis.zadd(settings.key, dict(list(hostile.items())[start : start + 2000]))
    await queue.push("real", 100, 1)
    recorder = Recorder()
    runner, task = await start_watcher(settings, recorder)
    try:
        assert await recorder.wait_for(1) == ["real"]
        await asyncio.sleep(2 * IDLE_RECHECK + 0.5)  # two more reads of the top
    finally:
        await stop(task, runner)
    lines = [r for r in caplog.records if r.name == "kamikaze.queue"]
    assert len(lines) <= NAMED_SKIPS + 1, len(lines)
    assert summary_counts(caplog) == [len(hostile) - NAMED_SKIPS]


async def test_list_names_at_most_a_hundred_of_others_members(
    env: dict[str, str], redis: Any
) -> None:
    await redis.zadd(env["KAMIKAZE_KEY"], {f"junk-{i}": i for i in range(5000)})
    result = await asyncio.to_thread(run, "list", "--json", env=env)
    assert result.returncode == 0 and result.stdout.strip() == "[]"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == NAMED_SKIPS + 1, len(lines)
    assert "skipping 4900 more members" in lines[-1]
