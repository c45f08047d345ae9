"""Broadcast at scale (issue 23.1): N followers of one queue, each learning
every new top; Redis commands per push and push -> all followers have it.

    python -m bench.fanout [--pushes 30] [--followers 1,10,100,1000] [--services 20]

Followers are `Queue.follow()` iterators, spread over 10 processes (fewer
when N < 10), one subscription each. Every push becomes the new top; a push's
latency is from the push returning to the last follower having the new top
(wall clocks of one machine). Redis commands per push come from `INFO
commandstats` (calls inside scripts included) over the pushes, divided by
their number; the followers' idle checks (a PING and a GET every 2 s) are
set to once a minute in these processes, so that only what a push causes is
counted. Baseline, in the same run: the same followers reading the top on
every signal, as they did before the signal carried it (`--read-always`).
Then: what the top's expiry costs (each follower reads once), and 20 `kamikaze
service` processes (push -> every consumer called).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis

from bench.common import percentile, print_table, start_server

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 10
FOLLOWER = """
import asyncio, json, os, sys, time
from kamikaze import signals
from kamikaze.queue import Queue
signals.IDLE_RECHECK = 60.0  # idle checks out of the count
url, key, count, read_always = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
if read_always:  # as before issue 23: every signal read
    Queue.signalled = lambda self, previous, received: None
seen = {}  # payload -> time the last of this process's followers had it
async def follow(queue, ready):
    started = False
    async for top in queue.follow():
        if not started:
            started = True
            ready.release()
        if top is not None:
            seen.setdefault(top.payload, []).append(time.time())
async def main():
    queues = [Queue.connect(url, key) for _ in range(count)]
    ready = asyncio.Semaphore(0)
    tasks = [asyncio.create_task(follow(q, ready)) for q in queues]
    for _ in queues:
        await ready.acquire()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print(json.dumps({p: [len(t), max(t)] for p, t in seen.items()}), flush=True)
    for task in tasks:
        task.cancel()
if os.environ.get("FANOUT_LOOP") == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


def commands(client: redis.Redis) -> int:
    return sum(int(v["calls"]) for v in client.info("commandstats").values())


def run_followers(url: str, key: str, total: int, pushes: int, read_always: bool) -> list[str]:
    """One row: N followers, `pushes` pushes that each become the top."""
    client = redis.Redis.from_url(url)
    client.delete(key)
    processes = min(PROCESSES, total)
    shares = [total // processes + (i < total % processes) for i in range(processes)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    followers = [
        subprocess.Popen(
            [sys.executable, "-c", FOLLOWER, url, key, str(share), "1" if read_always else "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for share in shares
    ]
    for process in followers:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    pushed_at: dict[str, float] = {}

    async def push_all() -> None:
        from kamikaze.queue import Queue

        async with Queue.connect(url, key) as queue:
            await queue.push("warm-up", 600, 10**6)
            await asyncio.sleep(0.5)
            before = commands(client)
            for i in range(pushes):
                payload = f"top-{i}"
                await queue.push(payload, 600, 10**6 - i - 1)  # each the new top
                pushed_at[payload] = time.time()
                await asyncio.sleep(0.1 + total / 5000)
            pushed_at["commands"] = (commands(client) - before) / pushes

    asyncio.run(push_all())
    time.sleep(0.5 + total / 1000)
    latest: dict[str, float] = {}
    counts: dict[str, int] = {}
    for process in followers:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("\n")
        process.stdin.flush()
        for payload, (count, when) in json.loads(process.stdout.readline()).items():
            latest[payload] = max(latest.get(payload, 0.0), when)
            counts[payload] = counts.get(payload, 0) + count
        process.wait(timeout=30)
    latencies = [latest[p] - pushed_at[p] for p in pushed_at if p.startswith("top-")]
    complete = sum(1 for p in pushed_at if p.startswith("top-") and counts.get(p) == total)
    client.close()
    return [
        f"{total:,}" + (" (reading every signal: before)" if read_always else ""),
        f"{pushed_at['commands']:,.1f}",
        f"{percentile(latencies, 50) * 1000:.1f} / {percentile(latencies, 99) * 1000:.1f} ms",
        f"{complete} of {pushes}",
    ]


def expiry_row(url: str, key: str, total: int) -> list[str]:
    """What an expiry of the top costs: each follower reads the top once."""
    client = redis.Redis.from_url(url)
    client.delete(key)
    processes = min(PROCESSES, total)
    shares = [total // processes + (i < total % processes) for i in range(processes)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    client.zadd(key, {f"{time.time() + 3600!r}:below": 5})
    followers = [
        subprocess.Popen(
            [sys.executable, "-c", FOLLOWER, url, key, str(share), "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for share in shares
    ]
    for process in followers:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    from kamikaze.queue import Queue

    async def push_short() -> None:
        async with Queue.connect(url, key) as queue:
            await queue.push("short", 1.0, 1)

    asyncio.run(push_short())
    time.sleep(0.5)
    before = commands(client)
    time.sleep(1.5 + total / 1000)  # the expiry, and every follower's read
    spent = commands(client) - before
    for process in followers:
        assert process.stdin is not None
        process.stdin.write("\n")
        process.stdin.flush()
        process.wait(timeout=30)
    client.close()
    return [
        f"{total:,}: the top expires",
        f"{spent:,} in all ({spent / total:.1f} a follower)",
        "",
        "",
    ]


def services_row(url: str, key: str, count: int, pushes: int) -> list[str]:
    """`count` kamikaze service processes: push -> every consumer called."""
    client = redis.Redis.from_url(url)
    client.delete(key)
    consumer = ROOT / "bench" / "_stamp_consumer.py"
    consumer.write_text(
        "import sys, time\n"
        "def stamp(package):\n"
        "    if package is not None:\n"
        "        print('STAMP', package.payload, time.time(), flush=True)\n"
    )
    env = {
        **os.environ,
        "KAMIKAZE_REDIS_URL": url,
        "KAMIKAZE_KEY": key,
        "PYTHONPATH": str(ROOT / "bench"),
        "KAMIKAZE_LOGLEVEL": "WARNING",
    }
    kamikaze = str(Path(sys.executable).with_name("kamikaze"))
    services = [
        subprocess.Popen(
            [kamikaze, "service", "_stamp_consumer.stamp"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for _ in range(count)
    ]
    time.sleep(3)  # all subscribed
    pushed_at: dict[str, float] = {}
    from kamikaze.queue import Queue

    async def push_all() -> None:
        async with Queue.connect(url, key) as queue:
            before = commands(client)
            for i in range(pushes):
                await queue.push(f"svc-{i}", 600, 10**6 - i)
                pushed_at[f"svc-{i}"] = time.time()
                await asyncio.sleep(0.2)
            pushed_at["commands"] = (commands(client) - before) / pushes

    asyncio.run(push_all())
    time.sleep(1)
    latest: dict[str, float] = {}
    for service in services:
        service.terminate()
        out, _ = service.communicate(timeout=10)
        for line in out.splitlines():
            if line.startswith("STAMP "):
                _, payload, when = line.split()
                latest[payload] = max(latest.get(payload, 0.0), float(when))
    consumer.unlink()
    latencies = [latest[p] - pushed_at[p] for p in pushed_at if p in latest]
    client.close()
    return [
        f"{count} `kamikaze service` processes",
        f"{pushed_at['commands']:,.1f}",
        f"{percentile(latencies, 50) * 1000:.1f} / {percentile(latencies, 99) * 1000:.1f} ms",
        f"{len(latencies)} of {pushes}",
    ]


def main(args: argparse.Namespace) -> None:
    started = time.monotonic()
    server = start_server()
    server_client = redis.Redis(port=server.port)
    server_client.config_set("maxclients", 10000)  # two connections a follower
    rows = []
    try:
        for total in [int(n) for n in args.followers.split(",")]:
            rows.append(run_followers(server.url, f"fan-{total}", total, args.pushes, True))
            rows.append(run_followers(server.url, f"fan-{total}", total, args.pushes, False))
        rows.append(
            expiry_row(server.url, "fan-expiry", max(int(n) for n in args.followers.split(",")))
        )
        if args.services:
            rows.append(services_row(server.url, "fan-services", args.services, args.pushes))
    finally:
        server_client.close()
        server.remove()
    print_table(
        ["followers", "Redis commands per push", "push -> all have it, p50 / p99", "complete"], rows
    )
    print(f"summary: {len(rows)} rows ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=30)
    parser.add_argument("--followers", default="1,10,100,1000")
    parser.add_argument("--services", type=int, default=20)
    main(parser.parse_args())
