"""Stress: 8 pusher processes, 2 remover processes and 3 `kamikaze service`
processes on one queue, then the queue, its indexes and every service's last
consumer call are checked against what the workers recorded (issue 5).

The run lasts KAMIKAZE_STRESS_SECONDS (default 5 s, so CI stays fast; run it
with 20 or more locally). It is never skipped.

Covers: kamikaze/queue.py, kamikaze/lua/, kamikaze/service.py, kamikaze/cli.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kamikaze.package import index_entry
from kamikaze.queue import Queue
from kamikaze.settings import Settings
from kamikaze.sweep import Sweeper
from tests.integration.processes import kamikaze_env

SECONDS = float(os.environ.get("KAMIKAZE_STRESS_SECONDS", "5"))
PUSHERS = 8
REMOVERS = 2
SERVICES = 3
VICTIMS = 40  # payloads victim-0 .. victim-39: pushed by pushers, removed by removers
LONG_TTL = 3600.0
SHORT_TTL = (0.05, 2.0)  # short-lived packages expire during (or just after) the run
CATCH_UP = 20.0  # seconds the services get to settle on the final top
CLOCK_SLACK = 0.002  # seconds: member expire times are rounded to microseconds

WORKER = textwrap.dedent(
    """
    import asyncio, json, random, sys, time

    from kamikaze.queue import Queue
    from kamikaze.settings import Settings

    role, worker, seconds, url, key, out_path = sys.argv[1:7]
    worker, seconds = int(worker), float(seconds)
    VICTIMS, LONG_TTL, SHORT_MIN, SHORT_MAX = {victims}, {long_ttl}, {short_min}, {short_max}
    rng = random.Random(1000 * worker + (role == "remove"))


    def priority(urgent=False):
        # integers give many ties (ordered by member); urgent short-lived
        # packages keep changing the top as they come and expire
        roll = rng.random()
        if urgent and roll < 0.3:
            return -time.time()  # more urgent than every package before it
        if urgent and roll < 0.5:
            return rng.uniform(-1000.0, -900.0)
        if roll < 0.4:
            return float(rng.randint(0, 30))
        return rng.uniform(-100.0, 100.0)


    async def push(queue, out, deadline):
        n = 0

        def unique(prefix, ttl):
            nonlocal n
            n += 1
            return (f"{{prefix}}{{worker}}-{{n}}", ttl, priority(urgent=prefix == "s"))

        while time.monotonic() < deadline:
            roll = rng.random()
            if roll < 0.55:
                items = [unique("p", LONG_TTL)]
            elif roll < 0.75:
                items = [unique("s", rng.uniform(SHORT_MIN, SHORT_MAX))]
            elif roll < 0.9:
                items = [(f"victim-{{rng.randrange(VICTIMS)}}", LONG_TTL, priority())]
            else:
                items = [
                    unique("p", LONG_TTL) if rng.random() < 0.7
                    else unique("s", rng.uniform(SHORT_MIN, SHORT_MAX))
                    for _ in range(rng.randint(2, 8))
                ]
            if len(items) == 1:
                packages = [await queue.push(*items[0])]
            else:
                packages = await queue.push_many(items)
            for (payload, ttl, _), package in zip(items, packages, strict=True):
                record = {{
                    "payload": payload,
                    "member": package.raw_entry,
                    "score": package.score,
                    "expire_time": package.expire_time,
                    "ttl": ttl,
                }}
                out.write(json.dumps(record) + "\\n")
            await asyncio.sleep(rng.uniform(0, 0.002))


    async def remove(queue, out, deadline):
        while time.monotonic() < deadline:
            if rng.random() < 0.05:
                payload = f"ghost-{{rng.randrange(VICTIMS)}}"  # never pushed
            else:
                payload = f"victim-{{rng.randrange(VICTIMS)}}"
            before = await queue.server_time()
            removed = await queue.remove(payload)
            after = await queue.server_time()
            record = {{"payload": payload, "removed": removed, "before": before, "after": after}}
            out.write(json.dumps(record) + "\\n")
            await asyncio.sleep(rng.uniform(0, 0.003))


    async def main():
        settings = Settings(redis_url=url, key=key)
        async with settings.client() as redis:
            queue = Queue(redis, key)
            with open(out_path, "w", encoding="utf-8") as out:
                deadline = time.monotonic() + seconds
                await (push if role == "push" else remove)(queue, out, deadline)
                out.write(json.dumps({{"done": True}}) + "\\n")


    asyncio.run(main())
    """
).format(victims=VICTIMS, long_ttl=LONG_TTL, short_min=SHORT_TTL[0], short_max=SHORT_TTL[1])

CONSUMER = textwrap.dedent(
    """
    import json, os


    def record(package):
        if package is None:
            entry = None
        else:
            entry = {"payload": package.payload, "member": package.raw_entry,
                     "score": package.score}
        with open(os.environ["STRESS_CALLS_FILE"], "a", encoding="utf-8") as calls:
            calls.write(json.dumps(entry) + "\\n")
    """
)


@dataclass
class Worker:
    role: str
    number: int
    out: Path
    process: subprocess.Popen[bytes]


@dataclass
class ServiceProcess:
    """`kamikaze service` with its output in a log file (kept for a post-mortem)."""

    calls: Path
    log: Path
    process: subprocess.Popen[bytes]

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"{self.log.name}:\n" + "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every process the test starts; all are killed at teardown, whatever happened."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def read_lines(path: Path) -> list[Any]:
    """The complete JSON lines of a file (a line still being written is left out)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n")[:-1]]


def same_top(call: dict[str, Any] | None, top: Any) -> bool:
    if call is None or top is None:
        return call is None and top is None
    return bool(call["member"] == top.raw_entry and call["score"] == top.score)


def describe(call: dict[str, Any] | None) -> str:
    return "None" if call is None else f"{call['member']!r}@{call['score']}"


@dataclass
class Snapshot:
    """The queue and its payload index, read in one MULTI/EXEC: consistent."""

    members: dict[str, float]
    index: dict[bytes, float]

    def check_indexes(self) -> None:
        """One payload-index entry per member of the queue (docs/data.rst),
        and nothing else."""
        assert len(self.members) == len(self.index), (len(self.members), len(self.index))
        assert set(self.index) == {index_entry(member) for member in self.members}
        assert set(self.index.values()) <= {0.0}


async def snapshot(queue: Queue) -> Snapshot:
    async with queue.redis.pipeline(transaction=True) as pipe:
        pipe.zrange(queue.key, 0, -1, withscores=True)
        pipe.zrange(queue.index_key, 0, -1, withscores=True)
        pipe.zcard(queue.key)
        pipe.zcard(queue.index_key)
        members, index, *sizes = await pipe.execute()
    assert sizes == [len(members), len(index)]
    return Snapshot({m.decode(): s for m, s in members}, dict(index))


@pytest.mark.timeout(SECONDS + 180)
async def test_stress_pushers_removers_and_services_on_one_queue(
    settings: Settings, queue: Queue, tmp_path: Path, started: list[Any]
) -> None:
    assert settings.redis_url
    (tmp_path / "stress_worker.py").write_text(WORKER)
    (tmp_path / "stress_consumer.py").write_text(CONSUMER)

    # The services first: each has called its consumer (with None) before any push.
    services = []
    for i in range(SERVICES):
        calls, log = tmp_path / f"calls-{i}.jsonl", tmp_path / f"service-{i}.log"
        env = kamikaze_env(
            settings.redis_url,
            settings.key,
            {"STRESS_CALLS_FILE": str(calls), "KAMIKAZE_SWEEP_INTERVAL": "0.5"},
        )
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "kamikaze", "service", "stress_consumer.record"],
                env=env,
                cwd=tmp_path,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        services.append(ServiceProcess(calls, log, process))
    call_files = [service.calls for service in services]

    def logs() -> str:
        return "\n".join(service.tail() for service in services)

    deadline = time.monotonic() + 30
    while not all(read_lines(path) for path in call_files):
        assert time.monotonic() < deadline, logs()
        assert all(s.process.poll() is None for s in services), logs()
        await asyncio.sleep(0.05)
    assert all(read_lines(path) == [None] for path in call_files)

    workers = []
    for role, count in (("push", PUSHERS), ("remove", REMOVERS)):
        for number in range(count):
            out = tmp_path / f"{role}-{number}.jsonl"
            args = [role, str(number), str(SECONDS), settings.redis_url, settings.key, str(out)]
            process = subprocess.Popen(
                [sys.executable, "stress_worker.py", *args],
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            started.append(process)
            workers.append(Worker(role, number, out, process))
    run_started = time.monotonic()
    for worker in workers:
        remaining = SECONDS + 60 - (time.monotonic() - run_started)
        try:
            code = await asyncio.to_thread(worker.process.wait, max(remaining, 0.1))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{worker.role}er {worker.number} still running after {SECONDS + 60} s")
        assert worker.process.stderr is not None
        stderr = worker.process.stderr.read().decode(errors="replace")
        assert code == 0, f"{worker.role}er {worker.number} exited {code}: {stderr}"
    assert all(s.process.poll() is None for s in services), logs()

    # What the workers did.
    pushes: list[dict[str, Any]] = []
    removes: list[dict[str, Any]] = []
    for worker in workers:
        lines = read_lines(worker.out)
        assert lines and lines[-1] == {"done": True}, f"{worker.out} is incomplete"
        (pushes if worker.role == "push" else removes).extend(lines[:-1])
    assert pushes and removes
    pushed_members: dict[str, dict[str, Any]] = {}
    pushes_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in pushes:
        assert record["member"].partition(":")[2] == record["payload"], record
        pushes_of[record["payload"]].append(record)
        pushed_members.setdefault(record["member"], record)
    removed_of: Counter[str] = Counter()
    for record in removes:
        removed_of[record["payload"]] += record["removed"]
        if record["payload"].startswith("ghost-"):
            assert record["removed"] == 0, record
    unique = [r for r in pushes if not r["payload"].startswith("victim-")]
    assert len({r["payload"] for r in unique}) == len(unique), "a pusher reused a payload"
    long_lived = {r["member"]: r["score"] for r in unique if r["ttl"] == LONG_TTL}
    short_lived = {r["member"]: r for r in unique if r["ttl"] != LONG_TTL}

    # Right after the run: every member was pushed (with its score), every
    # long-lived unique package is there exactly once, and every short-lived
    # one is there unless it has expired.
    before = await queue.server_time()
    state = await snapshot(queue)
    after = await queue.server_time()
    members = state.members
    for member, score in members.items():
        assert member in pushed_members, f"{member!r} was never pushed"
        assert score == pushed_members[member]["score"], member
    missing = [m for m in long_lived if m not in members]
    assert not missing, f"{len(missing)} long-lived packages lost, e.g. {missing[:5]}"
    for member, record in short_lived.items():
        if record["expire_time"] > after + CLOCK_SLACK:
            assert member in members, f"live short-lived {member!r} lost (now {before})"
    payload_counts = Counter(m.partition(":")[2] for m in members)
    duplicated = {p: n for p, n in payload_counts.items() if n > len(pushes_of[p])}
    assert not duplicated, f"more members than pushes: {duplicated}"
    state.check_indexes()

    # Victims: every push of a victim payload is in the queue or was removed,
    # exactly once (remove counts add up), and the ordering agrees with the
    # server's clock: a member pushed before a remove of its payload started
    # is gone; one still there was pushed after every such remove started.
    # (Server time of a push = its expire time - TTL.)
    for k in range(VICTIMS):
        payload = f"victim-{k}"
        records = pushes_of.get(payload, [])
        present = [m for m in members if m.partition(":")[2] == payload]
        distinct = {r["member"] for r in records}
        if len(distinct) == len(records):
            assert len(records) == removed_of[payload] + len(present), (
                payload,
                len(records),
                removed_of[payload],
                len(present),
            )
        else:  # two pushes in the same microsecond wrote one member
            assert removed_of[payload] + len(present) <= len(records), payload
        starts = [r["before"] for r in removes if r["payload"] == payload]
        ends = [r["after"] for r in removes if r["payload"] == payload]
        for record in records:
            pushed_at = record["expire_time"] - LONG_TTL
            if record["member"] in members:
                late = [t for t in starts if t > pushed_at + CLOCK_SLACK]
                assert not late, f"{record['member']!r} survived a remove that started after it"
            else:
                assert any(t > pushed_at - CLOCK_SLACK for t in ends), (
                    f"{record['member']!r} is gone, but no remove of it ended after its push"
                )

    # Once every short-lived package has expired, each service settles on the real top.
    latest_expiry = max((r["expire_time"] for r in short_lived.values()), default=0.0)
    while await queue.server_time() < latest_expiry + 0.1:
        await asyncio.sleep(0.1)
    deadline = time.monotonic() + CATCH_UP
    while True:
        top = await queue.top()
        last_calls = [(read_lines(path) or [None])[-1] for path in call_files]
        if all(same_top(call, top) for call in last_calls):
            break
        if time.monotonic() > deadline:
            pytest.fail(
                f"services did not settle on the top {top!r} in {CATCH_UP} s: "
                f"their last calls were {[describe(c) for c in last_calls]}\n{logs()}"
            )
        await asyncio.sleep(0.05)
    for path in call_files:
        calls = read_lines(path)
        assert len(calls) >= 2, path
        repeats = [i for i in range(1, len(calls)) if calls[i] == calls[i - 1]]
        assert not repeats, f"{path.name}: consecutive duplicate calls at {repeats[:5]}"
        assert all(c is None or c["member"] in pushed_members for c in calls), path.name

    # After a final sweep and read of the top, exactly the expected members
    # remain: the long-lived unique packages and the victims not removed.
    await Sweeper(queue).sweep_once()
    top = await queue.top()
    state = await snapshot(queue)
    final = state.members
    victims_left = {m: s for m, s in members.items() if m.partition(":")[2].startswith("victim-")}
    expected = {**long_lived, **victims_left}
    extra, lost = set(final) - set(expected), set(expected) - set(final)
    assert not extra and not lost, f"extra {sorted(extra)[:5]}, lost {sorted(lost)[:5]}"
    assert final == expected
    state.check_indexes()
    expected_top = min(final.items(), key=lambda entry: (entry[1], entry[0].encode()))
    assert top is not None and (top.raw_entry, top.score) == expected_top
    for path in call_files:
        last = read_lines(path)[-1]
        assert same_top(last, top), f"{path.name} ended with {describe(last)}, not {top!r}"
    for service in services:  # still alive after all that, and they stop cleanly
        assert service.process.poll() is None, logs()
        stopping = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(service.process.wait, 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit 10 s after SIGTERM\n{service.tail()}")
        took = time.monotonic() - stopping
        assert code == 0 and took < 2, (code, took, service.tail())
    print(
        f"stress {SECONDS} s: {len(pushes)} pushes, {len(removes)} removes "
        f"({sum(removed_of.values())} packages removed), {len(final)} left, "
        f"consumer calls per service {[len(read_lines(p)) for p in call_files]}"
    )
