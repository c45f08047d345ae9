"""Costs at a million packages, each beside its baseline in the same run.

    python -m bench.scale [--packages 1000000] [--small 10] [--pushes 1000]
                          [--expired 100000] [--listed 100000] [--runs 3]

2. push -> consumer p50 with --packages lower-priority packages in the set,
   against the same p50 with --small (two watchers, pushes interleaved).
3. RSS of a real `kamikaze service` subprocess on --packages, against one on
   --small, both running at once.
7. `kamikaze remove` of one payload among --packages (wall time of the
   process; SLOWLOG for calls > 5 ms meanwhile); beside it, for scale, the
   same command on --small.
   The sweep: Sweeper.sweep_once() with --expired of --packages expired below
   the top (SLOWLOG), and sweep_once() when nothing expired beside a PING; one
   reconcile pass over --packages unindexed members (SLOWLOG).
8. `kamikaze list --json` of --listed packages; beside it the same on --small.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO, TypeVar

from bench.common import (
    KAMIKAZE,
    SlowCall,
    cli_env,
    fill,
    median,
    ms,
    print_table,
    run_timed,
    slow_details,
    slow_text,
    slowlog_read,
    slowlog_start,
    start_server,
    summary,
)
from kamikaze.consumer import Runner
from kamikaze.queue import Queue
from kamikaze.runtime import stop_task
from kamikaze.service import Dispatcher
from kamikaze.settings import Settings
from kamikaze.sweep import Sweeper

T = TypeVar("T")
FAR = 3600.0  # fillers expire an hour from now: nothing expires during the bench
SMALL, BIG = "scale-small", "scale-big"
SWEPT, LISTED, LISTED_SMALL = "scale-sweep", "scale-list", "scale-list-small"
CONSUMER = "example_consumer.consumer.blocking_consumer_func"


def fill_live(url: str, key: str, count: int) -> float:
    """`count` live lower-priority packages (scores 1000 + i), expiring in about an hour."""
    now = time.time()
    return fill(
        url, key, count, priority=lambda i: 1000.0 + i, expire=lambda i: now + FAR + i / 1e3
    )


# --- row 2 -------------------------------------------------------------------


async def push_latencies(url: str, keys: list[str], count: int) -> dict[str, list[float]]:
    """Push -> consumer called, for one watcher per key; pushes alternate
    between the keys so both see the same noise. Each push is the new top."""
    client = Settings(redis_url=url).client()
    events = {key: asyncio.Event() for key in keys}
    watchers = []
    for key in keys:
        runner = Runner(lambda package, event=events[key]: event.set())
        watchers.append(
            asyncio.create_task(Dispatcher(Settings(redis_url=url, key=key), runner).run())
        )
        await asyncio.wait_for(events[key].wait(), 10)  # the first call: the top at start
    queues = {key: Queue(client, key) for key in keys}
    samples: dict[str, list[float]] = {key: [] for key in keys}
    warm_up = 50
    for i in range(warm_up + count):
        order = keys if i % 2 else keys[::-1]
        for key in order:
            events[key].clear()
            started = time.perf_counter()
            await queues[key].push(f"p{i}", 600, -i)
            await asyncio.wait_for(events[key].wait(), 5)
            if i >= warm_up:
                samples[key].append(time.perf_counter() - started)
    for watcher in watchers:
        await stop_task(watcher, 5)
    await client.aclose()
    return samples


# --- row 3 -------------------------------------------------------------------


class Service:
    """A real `kamikaze service` subprocess with the 0.1.x blocking example consumer."""

    def __init__(self, url: str, key: str, log: IO[bytes]) -> None:
        self.url, self.key, self.log = url, key, log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            KAMIKAZE,
            "service",
            CONSUMER,
            env=cli_env(self.url, self.key),
            stdout=asyncio.subprocess.PIPE,
            stderr=self.log,
        )

    async def wait_for_line(self, text: str, timeout: float = 15) -> None:
        assert self.process is not None and self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"service on {self.key} ended before printing {text!r}")
                if text in line:
                    return

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM in kB, from /proc/PID/status."""
        assert self.process is not None
        values = {}
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    values[name] = int(rest.split()[0])
        return values

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def service_memory(url: str, keys: list[str], pushes: int) -> dict[str, dict[str, int]]:
    """Start one service per key at once; after its first consumer call and
    `pushes` pushes that each became the top, read its memory."""
    client = Settings(redis_url=url).client()
    with tempfile.TemporaryFile() as log:
        services = [Service(url, key, log) for key in keys]
        try:
            for service in services:
                await service.start()
            for service in services:
                await service.wait_for_line("Consuming")  # first call: the top at start
            for j in range(pushes):
                for service in services:
                    await Queue(client, service.key).push(f"rss-{j}", 600, -1_000_000 - j)
                    await service.wait_for_line(f"Consuming 'rss-{j}'")
            await asyncio.sleep(0.5)  # let the first sweep and any allocation settle
            return {service.key: service.memory() for service in services}
        except BaseException:
            log.seek(0)
            print(log.read().decode(errors="replace")[-3000:])
            raise
        finally:
            for service in services:
                await service.stop()
            await client.aclose()


# --- row 7, row 8 ------------------------------------------------------------


async def push_needle(url: str, key: str) -> None:
    client = Settings(redis_url=url).client()
    await Queue(client, key).push("needle", 600, 500_000.5)  # mid-set
    await client.aclose()


async def remove_times(url: str, runs: int) -> tuple[list[float], list[float]]:
    """`kamikaze remove needle` on the big key and on the small one, interleaved."""
    big, small = [], []
    for _ in range(runs):
        for key, samples in ((BIG, big), (SMALL, small)):
            await push_needle(url, key)
            seconds, result = run_timed([KAMIKAZE, "remove", "needle"], cli_env(url, key))
            if b"removed 1 package" not in result.stderr:
                raise RuntimeError(f"remove on {key}: {result.stderr.decode()!r}")
            samples.append(seconds)
    return big, small


def list_times(url: str, runs: int, listed: int, small: int) -> tuple[list[float], list[float]]:
    """`kamikaze list --json` of the listed key and of the small one, interleaved."""
    big, floor = [], []
    for _ in range(runs):
        for key, expected, samples in ((LISTED, listed, big), (LISTED_SMALL, small, floor)):
            seconds, result = run_timed([KAMIKAZE, "list", "--json"], cli_env(url, key))
            got = len(json.loads(result.stdout))
            if got != expected:
                raise RuntimeError(f"list --json of {key}: {got} packages, expected {expected}")
            samples.append(seconds)
    return big, floor


# --- the sweep ---------------------------------------------------------------


async def timed(work: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    started = time.perf_counter()
    result = await work()
    return time.perf_counter() - started, result


@dataclass
class SweepCosts:
    seconds: float  # the sweep_once() that deleted the expired packages
    deleted: int
    before: tuple[int, int]  # (queue, index) sizes
    after: tuple[int, int]
    slow: list[SlowCall]
    idle: list[float]  # sweep_once() with nothing expired
    ping: list[float]
    idle_slow: list[SlowCall]


async def sweep_costs(url: str, idle_runs: int) -> SweepCosts:
    """One sweep_once() that deletes what has expired, then idle sweep_once()
    calls beside PINGs (interleaved)."""
    client = Settings(redis_url=url).client()
    queue = Queue(client, SWEPT)
    sweeper = Sweeper(queue)
    await queue.reconcile_step("index", 0, 1)  # load the scripts: not measured
    before = await queue.sizes()
    slowlog_start(url)
    seconds, deleted = await timed(sweeper.sweep_once)
    slow = slowlog_read(url)
    after = await queue.sizes()
    idle, ping = [], []
    slowlog_start(url)
    for _ in range(min(idle_runs, 58)):  # below RECONCILE_EVERY: steady-state sweeps only
        idle.append((await timed(sweeper.sweep_once))[0])
        ping.append((await timed(client.ping))[0])
    idle_slow = slowlog_read(url)
    await client.unlink(SWEPT, queue.index_key)
    await client.aclose()
    return SweepCosts(seconds, deleted, before, after, slow, idle, ping, idle_slow)


@dataclass
class ReconcileCost:
    seconds: float
    before: tuple[int, int]
    after: tuple[int, int]
    slow: list[SlowCall]


async def reconcile_cost(url: str, key: str) -> ReconcileCost:
    """Drop the key's indexes (as if 0.1.x had written it all), then one
    reconcile pass over the queue and the indexes."""
    client = Settings(redis_url=url).client()
    queue = Queue(client, key)
    await client.unlink(queue.index_key)
    await queue.reconcile_step("index", 0, 1)  # load the script: not measured
    while (await client.info("memory")).get("lazyfree_pending_objects", 0):
        await asyncio.sleep(0.05)
    before = await queue.sizes()
    slowlog_start(url)
    seconds, _ = await timed(Sweeper(queue).reconcile)
    slow = slowlog_read(url)
    after = await queue.sizes()
    await client.aclose()
    return ReconcileCost(seconds, before, after, slow)


# --- main --------------------------------------------------------------------


def mb(kb: int) -> str:
    return f"{kb / 1024:.1f} MB"


def sec(seconds: float) -> str:
    return f"{seconds:.3f} s"


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


async def main(args: argparse.Namespace) -> None:
    n = args.packages
    server = start_server()
    try:
        url = server.url
        filled = fill_live(url, SMALL, args.small) + fill_live(url, BIG, n)
        print(f"filled {n:,} + {args.small} packages in {filled:.1f} s")

        slowlog_start(url)
        pushes = await push_latencies(url, [SMALL, BIG], args.pushes)
        memory = await service_memory(url, [SMALL, BIG], 5)
        service_slow = slowlog_read(url)

        slowlog_start(url)
        removes, remove_floor = await remove_times(url, args.runs)
        remove_slow = slowlog_read(url)

        # fillers of the sweep key: every (n // expired)-th one expired a minute
        # ago, the top (i = 0) live
        now = time.time()
        step = max(1, n // max(1, args.expired))

        def sweep_expire(i: int) -> float:
            return now - 60 - i / 1e3 if i % step == step - 1 else now + FAR + i / 1e3

        filled = fill(url, SWEPT, n, priority=lambda i: 1000.0 + i, expire=sweep_expire)
        print(f"filled {n:,} packages ({n // step:,} expired) for the sweep in {filled:.1f} s")
        sweep = await sweep_costs(url, args.idle_sweeps)

        reconcile = await reconcile_cost(url, BIG)

        fill_live(url, LISTED, args.listed)
        fill_live(url, LISTED_SMALL, args.small)
        slowlog_start(url)
        lists, list_floor = list_times(url, args.runs, args.listed, args.small)
        list_slow = slowlog_read(url)
    finally:
        server.remove()

    small_p50, small_p99, _ = summary(pushes[SMALL])
    big_p50, big_p99, _ = summary(pushes[BIG])
    p50_ratio = big_p50 / small_p50
    rss_small, rss_big = memory[SMALL]["VmRSS"], memory[BIG]["VmRSS"]
    rss_delta = rss_big - rss_small
    remove_s, list_s = median(removes), median(lists)
    idle_p50, ping_p50 = median(sweep.idle), median(sweep.ping)
    expired = n // step
    swept_all = sweep.deleted == expired and sweep.after == (n - expired, n - expired)
    rb, ra = reconcile.before, reconcile.after
    m = f"{n:,}"
    rows = [
        [
            "2",
            f"push->consumer p50, {m} in set (p99 beside)",
            f"{ms(small_p50)} ms (p99 {ms(small_p99)}), {args.small} in set",
            f"{ms(big_p50)} ms (p99 {ms(big_p99)})",
            f"{p50_ratio:.2f}x",
            "<= 1.1x",
            yes(p50_ratio <= 1.1),
        ],
        [
            "3",
            f"service VmRSS, {m} in set (peak beside)",
            f"{mb(rss_small)} (peak {mb(memory[SMALL]['VmHWM'])}), {args.small} in set",
            f"{mb(rss_big)} (peak {mb(memory[BIG]['VmHWM'])})",
            f"{rss_delta / 1024:+.1f} MB",
            "+5 MB at most",
            yes(rss_delta <= 5 * 1024),
        ],
        [
            "2-3",
            f"Redis calls > 5 ms during rows 2-3 ({m} in set)",
            "",
            slow_text(service_slow),
            "",
            "0",
            yes(not service_slow),
        ],
        [
            "7",
            f"`kamikaze remove` among {m}, median of {args.runs}",
            f"{sec(median(remove_floor))} (same among {args.small})",
            f"{sec(remove_s)} (max {sec(max(removes))})",
            "",
            "<= 1 s",
            yes(remove_s <= 1),
        ],
        [
            "7",
            "Redis calls > 5 ms during the removes",
            "",
            slow_text(remove_slow),
            "",
            "0",
            yes(not remove_slow),
        ],
        [
            "sweep",
            f"sweep_once, {expired:,} expired of {m}",
            "",
            f"{sec(sweep.seconds)}, deleted {sweep.deleted:,}",
            "",
            "all deleted, < 60 s",
            yes(swept_all),
        ],
        [
            "sweep",
            "Redis calls > 5 ms during that sweep",
            "",
            slow_text(sweep.slow),
            "",
            "0",
            yes(not sweep.slow),
        ],
        [
            "sweep",
            f"sweep_once, nothing expired, p50 of {len(sweep.idle)}",
            f"{ms(ping_p50)} ms (a PING)",
            f"{ms(idle_p50)} ms (max {ms(max(sweep.idle))}), "
            f"calls > 5 ms: {slow_text(sweep.idle_slow)}",
            f"{idle_p50 / ping_p50:.1f} PINGs",
            "negligible: <= 1 ms",
            yes(idle_p50 <= 0.001 and not sweep.idle_slow),
        ],
        [
            "sweep",
            f"reconcile pass, {rb[0]:,} unindexed members",
            "",
            f"{sec(reconcile.seconds)}, index {rb[1]:,} -> {ra[1]:,}",
            "",
            "index = queue",
            yes(ra[0] == ra[1] == rb[0]),
        ],
        [
            "sweep",
            "Redis calls > 5 ms during the reconcile",
            "",
            slow_text(reconcile.slow),
            "",
            "0",
            yes(not reconcile.slow),
        ],
        [
            "8",
            f"`kamikaze list --json` of {args.listed:,}, median of {args.runs}",
            f"{sec(median(list_floor))} (same of {args.small})",
            f"{sec(list_s)} (max {sec(max(lists))})",
            "",
            "<= 3 s",
            yes(list_s <= 3),
        ],
        [
            "8",
            "Redis calls > 5 ms during the lists",
            "",
            slow_text(list_slow),
            "",
            "(info)",
            "",
        ],
    ]
    print_table(["row", "what", "baseline", "kamikaze", "ratio", "target", "met?"], rows)
    for label, calls in (
        ("rows 2-3", service_slow),
        ("the removes", remove_slow),
        ("the sweep", sweep.slow),
        ("idle sweeps", sweep.idle_slow),
        ("the reconcile", reconcile.slow),
        ("the lists", list_slow),
    ):
        slow_details(label, calls)
    print(
        f"summary: row 2 p50 {p50_ratio:.2f}x with {m} vs {args.small} (target 1.1x); "
        f"row 3 RSS {rss_delta / 1024:+.1f} MB (target +5 MB); "
        f"row 7 remove {remove_s:.3f} s (target 1 s), {len(remove_slow)} calls > 5 ms; "
        f"sweep {sweep.seconds:.3f} s for {sweep.deleted:,} expired, "
        f"{len(sweep.slow)} calls > 5 ms, idle {ms(idle_p50)} ms; "
        f"reconcile {reconcile.seconds:.1f} s, {len(reconcile.slow)} calls > 5 ms; "
        f"row 8 list {list_s:.3f} s (target 3 s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--pushes", type=int, default=1000)
    parser.add_argument("--expired", type=int, default=100_000)
    parser.add_argument("--listed", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each CLI command")
    parser.add_argument("--idle-sweeps", type=int, default=50)
    args = parser.parse_args()
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    asyncio.run(main(args))
