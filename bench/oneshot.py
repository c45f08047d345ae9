"""The one-shot commands as whole processes, beside the interpreter's floor,
measured as a user installs Kamikaze.

    python -m bench.oneshot [--runs 20] [--lines 10000] [--source DIR] [--venv DIR]

It first builds a plain venv (`pip install .`, not editable: an editable
install's .pth finder slows `python -c pass` threefold and flatters every
ratio) of the project at --source (default: this checkout) with the locked
versions, without pip or setuptools in it, and checks that its floor,
`python -c pass`, imports nothing but the standard library. --venv reuses
one built before.

Row 9 (issues 15.1, 22.2): `kamikaze push`, `kamikaze remove` and `kamikaze
list` (of 10 packages), each run interleaved with the venv's `python -c
pass`, over TCP, a unix socket, the embedded server and TLS; medians of
--runs each. Targets: within 2.5x the floor (moonshot 2x), 4x over TLS.
Row 6b: `kamikaze push -` of --lines JSON lines as a whole process, against
`Queue.push_many` of the same packages in one process (connect included);
target: at least 50 % of push_many's rate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import median, print_table, run_timed, start_server
from tests.servers import RedisServer
from tests.topologies import TlsServer, make_certs

ROOT = Path(__file__).resolve().parent.parent
FLOOR = [sys.executable, "-c", "pass"]  # the venv's, once use_venv() ran
KAMIKAZE = "kamikaze"


FLOOR_MODULES = """
import os, sys
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None)
    if path:
        print(os.path.realpath(path))
"""


def build_venv(source: Path, venv: Path) -> None:
    """A plain venv of the project at `source`: no pip, no setuptools (their
    .pth files run at every start), Kamikaze installed as a user installs it."""
    print(f"building a plain (non-editable) venv of {source} at {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
         "-c", str(ROOT / ".ci" / "constraints.txt"), f"{source}[embedded,speed]"],
        check=True,
    )  # fmt: skip


def use_venv(venv: Path) -> None:
    """Measure the venv's `kamikaze` against its own `python -c pass`, after
    checking that the floor imports only the standard library."""
    global KAMIKAZE, FLOOR
    python = str(venv / "bin" / "python")
    FLOOR = [python, "-c", "pass"]
    KAMIKAZE = str(venv / "bin" / "kamikaze")
    # What the floor has loaded when `pass` runs, and where from: nothing from the
    # venv's site-packages (no .pth hook, no editable finder).
    loaded = subprocess.run(
        [python, "-c", FLOOR_MODULES], capture_output=True, text=True, check=True
    ).stdout.split()
    foreign = sorted(path for path in loaded if path.startswith(str(venv.resolve())))
    if foreign:
        raise SystemExit(f"the floor of {venv} loads modules of the venv: {foreign}")
    print(f"floor: {python} -c pass loads nothing of its venv ({len(loaded)} modules)", flush=True)


PUSH_MANY = """\
import asyncio, os, sys, time
from kamikaze import Queue
items = [(f"line-{i}", 600, i % 10) for i in range(int(sys.argv[1]))]
async def main():
    async with Queue.connect(os.environ["KAMIKAZE_REDIS_URL"], os.environ["KAMIKAZE_KEY"]) as q:
        for start in range(0, len(items), 500):
            await q.push_many(items[start:start + 500])
asyncio.run(main())
"""


@contextmanager
def transports() -> Iterator[dict[str, dict[str, str]]]:
    """The environment of a `kamikaze` command for each transport."""
    directory = Path(tempfile.mkdtemp(prefix="kamikaze-bench-"))
    binary = shutil.which("redis-server")
    tcp = start_server()
    unix = RedisServer(
        binary or tcp.binary, extra_args=("--unixsocket", str(directory / "r.sock"))
    ).start()
    certs = make_certs(directory / "certs")
    runtime, data = directory / "run", directory / "data"
    from kamikaze.embedded import EmbeddedServer

    embedded = EmbeddedServer.at(str(runtime), str(data))
    tls = TlsServer(certs=certs) if binary else None
    try:
        with embedded.joined():
            if tls is not None:
                tls.start()
            base = {k: v for k, v in os.environ.items() if not k.startswith("KAMIKAZE_")}
            envs = {
                "tcp": {**base, "KAMIKAZE_REDIS_URL": tcp.url},
                "unix socket": {**base, "KAMIKAZE_REDIS_URL": f"unix://{directory / 'r.sock'}"},
                "embedded": {
                    **base,
                    "KAMIKAZE_EMBEDDED": "1",
                    "KAMIKAZE_EMBEDDED_RUNTIME_DIR": str(runtime),
                    "KAMIKAZE_EMBEDDED_DATA_DIR": str(data),
                },
            }
            if tls is not None:
                envs["tls"] = {
                    **base,
                    "KAMIKAZE_REDIS_URL": tls.url,
                    "KAMIKAZE_TLS_CA_FILE": str(certs.ca),
                }
            yield envs
    finally:
        if tls is not None:
            tls.stop()
        tcp.remove()
        unix.remove()
        shutil.rmtree(directory, ignore_errors=True)


def commands() -> dict[str, list[str]]:
    return {
        "push": [KAMIKAZE, "push", "bench-payload", "600", "5"],
        "remove": [KAMIKAZE, "remove", "not-there"],
        "list (10)": [KAMIKAZE, "list"],
    }


def one_shot_rows(runs: int) -> list[list[str]]:
    rows = []
    with transports() as envs:
        for transport, env in envs.items():
            env = {**env, "KAMIKAZE_KEY": f"bench-{transport.replace(' ', '-')}"}
            for i in range(10):
                run_timed([KAMIKAZE, "push", f"filler-{i}", "600", str(i)], env)
            for name, command in commands().items():
                for _ in range(3):  # warm up
                    run_timed(command, env)
                    run_timed(FLOOR, env)
                ours: list[float] = []
                floor: list[float] = []
                for i in range(runs):
                    pair = [(command, ours), (FLOOR, floor)]
                    for args, samples in pair if i % 2 else pair[::-1]:
                        samples.append(run_timed(args, env)[0])
                    if name == "push":  # keep the queue at 10 packages
                        run_timed([KAMIKAZE, "remove", "bench-payload"], env)
                ratio = median(ours) / median(floor)
                target = 4.0 if transport == "tls" else 2.5
                rows.append(
                    [
                        "9",
                        f"`kamikaze {name}` over {transport}",
                        f"{median(floor) * 1000:.1f} ms",
                        f"{median(ours) * 1000:.1f} ms",
                        f"{ratio:.2f}x",
                        f"<= {target:g}x" + ("" if transport == "tls" else " (2x)"),
                        "yes" if ratio <= target else "NO",
                    ]
                )
    return rows


def lines_row(lines: int, runs: int) -> list[str]:
    server = start_server()
    try:
        stdin = "".join(
            json.dumps({"payload": f"line-{i}", "ttl": 600, "priority": i % 10}) + "\n"
            for i in range(lines)
        ).encode()
        env = {**os.environ, "KAMIKAZE_REDIS_URL": server.url}
        ours: list[float] = []
        base: list[float] = []
        for i in range(runs):
            pair = [
                ([KAMIKAZE, "push", "-"], ours, stdin, "lines"),
                ([FLOOR[0], "-c", PUSH_MANY, str(lines)], base, None, "many"),
            ]
            for args, samples, given, key in pair if i % 2 else pair[::-1]:
                samples.append(run_timed(args, {**env, "KAMIKAZE_KEY": key}, given)[0])
    finally:
        server.remove()
    share = median(base) / median(ours)
    return [
        "6b",
        f"`kamikaze push -` of {lines:,} lines vs push_many in one process",
        f"{lines / median(base):,.0f}/s ({median(base) * 1000:.0f} ms)",
        f"{lines / median(ours):,.0f}/s ({median(ours) * 1000:.0f} ms)",
        f"{share:.0%}",
        ">= 50%",
        "yes" if share >= 0.5 else "NO",
    ]


def main(args: argparse.Namespace) -> None:
    started = time.monotonic()
    venv = Path(args.venv or Path(tempfile.mkdtemp(prefix="kamikaze-plain-")) / "venv")
    if not (venv / "bin" / "kamikaze").exists():
        build_venv(Path(args.source).resolve(), venv)
    use_venv(venv)
    rows = one_shot_rows(args.runs)
    rows.append(lines_row(args.lines, max(5, args.runs // 4)))
    print_table(["row", "what", "baseline", "kamikaze", "ratio", "target", "met?"], rows)
    missed = [row[1] for row in rows if row[-1] != "yes"]
    print(
        f"summary: {len(rows) - len(missed)} of {len(rows)} rows met"
        + (f"; missed: {', '.join(missed)}" if missed else "")
        + f" ({time.monotonic() - started:.0f} s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--source", default=str(ROOT), help="the project to install")
    parser.add_argument("--venv", help="a venv built by an earlier run (else a new one)")
    main(parser.parse_args())
