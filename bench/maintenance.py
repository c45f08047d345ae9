"""Background work beside the foreground, in the same run (issue 15.2).

    python -m bench.maintenance [--packages 1000000] [--pushes 300]

Row 10: push -> consumer latency on a queue of --packages members written by
0.1.x (no indexes), while the service's reconcile pass indexes them,
against the same queue at rest (before the pass, and after it). The pass
runs paced by the Sweeper's duty cycle, and once more unpaced (as before
the duty cycle) for comparison. Target: p50 within 1.2x of at rest.
Row 11: `kamikaze remove` of one payload among --packages unindexed members
(the walk of the queue), as a whole process, beside the same command on 10
members. Target: within 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import kamikaze.sweep
from bench.common import KAMIKAZE, cli_env, fill, median, print_table, run_timed, start_server
from kamikaze.consumer import Runner
from kamikaze.queue import Queue
from kamikaze.runtime import stop_task
from kamikaze.service import Dispatcher
from kamikaze.settings import Settings
from kamikaze.sweep import Sweeper

BIG = "maintenance-big"


async def push_latencies(url: str, key: str, pushes: int, start: int) -> list[float]:
    """Each push becomes the top; the time until the consumer is called with it."""
    settings = Settings(redis_url=url, key=key)
    called = asyncio.Event()
    seen: list[str] = []

    def consumer(package: object) -> None:
        seen.append(getattr(package, "payload", ""))
        called.set()

    dispatcher = asyncio.create_task(Dispatcher(settings, Runner(consumer)).run())
    await asyncio.wait_for(called.wait(), 10)
    client = settings.client()
    queue = Queue(client, key)
    samples = []
    for i in range(start, start + pushes):
        called.clear()
        started = time.perf_counter()
        await queue.push(f"p{i}", 600, -i)
        while not (seen and seen[-1] == f"p{i}"):
            await asyncio.wait_for(called.wait(), 10)
            called.clear()
        samples.append(time.perf_counter() - started)
        await asyncio.sleep(0.002)
    await stop_task(dispatcher, 5)
    await client.aclose()
    return samples


async def during_reconcile(url: str, pushes: int, start: int, duty: float) -> list[float]:
    """Push latencies while a reconcile pass runs (unindexed again first);
    the pass is stopped once they are measured."""
    import redis.asyncio as redis

    admin = redis.Redis.from_url(url)
    await admin.unlink("{" + BIG + "}:by-payload")
    await admin.aclose()
    kamikaze.sweep.DUTY_CYCLE = duty
    client = Settings(redis_url=url, key=BIG).client()
    sweeper = Sweeper(Queue(client, BIG))
    reconcile = asyncio.create_task(sweeper.reconcile())
    await asyncio.sleep(0.5)  # under way
    samples = await push_latencies(url, BIG, pushes, start)
    assert not reconcile.done(), "the pass ended before the pushes: use more --packages"
    await stop_task(reconcile, 5)
    await client.aclose()
    return samples


def remove_row(url: str, runs: int) -> list[str]:
    """`kamikaze remove` among the unindexed members, beside 10 members."""
    import redis

    admin = redis.Redis.from_url(url)
    big, small = cli_env(url, BIG), cli_env(url, "maintenance-small")
    fill(url, "maintenance-small", 10, priority=float, expire=lambda i: time.time() + 3600)
    ours, floor = [], []
    for _ in range(runs):
        admin.unlink("{" + BIG + "}:by-payload")  # as 0.1.x left it
        admin.zadd(BIG, {f"{time.time() + 600}:needle": 500_000.5})  # in the middle
        seconds, result = run_timed([KAMIKAZE, "remove", "needle"], big)
        assert b"removed 1 package" in result.stderr, result.stderr
        ours.append(seconds)
        floor.append(run_timed([KAMIKAZE, "remove", "needle"], small)[0])
    admin.close()
    return [
        "11",
        f"`kamikaze remove` among {admin_count(url):,} unindexed members (whole process)",
        f"{median(floor) * 1000:.0f} ms (10 members)",
        f"{median(ours) * 1000:.0f} ms",
        f"{median(ours) / median(floor):.2f}x",
        "<= 1 s",
        "yes" if median(ours) <= 1.0 else "NO",
    ]


def admin_count(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.zcard(BIG))
    finally:
        client.close()


async def measure(args: argparse.Namespace) -> list[list[str]]:
    server = start_server()
    try:
        fill(
            server.url, BIG, args.packages, priority=lambda i: 1000.0 + i,
            expire=lambda i: time.time() + 3600, index=False,
        )  # fmt: skip
        n, duty = args.pushes, kamikaze.sweep.DUTY_CYCLE
        rest_before = await push_latencies(server.url, BIG, n, 0)
        paced = await during_reconcile(server.url, n, n, duty)
        unpaced = await during_reconcile(server.url, n, 2 * n, 1.0)
        rest_after = await push_latencies(server.url, BIG, n, 3 * n)
        rows = []
        rest = median(rest_before + rest_after)
        for label, samples in (
            (f"paced ({duty:.0%} duty cycle)", paced),
            ("unpaced (as before the duty cycle)", unpaced),
        ):
            ratio = median(samples) / rest
            rows.append(
                [
                    "10",
                    f"push -> consumer p50 while reconciling {args.packages:,}, {label}",
                    f"{rest * 1000:.2f} ms (at rest)",
                    f"{median(samples) * 1000:.2f} ms",
                    f"{ratio:.2f}x",
                    "<= 1.2x",
                    "yes" if ratio <= 1.2 else "NO",
                ]
            )
        rows[1][-1] = "(info)"
        rows.append(remove_row(server.url, args.runs))
        return rows
    finally:
        server.remove()


def main(args: argparse.Namespace) -> None:
    rows = asyncio.run(measure(args))
    print_table(["row", "what", "baseline", "kamikaze", "ratio", "target", "met?"], rows)
    print(
        f"summary: reconcile paced {rows[0][4]} at rest (unpaced {rows[1][4]}); "
        f"remove among unindexed {rows[2][3]}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=1_000_000)
    parser.add_argument("--pushes", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    main(parser.parse_args())
