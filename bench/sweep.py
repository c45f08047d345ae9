"""The sweep without an expiry index (issue 23.2): one pass over a queue of
--packages, --expired of them expired below the top, paced as the service
paces it (a tenth of Redis' time); beside it the same pass when nothing has
expired. With few priorities the pass skips the rest of each priority once
its packages expire later; with every priority different it walks them all.

    python -m bench.sweep [--packages 1000000] [--expired 100000]

Target: a pass within a minute (expired packages below the top are deleted
within a minute of expiring: docs/contract.rst §2).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import redis

from bench.common import fill, print_table, start_server
from kamikaze.queue import Queue
from kamikaze.sweep import paced

KEY = "bench-sweep"


async def one_pass(url: str) -> tuple[float, float, int]:
    """(wall seconds of a paced pass, seconds Redis spent in it, deleted)."""
    client = redis.asyncio.Redis.from_url(url)
    queue = Queue(client, KEY)
    busy = 0.0

    async def step(after: object) -> tuple[int, object]:
        nonlocal busy
        started = time.perf_counter()
        result = await queue.sweep_step(after)  # type: ignore[arg-type]
        busy += time.perf_counter() - started
        return result

    started = time.perf_counter()
    deleted, after = 0, None
    while True:
        removed, after = await paced(lambda: step(after))  # noqa: B023
        deleted += removed
        if after is None:
            break
    wall = time.perf_counter() - started
    await client.aclose()
    return wall, busy, deleted


def main(args: argparse.Namespace) -> None:
    started = time.monotonic()
    rows = []
    for label, priority in (
        ("10 priorities", lambda i: float(i % 10)),
        ("every priority different", lambda i: 1000.0 + i),
    ):
        server = start_server()
        try:
            now = time.time()
            step = args.packages // args.expired

            def expire(i: int) -> float:
                return now - 60 if i % step == 0 else now + 3600  # noqa: B023

            fill(server.url, KEY, args.packages, priority=priority, expire=expire)
            wall, busy, deleted = asyncio.run(one_pass(server.url))
            idle_wall, idle_busy, _ = asyncio.run(one_pass(server.url))
        finally:
            server.remove()
        for what, (w, b) in (
            (f"{deleted:,} expired", (wall, busy)),
            ("nothing expired", (idle_wall, idle_busy)),
        ):
            rows.append(
                [
                    f"{args.packages:,} packages, {label}, {what}",
                    f"{b * 1000:,.0f} ms",
                    f"{w:,.1f} s",
                    "<= 60 s",
                    "yes" if w <= 60 else "NO",
                ]
            )
    print_table(["what", "Redis busy", "paced pass", "target", "met?"], rows)
    print(f"summary: {len(rows)} rows ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=1_000_000)
    parser.add_argument("--expired", type=int, default=100_000)
    main(parser.parse_args())
