"""Sentinel failover: from kill -9 of the master to the service's delivery of
the next push, next to Sentinel's own promotion time in the same run.

For each run: a fresh master, replica and three sentinels (down-after 1000 ms);
a real `kamikaze service` through Sentinel; kill -9 of the master; a pusher
that retries `kamikaze push B` through Sentinel until it succeeds. Measured:
kill -> all sentinels name the new master (the baseline: no client can do
better), and kill -> the service prints `Consuming 'B'`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

from bench.common import KAMIKAZE, print_table
from tests.topologies import SentinelSet

CONSUMER = "example_consumer.consumer.blocking_consumer_func"


def one_run() -> tuple[float, float]:
    with SentinelSet() as topology:
        sentinels = ",".join(f"{h}:{p}" for h, p in topology.sentinel_addresses())
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KAMIKAZE_")},
            "KAMIKAZE_SENTINELS": sentinels,
            "KAMIKAZE_SENTINEL_MASTER": topology.master_name,
            "PYTHONUNBUFFERED": "1",
        }
        service = subprocess.Popen(
            [KAMIKAZE, "service", CONSUMER],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        delivered = threading.Event()
        lines: list[str] = []

        def read() -> None:
            assert service.stdout is not None
            for line in service.stdout:
                lines.append(line)
                if "Consuming 'B'" in line:
                    delivered.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            subprocess.run([KAMIKAZE, "push", "A", "600", "5"], env=env, check=True)
            _wait(lambda: any("Consuming 'A'" in line for line in lines), 10)
            old_port = topology.master_port()
            killed_at = time.monotonic()
            topology.kill_master()
            pusher = threading.Thread(target=_push_until_accepted, args=(env,), daemon=True)
            pusher.start()
            topology.wait_for_failover(old_port, timeout=60)
            promoted = time.monotonic() - killed_at
            if not delivered.wait(60):
                raise RuntimeError("B was never delivered:\n" + "".join(lines))
            return promoted, time.monotonic() - killed_at
        finally:
            service.terminate()
            service.wait(10)


def _push_until_accepted(env: dict[str, str]) -> None:
    command = [KAMIKAZE, "push", "B", "600", "1"]
    while subprocess.run(command, env=env, capture_output=True).returncode != 0:
        time.sleep(0.05)


def _wait(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    promoted, delivered = [], []
    for run in range(args.runs):
        p, d = one_run()
        promoted.append(p)
        delivered.append(d)
        print(f"run {run + 1}: promoted {p:.2f} s, delivered {d:.2f} s", file=sys.stderr)
    rows = [
        ["baseline: kill -> sentinels name the new master", *_stats(promoted)],
        ["kamikaze: kill -> service delivers the next push", *_stats(delivered)],
        [
            "kamikaze beyond the promotion",
            *_stats([d - p for p, d in zip(promoted, delivered, strict=True)]),
        ],
    ]
    print_table(["measurement (s)", "runs", "median", "min", "max"], rows)
    extra = statistics.median(d - p for p, d in zip(promoted, delivered, strict=True))
    print(
        f"summary: failover kill->delivery median {statistics.median(delivered):.2f} s, "
        f"{extra:.2f} s after Sentinel's promotion (median of {args.runs})"
    )


def _stats(samples: list[float]) -> list[str]:
    return [
        str(len(samples)),
        f"{statistics.median(samples):.2f}",
        f"{min(samples):.2f}",
        f"{max(samples):.2f}",
    ]


if __name__ == "__main__":
    main()
