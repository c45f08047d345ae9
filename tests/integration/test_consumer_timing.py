"""What the consumer sees around cancellation, expiry, bursts and signals
(docs/guarantees.rst): never an expired package; the expiry
acted on as soon as the loop is free; a burst of signals coalesced; a
second signal ends the service whatever the consumer is doing.

Covers: kamikaze/follower.py, kamikaze/signals.py, kamikaze/consumer.py, kamikaze/runtime.py."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from kamikaze import SyncQueue
from kamikaze.package import Package
from kamikaze.queue import Queue
from kamikaze.settings import Settings
from tests.integration.conftest import Recorder, start_watcher, stop
from tests.integration.processes import Service, kamikaze_env, run

pytestmark = pytest.mark.timeout(60)


class Calls:
    """(time.time(), package) for each call, and whether it had expired then."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, Package | None]] = []

    def record(self, package: Package | None) -> None:
        self.calls.append((time.time(), package))

    def expired_calls(self) -> list[tuple[float, Package]]:
        return [
            (at, p) for at, p in self.calls if p is not None and p.expired(at)
        ]  # same machine: the local clock is the server's

    def payloads(self) -> list[str | None]:
        return [None if p is None else p.payload for _, p in self.calls]

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count:
            assert time.monotonic() < deadline, self.payloads()
            await asyncio.sleep(0.005)


async def test_a_consumer_slow_to_honour_cancellation_never_gets_an_expired_package(
    settings: Settings, queue: Queue
) -> None:
    calls = Calls()

    async def slow_to_cancel(package: Package | None) -> None:
        calls.record(package)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.8)  # tidying up, 0.8 s
            raise

    await queue.push("base", 600, 5)
    runner, task = await start_watcher(settings, slow_to_cancel)
    try:
        await calls.wait_for(1)
        pushed_at = time.time()
        await queue.push("flash", 0.5, 1)
        await calls.wait_for(2)
        await asyncio.sleep(0.3)
    finally:
        await stop(task, runner)
    assert calls.expired_calls() == []
    # flash expired while base's call was being cancelled: base is the top
    # again, and its cut-short call is made again, at once.
    assert calls.payloads() == ["base", "base"], calls.payloads()
    assert calls.calls[1][0] - pushed_at < 0.8 + 0.3


async def test_the_expiry_after_a_blocking_call_is_acted_on_when_the_loop_is_free(
    settings: Settings, queue: Queue
) -> None:
    calls = Calls()

    def one_second(package: Package | None) -> None:
        calls.record(package)
        time.sleep(1.0)

    await queue.push("base", 600, 5)
    runner, task = await start_watcher(settings, one_second)
    try:
        await calls.wait_for(1)
        await asyncio.sleep(1.1)  # the first call is over
        short = await queue.push("short", 1.8, 1)
        await calls.wait_for(3, timeout=6)
    finally:
        await stop(task, runner)
    assert calls.payloads()[:3] == ["base", "short", "base"]
    assert short.expire_time is not None
    late = calls.calls[2][0] - short.expire_time
    # The call with short blocked the loop for 1 s of short's 1.8 s; the next
    # call must come at its expire time, not 1.8 s after the call began.
    assert 0 <= late < 0.3, late


def redis_reads(client: redis.Redis) -> int:
    """Script calls so far (each read of the top is one)."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_evalsha"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_burst_of_signals_is_coalesced(settings: Settings, services: list[Service]) -> None:
    assert settings.redis_url
    env = kamikaze_env(settings.redis_url, settings.key)
    service = Service("service", "example_consumer.consumer.blocking_consumer_func", env=env)
    services.append(service)
    service.expect("Queue is empty")
    client = redis.Redis.from_url(settings.redis_url)
    reads_before = redis_reads(client)
    with client.pipeline(transaction=False) as pipe:
        for _ in range(100_000):
            pipe.publish(settings.key, "new_message")
        pipe.execute()
    burst_over = time.monotonic()
    # A real change right after the burst is seen within 0.5 s.
    assert run("push", "real", "600", "1", env=env).returncode == 0
    line = service.expect("real", timeout=5)
    assert line
    seen_after = time.monotonic() - burst_over
    time.sleep(1.0)  # back to idle within a second of the burst
    cpu_before = cpu_seconds(service.process.pid)
    time.sleep(1.0)
    idle_cpu = cpu_seconds(service.process.pid) - cpu_before
    reads = redis_reads(client) - reads_before
    client.close()
    print(
        f"BURST: {reads} reads for 100,000 signals; real change seen {seen_after:.3f} s "
        f"after the burst (incl. a CLI push); idle CPU {idle_cpu:.3f} s/s"
    )
    assert reads < 2_000, reads  # coalesced: not one read per signal
    assert idle_cpu < 0.1, idle_cpu


BLOCKING = textwrap.dedent("""
    import time

    def consume(package):
        if package is not None and package.payload == "block":
            print("BLOCKING", flush=True)
            time.sleep(30)
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_signal_ends_a_service_blocked_in_a_plain_consumer(
    settings: Settings, services: list[Service], tmp_path: Path, sig: int
) -> None:
    assert settings.redis_url
    (tmp_path / "blocking_consumer.py").write_text(BLOCKING)
    env = kamikaze_env(settings.redis_url, settings.key)
    service = Service("service", "blocking_consumer.consume", env=env, cwd=tmp_path)
    services.append(service)
    assert run("push", "block", "600", "1", env=env).returncode == 0
    service.expect("BLOCKING")
    service.process.send_signal(sig)
    time.sleep(0.2)
    second_at = time.monotonic()
    service.process.send_signal(sig)
    code = service.process.wait(timeout=5)
    took = time.monotonic() - second_at
    assert took < 1.0, took
    assert code == 128 + sig, (code, service.lines)
    service.expect("again: exiting at once", timeout=2)


async def test_the_watcher_reports_a_recorder_call_only_for_live_packages(
    settings: Settings, queue: Queue
) -> None:
    """Many short-lived packages pushed above a base: whatever is delivered
    was alive when the consumer was called."""
    recorder = Recorder()
    calls = Calls()

    def consumer(package: Package | None, *args: Any) -> None:
        calls.record(package)
        recorder(package)

    await queue.push("base", 600, 9)
    runner, task = await start_watcher(settings, consumer)
    try:
        await recorder.wait_for(1)
        for i in range(20):
            await queue.push(f"blip-{i}", 0.01, 1)
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)
    finally:
        await stop(task, runner)
    assert calls.expired_calls() == []
    assert calls.payloads()[-1] == "base"


NEVER_EARLY = textwrap.dedent("""
    import time

    def consume(package):
        print("CALLED", repr(time.time()), None if package is None else package.payload, flush=True)
""")


def test_the_consumer_is_never_called_before_an_expiry_in_the_real_service(
    settings: Settings, services: list[Service], tmp_path: Path
) -> None:
    """The service (uvloop when installed, as in production): the call with the
    next top comes at or after the expire time by the server's clock (the same
    machine's clock here), however the event loop's timers round."""
    assert settings.redis_url
    (tmp_path / "timing_consumer.py").write_text(NEVER_EARLY)
    env = kamikaze_env(settings.redis_url, settings.key)
    service = Service("service", "timing_consumer.consume", env=env, cwd=tmp_path)
    services.append(service)
    service.expect("CALLED")
    with SyncQueue(settings.redis_url, settings.key) as queue:
        for i in range(15):
            package = queue.push(f"brief-{i}", 0.05, 1)
            assert package.expire_time is not None
            service.expect(f" brief-{i}")
            called_at = float(service.expect(" None").split()[1])
            assert called_at >= package.expire_time, (i, called_at - package.expire_time)
