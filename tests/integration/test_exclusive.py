"""Active and standby services (`kamikaze service --exclusive`, docs/ha.rst):
three exclusive services on one queue, each through a proxy of its own, a
consumer that records (pid, term, payload, start, end) of every call it
completes, and pushes throughout while the active one is killed (-9 and
TERM), paused past its lease (SIGSTOP), cut off (its proxy frozen), and Redis
is restarted. In the record: no two calls of different services overlap in
time, terms only grow, and every top that lasted while a service was active
reached a consumer.

Covers: kamikaze/lease.py, kamikaze/lua/lease.lua, kamikaze/service.py
(Dispatcher with a lease), kamikaze/consumer.py (term)."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from kamikaze.keys import QueueKeys
from tests.integration.processes import Service, kamikaze_env
from tests.proxy import Proxy
from tests.servers import RedisServer, own_server_binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
KEY = "exclusive"
LEASE = 0.8
CONSUMER = """
import asyncio, fcntl, os, time
import kamikaze

RECORD = os.environ["RECORD"]


def fenced(term, line=None):
    # The record is the consumer's side effect, kept as a user's store would
    # keep one (docs/ha.rst, the fencing token): it takes the highest term it
    # has seen, and refuses a call of a lower one. Only a process paused
    # between two awaits can still reach it after its term.
    with open(RECORD + ".fence", "a+") as fence:
        fcntl.flock(fence, fcntl.LOCK_EX)
        fence.seek(0)
        highest = int(fence.read() or 0)
        if term < highest:
            with open(RECORD + ".refused", "a") as refused:
                refused.write(f"{os.getpid()} {term} {highest}\\n")
            return False
        fence.seek(0)
        fence.truncate()
        fence.write(str(term))
        if line is not None:
            with open(RECORD, "a") as record:
                record.write(line + "\\n")
        return True


async def record(package):
    start = time.time()
    if not fenced(kamikaze.term()):
        return
    await asyncio.sleep(0.02)  # some work: a call cut short records nothing
    payload = package.payload if package else "-"
    fenced(kamikaze.term(), f"{os.getpid()} {kamikaze.term()} {payload} {start} {time.time()}")
"""


@dataclass
class Call:
    pid: int
    term: int
    payload: str
    start: float
    end: float


@dataclass
class Fleet:
    """Three exclusive services, a proxy each, and what their consumer recorded."""

    server: RedisServer
    workdir: Path
    record: Path
    proxies: list[Proxy] = field(default_factory=list)
    services: list[Service | None] = field(default_factory=list)

    def start(self, slot: int) -> None:
        env = kamikaze_env(self.proxies[slot].url, KEY, {"RECORD": str(self.record)})
        env["KAMIKAZE_METRICS_PORT"] = "0"
        service = Service(
            "service", "consumer.record", "--exclusive", "--lease", str(LEASE),
            env=env, cwd=self.workdir,
        )  # fmt: skip
        service.expect("watching")
        self.services[slot] = service

    def active_slot(self, timeout: float = 5.0) -> int:
        """The slot of the service that holds the lease now."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with redis.Redis(port=self.server.port) as admin:
                held = admin.get(QueueKeys(KEY).lease)
            if held:
                pid = int(held.decode().split()[1].split(":")[1])
                for slot, service in enumerate(self.services):
                    if service is not None and service.process.pid == pid:
                        return slot
            time.sleep(0.02)
        raise AssertionError("no service holds the lease")

    def calls(self) -> list[Call]:
        if not self.record.exists():
            return []
        found = []
        for line in self.record.read_text().splitlines():
            pid, term, payload, start, end = line.split()
            found.append(Call(int(pid), int(term), payload, float(start), float(end)))
        return sorted(found, key=lambda call: call.start)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    server = RedisServer(own_server_binary()).start()
    (tmp_path / "consumer.py").write_text(CONSUMER)
    made = Fleet(server, tmp_path, tmp_path / "record")
    made.proxies = [Proxy(server.port) for _ in range(3)]
    made.services = [None, None, None]
    try:
        for slot in range(3):
            made.start(slot)
        yield made
    finally:
        for service in made.services:
            if service is not None:
                if service.process.poll() is None:
                    service.process.send_signal(signal.SIGCONT)
                service.kill()
        for proxy in made.proxies:
            proxy.close()
        server.remove()


class Pusher:
    """A new top every 0.25 s, and now and then a remove of the top, until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.tops: list[tuple[str, float]] = []  # (payload, when it became the top)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from kamikaze import SyncQueue

        i = 0
        pushed: list[str] = []
        while not self.stopped.is_set():
            try:
                with SyncQueue(f"redis://127.0.0.1:{self.port}/0", KEY) as queue:
                    while not self.stopped.wait(0.25):
                        i += 1
                        if i % 5 == 0 and len(pushed) > 1:  # the top goes: the one before is back
                            queue.remove(pushed.pop())
                        else:
                            pushed.append(f"top-{i}")
                            queue.push(pushed[-1], 600, 10**6 - i)
                        self.tops.append((pushed[-1], time.time()))
            except Exception:  # Redis restarting (and the queue gone with its data): go on
                pushed.clear()
                self.stopped.wait(0.1)

    def __enter__(self) -> Pusher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)


def wait_for_new_term(fleet: Fleet, after: int, timeout: float = 10.0) -> float:
    """When the first call of a term above `after` was made."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        newer = [call for call in fleet.calls() if call.term > after]
        if newer:
            return newer[0].start
        time.sleep(0.05)
    raise AssertionError(f"no call with a term above {after} within {timeout} s")


def test_one_active_at_a_time_through_every_fault(fleet: Fleet) -> None:
    disturbed: list[tuple[float, float]] = []  # (from, until): no service active meanwhile
    paused: list[int] = []

    def term_now() -> int:
        calls = fleet.calls()
        return calls[-1].term if calls else 0

    def disturb(what: str) -> None:
        slot = fleet.active_slot()
        service = fleet.services[slot]
        assert service is not None
        before, started = term_now(), time.time()
        if what == "kill":
            service.kill()
        elif what == "term":
            assert service.stop(signal.SIGTERM)[0] == 0
        elif what == "pause":
            paused.append(service.process.pid)
            service.process.send_signal(signal.SIGSTOP)
            time.sleep(LEASE * 2.5)
            service.process.send_signal(signal.SIGCONT)
        elif what == "cut":
            fleet.proxies[slot].freeze()
            time.sleep(LEASE * 2.5)
            fleet.proxies[slot].thaw()
        elif what == "restart":
            fleet.server.stop()
            fleet.server.start()
        disturbed.append((started, wait_for_new_term(fleet, before) + 0.05))
        if what in ("kill", "term"):
            fleet.start(slot)  # three services again

    with Pusher(fleet.server.port) as pusher:
        time.sleep(1.5)
        for what in ("kill", "term", "pause", "cut", "restart", "kill"):
            disturb(what)
            time.sleep(1.5)
    time.sleep(0.5)
    check_record(fleet.calls(), pusher, disturbed)
    check_refusals(fleet, paused)


def check_refusals(fleet: Fleet, paused: list[int]) -> None:
    """The fence refused only the call a paused process was in, if any: a
    service that calls its consumer after a newer term began is a failure."""
    refusals = fleet.record.with_suffix(".refused")
    refused = refusals.read_text().splitlines() if refusals.exists() else []
    assert len(refused) <= len(paused), refused
    assert all(int(line.split()[0]) in paused for line in refused), (refused, paused)


def check_record(calls: list[Call], pusher: Pusher, disturbed: list[tuple[float, float]]) -> None:
    assert len({call.pid for call in calls}) >= 4, calls  # the activity moved around

    # No two calls of different services overlap in time.
    for i, call in enumerate(calls):
        for other in calls[i + 1 :]:
            if other.start >= call.end:
                break
            assert other.pid == call.pid, f"overlap: {call} and {other}"
    # Terms only grow, and each term is one service's.
    assert [c.term for c in calls] == sorted(c.term for c in calls)
    owners: dict[int, int] = {}
    for call in calls:
        assert owners.setdefault(call.term, call.pid) == call.pid, (call, owners[call.term])
    # Every top that lasted 0.25 s while a service was active reached a consumer.
    delivered = {call.payload for call in calls}
    for (payload, since), (_, until) in zip(pusher.tops, pusher.tops[1:], strict=False):
        quiet = all(until < start or since > end for start, end in disturbed)
        if quiet and until - since > 0.2:
            assert payload in delivered, (payload, since, until, disturbed)


def test_a_standby_takes_over_at_once_when_the_active_one_stops(fleet: Fleet) -> None:
    slot = fleet.active_slot()
    with redis.Redis(port=fleet.server.port) as admin:
        admin.zadd(KEY, {f"{time.time() + 600!r}:waiting": 1})
        admin.publish(KEY, "new_message")
    deadline = time.monotonic() + 5
    while not any(call.payload == "waiting" for call in fleet.calls()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    before = fleet.calls()[-1].term
    service = fleet.services[slot]
    assert service is not None
    stopped_at = time.time()
    service.stop(signal.SIGTERM)
    taken_over = wait_for_new_term(fleet, before)
    assert taken_over - stopped_at < 0.5  # docs/ha.rst: within 100 ms on a quiet machine
    assert fleet.calls()[-1].payload == "waiting"  # called once with the current top


def health(service: Service, timeout: float = 5.0) -> dict[str, object]:
    """The service's /health once it has reached Redis (503 until then)."""
    line = next(line for line in service.lines if "metrics at" in line)
    port = int(line.split("metrics at http://")[1].split("/")[0].rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                found: dict[str, object] = json.loads(response.read())
                return found
        except urllib.error.HTTPError as error:
            assert error.code == 503 and time.monotonic() < deadline, error
            assert json.loads(error.read())["redis"] == "disconnected"
            time.sleep(0.05)


def test_health_says_active_or_standby_with_the_term(fleet: Fleet) -> None:
    active = fleet.active_slot()
    roles = {slot: health(service) for slot, service in enumerate(fleet.services) if service}
    assert roles[active]["role"] == "active" and int(str(roles[active]["term"])) >= 1
    standby = [roles[s] for s in roles if s != active]
    assert all(r["role"] == "standby" and r["term"] == 0 for r in standby), roles


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("lease", {"a": "b"}, "WRONGTYPE {exclusive}:lease is not a string (it is a hash)"),
        ("lease", "no-expiry", "the lease {exclusive}:lease is not ours"),
        ("terms", "many", "the term counter {exclusive}:term is not a number"),
    ],
)
def test_someone_elses_value_under_the_lease_keys_is_refused_once_and_left(
    tmp_path: Path, key: str, value: object, said: str
) -> None:
    """docs/data.rst: never overwritten; one line; standby until it is deleted."""
    server = RedisServer(own_server_binary()).start()
    name = getattr(QueueKeys(KEY), key)
    try:
        with redis.Redis(port=server.port) as admin:
            admin.hset(name, mapping=value) if isinstance(value, dict) else admin.set(name, value)
            env = kamikaze_env(f"redis://127.0.0.1:{server.port}/0", KEY)
            service = Service("service", "example_consumer.consumer.blocking_consumer_func",
                              "--exclusive", "--lease", "0.3", env=env)  # fmt: skip
            try:
                service.expect(said)
                time.sleep(1.5)  # retried meanwhile, with backoff: not said again
                admin.delete(name)
                service.expect("active now, term 1", timeout=10)
                service.expect("Queue is empty")
                assert service.stop(signal.SIGTERM)[0] == 0
            finally:
                service.kill()
            lines = service.all_lines()
            assert sum("cannot take or keep the lease" in line for line in lines) == 1, lines
            assert not any("lost Redis" in line for line in lines), lines  # the follower held
    finally:
        server.remove()


SLOW_CONSUMER = """
import time

def slow(package):
    print(f"called with {package.payload if package else None}", flush=True)
    time.sleep(2.0)  # plain, blocking code: longer than the lease
    print("done", flush=True)
"""


def test_a_plain_consumer_longer_than_the_lease_keeps_it(tmp_path: Path) -> None:
    """docs/ha.rst: a plain consumer runs in a thread, so the lease is renewed
    during a call: before, a call longer than the lease lost it, and each new
    term called the consumer with the same top again, without end."""
    (tmp_path / "slow.py").write_text(SLOW_CONSUMER)
    server = RedisServer(own_server_binary()).start()
    try:
        env = kamikaze_env(f"redis://127.0.0.1:{server.port}/0", KEY)
        with redis.Redis(port=server.port) as admin:
            admin.zadd(KEY, {f"{time.time() + 600!r}:the-top": 1})
        service = Service(
            "service", "slow.slow", "--exclusive", "--lease", "0.3", env=env, cwd=tmp_path
        )
        try:
            service.expect("active now, term 1")
            service.expect("called with the-top")
            service.expect("done", timeout=5)
            time.sleep(1.0)  # a repeat would come now
            assert service.stop(signal.SIGTERM)[0] == 0
        finally:
            service.kill()
        lines = service.all_lines()
        assert sum(line.startswith("called with") for line in lines) == 1, lines
        assert not any("standby now (term 1 ended: its renewal" in line for line in lines), lines
    finally:
        server.remove()
