"""`kamikaze push` as a whole process beside its baseline, in the same run.

    python -m bench.startup [--runs 40] [--importtime-runs 5]

6. `kamikaze push PAYLOAD TTL PRIORITY`, median wall time over --runs,
   against a `python -c` script that imports redis, connects with
   redis.Redis (sync) and does ZADD+PUBLISH; the two run interleaved.
   For information: the 10 largest cumulative imports of
   `python -X importtime -c "import kamikaze.cli"` and of a whole
   `kamikaze push` (median over --importtime-runs), beside `import redis`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from dataclasses import dataclass

from bench.common import KAMIKAZE, cli_env, median, percentile, print_table, run_timed, start_server

BASELINE = """\
import os, time, redis
key = os.environ["KAMIKAZE_KEY"]
client = redis.Redis.from_url(os.environ["KAMIKAZE_REDIS_URL"])
client.zadd(key, {f"{time.time() + 600}:baseline": 1.0})
client.publish(key, "new_message")
"""


@dataclass
class ImportTimes:
    cumulative: dict[str, float]  # module -> median seconds, itself and what it imported
    own: dict[str, float]  # module -> median seconds, itself only


def importtimes(args: list[str], env: dict[str, str], runs: int) -> ImportTimes:
    """Import times of `python -X importtime ARGS`, medians over `runs` runs."""
    cumulative: dict[str, list[float]] = {}
    own: dict[str, list[float]] = {}
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", *args],
            env=env,
            capture_output=True,
            timeout=60,
            check=True,
        )
        for line in result.stderr.decode().splitlines():
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
            cumulative.setdefault(name.strip(), []).append(int(cumulative_us) / 1e6)
            own.setdefault(name.strip(), []).append(int(self_us) / 1e6)
    return ImportTimes(
        {name: statistics.median(values) for name, values in cumulative.items()},
        {name: statistics.median(values) for name, values in own.items()},
    )


def top_imports(title: str, times: dict[str, float], count: int = 10) -> None:
    print(f"\n{title} (median ms)")
    largest = sorted(times.items(), key=lambda item: -item[1])[:count]
    print_table(["module", "ms"], [[name, f"{s * 1000:.1f}"] for name, s in largest])


def extra_imports(ours: ImportTimes, base: ImportTimes) -> dict[str, float]:
    """Own import time of each module that only `ours` imports."""
    return {name: seconds for name, seconds in ours.own.items() if name not in base.own}


def main(args: argparse.Namespace) -> None:
    server = start_server()
    try:
        env = cli_env(server.url, "startup")
        ours_args = [KAMIKAZE, "push", "startup-payload", "600", "1"]
        base_args = [sys.executable, "-c", BASELINE]
        for _ in range(3):  # warm up: bytecode caches, page cache
            run_timed(ours_args, env)
            run_timed(base_args, env)
        ours, base = [], []
        for i in range(args.runs):
            pair = [(ours_args, ours), (base_args, base)]
            for command, samples in pair if i % 2 else pair[::-1]:
                samples.append(run_timed(command, env)[0])
        cli_imports = importtimes(["-c", "import kamikaze.cli"], env, args.importtime_runs)
        push_imports = importtimes(ours_args, env, args.importtime_runs)
        base_imports = importtimes(["-c", BASELINE], env, args.importtime_runs)
        python_alone = [run_timed([sys.executable, "-c", "pass"], env)[0] for _ in range(10)]
    finally:
        server.remove()

    ratio = median(ours) / median(base)
    print_table(
        ["row", "what", "baseline", "kamikaze", "ratio", "target", "met?"],
        [
            [
                "6",
                f"`kamikaze push` whole process, median of {args.runs}",
                f"{median(base) * 1000:.0f} ms (python -c: import redis, "
                "redis.Redis, ZADD+PUBLISH)",
                f"{median(ours) * 1000:.0f} ms",
                f"{ratio:.2f}x",
                "<= 1.15x",
                "yes" if ratio <= 1.15 else "NO",
            ],
            [
                "6",
                "(info) p90 of the same runs",
                f"{percentile(base, 90) * 1000:.0f} ms",
                f"{percentile(ours, 90) * 1000:.0f} ms",
                f"{percentile(ours, 90) / percentile(base, 90):.2f}x",
                "",
                "",
            ],
            [
                "6",
                "(info) `python -c pass`, median of 10",
                f"{median(python_alone) * 1000:.0f} ms",
                "",
                "",
                "",
                "",
            ],
        ],
    )
    top_imports(
        'python -X importtime -c "import kamikaze.cli": the 10 largest cumulative imports',
        cli_imports.cumulative,
    )
    top_imports(
        "python -X importtime kamikaze push PAYLOAD 600 1: the 10 largest cumulative imports",
        push_imports.cumulative,
    )
    extra = extra_imports(push_imports, base_imports)
    top_imports(
        f"what `kamikaze push` imports and the baseline does not: "
        f"{sum(extra.values()) * 1000:.0f} ms in all, the 10 largest by own time",
        extra,
    )
    print(
        f"(the baseline's `import redis`: {base_imports.cumulative['redis'] * 1000:.1f} ms "
        f"cumulative; `kamikaze push`'s `redis`: {push_imports.cumulative['redis'] * 1000:.1f} ms)"
    )
    print(
        f"summary: `kamikaze push` {median(ours) * 1000:.0f} ms = {ratio:.2f}x the baseline's "
        f"{median(base) * 1000:.0f} ms (median of {args.runs} each, target 1.15x)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--importtime-runs", type=int, default=5)
    main(parser.parse_args())
