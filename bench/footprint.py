"""The queue's footprint in Redis (issue 23.2): bytes per package, ours
beside 0.1.x's layout, in the same run.

    python -m bench.footprint [--packages 100000] [--kamikaze PATH]

For 20- and 1,000-byte payloads: --packages packages pushed with `kamikaze
push -` (JSON lines, batches of 500: the queue, its index, its counter and
its calls' outcomes), against the same packages written in 0.1.x's layout
(one ZADD each, pipelined: the queue alone). Bytes per package are `INFO
memory` used_memory after minus before, divided by the count, on a fresh
server each time (and, beside it, `MEMORY USAGE` of every key, all elements
counted); the keys a queue leaves are `DBSIZE`. --kamikaze measures
another install (the `kamikaze` of a venv built from an older commit).
Targets: at most 2x 0.1.x's bytes for 20-byte payloads, 1.3x for 1,000-byte.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import redis

from bench.common import print_table, run_timed, start_server

KAMIKAZE = str(Path(sys.executable).with_name("kamikaze"))
TARGETS = {20: 2.0, 1000: 1.3}


def payload(i: int, size: int) -> str:
    return f"p{i:09d}".ljust(size, "x")


def used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def keys_bytes(client: redis.Redis) -> int:
    """MEMORY USAGE of every key, every element counted (SAMPLES 0)."""
    names = client.scan_iter()
    return sum(int(client.execute_command("MEMORY", "USAGE", n, "SAMPLES", "0")) for n in names)


def zero_one_bytes(count: int, size: int) -> tuple[float, float]:
    server = start_server()
    try:
        client = redis.Redis(port=server.port)
        before = used(client)
        pipe = client.pipeline(transaction=False)
        for i in range(count):
            pipe.zadd("kamikaze", {f"{time.time() + 600}:{payload(i, size)}": i % 10})
            if len(pipe) >= 1000:
                pipe.execute()
        pipe.execute()
        client.close()
        client = redis.Redis(port=server.port)  # the writer's buffers gone
        return (used(client) - before) / count, keys_bytes(client) / count
    finally:
        server.remove()


def our_bytes(count: int, size: int, kamikaze: str) -> tuple[float, float, int]:
    server = start_server()
    try:
        client = redis.Redis(port=server.port)
        before = used(client)
        lines = "".join(
            json.dumps({"payload": payload(i, size), "ttl": 600, "priority": i % 10}) + "\n"
            for i in range(count)
        ).encode()
        env = {**os.environ, "KAMIKAZE_REDIS_URL": server.url, "KAMIKAZE_KEY": "kamikaze"}
        run_timed([kamikaze, "push", "-"], env, lines, timeout=600)
        return (used(client) - before) / count, keys_bytes(client) / count, int(client.dbsize())
    finally:
        server.remove()


def main(args: argparse.Namespace) -> None:
    started = time.monotonic()
    rows = []
    for size, target in TARGETS.items():
        theirs, their_keys = zero_one_bytes(args.packages, size)
        ours, our_keys, keys = our_bytes(args.packages, size, args.kamikaze)
        ratio = ours / theirs
        rows.append(
            [
                f"{size:,}-byte payloads, {args.packages:,} packages",
                f"{theirs:,.0f} B (0.1.x's layout; keys {their_keys:,.0f} B)",
                f"{ours:,.0f} B (keys {our_keys:,.0f} B)",
                f"{ratio:.2f}x ({our_keys / their_keys:.2f}x)",
                f"<= {target}x",
                "yes" if ratio <= target else "NO",
                f"{keys:,}",
            ]
        )
    print_table(["what", "baseline", "kamikaze", "ratio", "target", "met?", "keys left"], rows)
    missed = [row[0] for row in rows if row[5] != "yes"]
    print(
        f"summary: {len(rows) - len(missed)} of {len(rows)} rows met"
        + (f"; missed: {', '.join(missed)}" if missed else "")
        + f" ({time.monotonic() - started:.0f} s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=100_000)
    parser.add_argument("--kamikaze", default=KAMIKAZE, help="the kamikaze command to measure")
    main(parser.parse_args())
