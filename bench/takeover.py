"""Take-over of exclusive services (issue 24, docs/ha.rst): how long from the
active service being stopped (SIGTERM) or killed (SIGKILL) to a standby's
consumer being called with the current top, beside the lease's length.

    python -m bench.takeover [--rounds 20] [--leases 0.8,0.4]

Two `kamikaze service --exclusive` on one throwaway server, the queue holding
one package. Each round stops or kills the active one, waits for the
standby's first call (its consumer prints the wall clock of the call), and
starts a new standby, which is given one lease length to settle (a starting
service waits that long before it may take a free lease). The expected
bound: SIGTERM at once (the lease is given up and the release published),
SIGKILL within the lease's length plus a quarter of it (the standby's poll).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

from bench.common import print_table, start_server
from kamikaze.keys import QueueKeys
from tests.integration.processes import Service, kamikaze_env

KEY = "takeover"
CONSUMER = """
import os, time
import kamikaze

def record(package):
    print(f"CALL {os.getpid()} {kamikaze.term()} {time.time()!r}", flush=True)
"""


def active_pid(admin: redis.Redis) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        held = admin.get(QueueKeys(KEY).lease)
        if held:
            return int(held.decode().split()[1].split(":")[1])
        time.sleep(0.01)
    raise RuntimeError("no service holds the lease")


def start(env: dict[str, str], workdir: Path, lease: float) -> Service:
    service = Service(
        "service", "consumer.record", "--exclusive", "--lease", str(lease), env=env, cwd=workdir
    )
    service.expect("watching")
    return service


def rounds(url: str, port: int, workdir: Path, lease: float, how: int, count: int) -> list[float]:
    """Seconds from the signal to the new active service's first call, per round."""
    env = kamikaze_env(url, KEY)
    admin = redis.Redis(port=port)
    services = [start(env, workdir, lease), start(env, workdir, lease)]
    taken: list[float] = []
    try:
        first = next(s for s in services if s.process.pid == active_pid(admin))
        first.expect("CALL ")
        time.sleep(lease + 0.3)  # the other one is a settled standby
        for _ in range(count):
            pid = active_pid(admin)
            (active,) = [s for s in services if s.process.pid == pid]
            (standby,) = [s for s in services if s is not active]
            sent = time.time()
            active.process.send_signal(how)
            call = standby.expect("CALL ", timeout=10)
            taken.append(float(call.split()[3]) - sent)
            active.process.wait(timeout=10)
            services = [standby, start(env, workdir, lease)]
            time.sleep(lease + 0.3)
    finally:
        for service in services:
            service.kill()
        admin.delete(QueueKeys(KEY).lease)
        admin.close()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--leases", default="0.8,0.4")
    options = parser.parse_args()
    server = start_server()
    rows = []
    try:
        url = f"redis://127.0.0.1:{server.port}/0"
        with redis.Redis(port=server.port) as admin:
            admin.zadd(KEY, {f"{time.time() + 86400!r}:the-top": 1})
        with tempfile.TemporaryDirectory() as workdir:
            (Path(workdir) / "consumer.py").write_text(CONSUMER)
            for lease in (float(text) for text in options.leases.split(",")):
                for name, how in (("SIGTERM", signal.SIGTERM), ("SIGKILL", signal.SIGKILL)):
                    taken = rounds(url, server.port, Path(workdir), lease, how, options.rounds)
                    rows.append(
                        [
                            name,
                            f"{lease:g}",
                            str(len(taken)),
                            f"{statistics.median(taken) * 1000:.0f}",
                            f"{max(taken) * 1000:.0f}",
                            f"{min(taken) * 1000:.0f}",
                        ]
                    )
                    print(
                        f"# {name} lease {lease:g}: {[round(t * 1000) for t in taken]}",
                        file=sys.stderr,
                    )
    finally:
        server.remove()
    print(f"# {os.cpu_count()} cores; ms from the signal to the new active service's first call")
    print_table(["stopped by", "lease s", "take-overs", "median ms", "max ms", "min ms"], rows)


if __name__ == "__main__":
    main()
