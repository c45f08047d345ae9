"""Packages per second in batches, each beside its baseline in the same run.

    python -m bench.throughput [--packages 100000] [--batch 1000] [--lines 10000] [--runs 5]

5.  Queue.push_many in batches of --batch, against raw redis.asyncio
    pipelined ZADD+PUBLISH pairs in pipelines of --batch pairs; --packages of
    each, in interleaved rounds.
6b. `kamikaze push -` of --lines JSON lines from stdin (a whole process),
    against push_many of the same packages in one process (connect included);
    median of --runs each, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bench.common import (
    KAMIKAZE,
    cli_env,
    median,
    print_table,
    run_timed,
    slow_details,
    slow_text,
    slowlog_read,
    slowlog_start,
    start_server,
)
from kamikaze.queue import Queue
from kamikaze.settings import Settings

ROUNDS = 10


async def raw_pairs(url: str, key: str, count: int, batch: int) -> float:
    """Seconds for `count` ZADD+PUBLISH pairs, pipelined `batch` pairs at a time."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    await client.ping()
    started = time.perf_counter()
    for first in range(0, count, batch):
        expire = time.time() + 600
        async with client.pipeline(transaction=False) as pipe:
            for i in range(first, min(first + batch, count)):
                pipe.zadd(key, {f"{expire}:raw-{i}": float(i)})
                pipe.publish(key, "new_message")
            await pipe.execute()
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed


async def push_many(url: str, key: str, count: int, batch: int, connect: bool = False) -> float:
    """Seconds for `count` packages through Queue.push_many, `batch` per call;
    with `connect`, the connection is made inside the timing."""
    client = Settings(redis_url=url).client()
    queue = Queue(client, key)
    if not connect:
        await queue.push_many([("warm-up", 600.0, 0.0)])  # connection made, script loaded
    started = time.perf_counter()
    for first in range(0, count, batch):
        await queue.push_many(
            [(f"many-{i}", 600.0, float(i)) for i in range(first, min(first + batch, count))]
        )
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed


async def delete(url: str, *keys: str) -> None:
    client = Settings(redis_url=url).client()
    await client.unlink(*keys, *(Queue(client, key).index_key for key in keys))
    await client.aclose()


def json_lines(count: int) -> bytes:
    return "".join(
        json.dumps({"payload": f"line-{i}", "ttl": 600, "priority": i}) + "\n" for i in range(count)
    ).encode()


def cli_push(url: str, key: str, lines: bytes, expected: int) -> float:
    seconds, result = run_timed([KAMIKAZE, "push", "-"], cli_env(url, key), stdin=lines)
    if f"pushed {expected} package".encode() not in result.stderr:
        raise RuntimeError(f"push - of {expected} lines: {result.stderr.decode()!r}")
    return seconds


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s"


async def main(args: argparse.Namespace) -> None:
    server = start_server()
    try:
        url = server.url
        # warm up both paths (imports, script cache, allocator)
        await raw_pairs(url, "warm-raw", args.batch * 2, args.batch)
        await push_many(url, "warm-many", args.batch * 2, args.batch)

        # row 5: interleaved rounds, each package count split over ROUNDS
        per_round = max(args.batch, args.packages // ROUNDS)
        raw_s = many_s = 0.0
        raw_n = many_n = 0
        slowlog_start(url)
        for r in range(ROUNDS):
            for kind in ("raw", "many") if r % 2 else ("many", "raw"):
                if kind == "raw":
                    raw_s += await raw_pairs(url, f"raw-{r}", per_round, args.batch)
                    raw_n += per_round
                else:
                    many_s += await push_many(url, f"many-{r}", per_round, args.batch)
                    many_n += per_round
            await delete(url, f"raw-{r}", f"many-{r}")
        slow = [call for call in slowlog_read(url) if not call.command.startswith("UNLINK")]

        # row 6b: the CLI reading JSON lines vs push_many in this process
        lines = json_lines(args.lines)
        empty_s, cli_s, inproc_s = [], [], []
        for r in range(args.runs):
            cli_s.append(cli_push(url, f"cli-{r}", lines, args.lines))
            inproc_s.append(await push_many(url, f"inproc-{r}", args.lines, args.batch, True))
            empty_s.append(run_timed([KAMIKAZE, "push", "-"], cli_env(url, "empty"), b"")[0])
            await delete(url, f"cli-{r}", f"inproc-{r}")
        big_lines = args.lines * 10
        big_cli_s = cli_push(url, "cli-big", json_lines(big_lines), big_lines)
    finally:
        server.remove()

    raw_rate, many_rate = raw_n / raw_s, many_n / many_s
    cli_rate = args.lines / median(cli_s)
    inproc_rate = args.lines / median(inproc_s)
    ratio5, ratio6b = many_rate / raw_rate, cli_rate / inproc_rate
    print_table(
        ["row", "what", "baseline", "kamikaze", "ratio", "target", "met?"],
        [
            [
                "5",
                f"packages/s, {many_n:,} in batches of {args.batch}",
                f"{rate(raw_n, raw_s)} (raw pipelined ZADD+PUBLISH pairs)",
                f"{rate(many_n, many_s)} (Queue.push_many)",
                f"{ratio5:.2f}x",
                ">= 2x",
                "yes" if ratio5 >= 2 else "NO",
            ],
            [
                "5",
                f"(info) Redis calls > 5 ms during row 5 (push_many of {args.batch} is one call)",
                "",
                slow_text(slow),
                "",
                "",
                "",
            ],
            [
                "6b",
                f"packages/s, {args.lines:,} JSON lines, median of {args.runs}",
                f"{rate(args.lines, median(inproc_s))} (push_many in one process)",
                f"{rate(args.lines, median(cli_s))} (`kamikaze push -`)",
                f"{ratio6b:.0%}",
                ">= 50%",
                "yes" if ratio6b >= 0.5 else "NO",
            ],
            [
                "6b",
                "(info) where the CLI's time goes",
                f"{median(inproc_s) * 1000:.0f} ms in one process",
                f"{median(cli_s) * 1000:.0f} ms, of which {median(empty_s) * 1000:.0f} ms "
                "is `kamikaze push -` with empty stdin",
                "",
                "",
                "",
            ],
            [
                "6b",
                f"(info) `kamikaze push -` of {big_lines:,} lines, 1 run",
                "",
                f"{rate(big_lines, big_cli_s)} ({big_cli_s:.2f} s)",
                f"{big_lines / big_cli_s / inproc_rate:.0%}",
                "",
                "",
            ],
        ],
    )
    slow_details("row 5", slow)
    print(
        f"summary: row 5 push_many {rate(many_n, many_s)} = {ratio5:.2f}x raw pipelined pairs "
        f"{rate(raw_n, raw_s)} (target 2x); row 6b `kamikaze push -` "
        f"{rate(args.lines, median(cli_s))} = {ratio6b:.0%} of push_many in one process "
        f"{rate(args.lines, median(inproc_s))} (target 50%)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
