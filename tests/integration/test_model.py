"""Model-based test (issue 5): hypothesis drives push / push_many / remove /
wait sequences against a real Redis and a plain-Python model of the queue,
with a Dispatcher following the same queue in the background.

After every step: Queue.top() is the model's live top, Queue.packages() the
model's live packages in order, and once the dispatcher has caught up with the
real top its consumer calls have no consecutive duplicates and end with the
model's top.

Covers: kamikaze/queue.py, kamikaze/lua/, kamikaze/service.py."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from kamikaze.consumer import Runner
from kamikaze.package import Package
from kamikaze.queue import Queue
from kamikaze.runtime import stop_task
from kamikaze.service import Dispatcher
from kamikaze.settings import Settings
from tests.servers import RedisServer

T = TypeVar("T")

CATCH_UP = 2.0  # seconds the dispatcher gets to deliver the real top after a step
_keys = itertools.count()

# A few payloads, so that pushes repeat them and removes hit several members;
# colons, NUL (the payload index's separator: "a" must not remove "a\0b"),
# newlines and non-ASCII included.
payloads = st.sampled_from(["a", "a\x00b", "b:c", ":", "é ü", "x\ny"])
# None never expires (pushing it twice updates one member); real short TTLs expire.
ttls = st.one_of(st.none(), st.floats(0.05, 0.3), st.just(60.0))
# Few distinct priorities, so ties (ordered by member bytes) are common.
priorities = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0, -1.0]),
    st.floats(-5, 5, allow_nan=False, allow_infinity=False),
)

Entry = tuple[str, float]  # (member, score)


class BackgroundLoop:
    """An event loop running in its own thread: the dispatcher keeps running
    between hypothesis steps, which call into the loop and wait."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def background_loop() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


def order(entry: Entry) -> tuple[float, bytes]:
    """Redis's order of a sorted set: by score, ties by member bytes."""
    member, score = entry
    return score, member.encode("utf-8", "surrogateescape")


def entry_of(package: Package | None) -> Entry | None:
    return None if package is None else (package.raw_entry, package.score)


class QueueMachine(RuleBasedStateMachine):
    """The state: the model's members (member -> score, expire time), in a
    fresh queue key per example; liveness is judged by the server's clock."""

    url: str
    loop: BackgroundLoop

    def __init__(self) -> None:
        super().__init__()
        self.settings = Settings(redis_url=self.url, key=f"model-{next(_keys)}")
        self.client = self.settings.client()
        self.queue = Queue(self.client, self.settings.key)
        self.model: dict[str, tuple[float, float | None]] = {}
        self.calls: list[Package | None] = []  # appended in the loop's thread
        self.runner = Runner(self.calls.append)
        self.watcher = self.loop.run(self._start_watcher())
        deadline = time.monotonic() + CATCH_UP
        while not self.calls:
            assert time.monotonic() < deadline, "the dispatcher made no first call"
            time.sleep(0.005)
        assert self.calls == [None]

    async def _start_watcher(self) -> asyncio.Task[None]:
        return asyncio.create_task(Dispatcher(self.settings, self.runner).run())

    def teardown(self) -> None:
        async def stop() -> None:
            assert await stop_task(self.watcher, 5), "the dispatcher did not stop"
            await self.runner.cancel()
            await self.client.delete(self.queue.key, self.queue.index_key)
            await self.client.aclose()

        self.loop.run(stop())

    # The model.

    def live(self, now: float) -> list[Entry]:
        """The model's live packages at server time `now`, top first."""
        entries = [
            (member, score)
            for member, (score, expire_time) in self.model.items()
            if expire_time is None or expire_time > now
        ]
        return sorted(entries, key=order)

    def top_at(self, now: float) -> Entry | None:
        live = self.live(now)
        return live[0] if live else None

    def server_time(self) -> float:
        return self.loop.run(self.queue.server_time())

    def record(self, packages: list[Package]) -> None:
        for package in packages:
            self.model[package.raw_entry] = (package.score, package.expire_time)

    # The rules.

    @rule(payload=payloads, ttl=ttls, priority=priorities)
    def push(self, payload: str, ttl: float | None, priority: float) -> None:
        package = self.loop.run(self.queue.push(payload, ttl, priority))
        assert package.payload == payload and package.score == priority
        assert (package.expire_time is None) == (ttl is None)
        self.record([package])

    @rule(items=st.lists(st.tuples(payloads, ttls, priorities), min_size=1, max_size=4))
    def push_many(self, items: list[tuple[str, float | None, float]]) -> None:
        packages = self.loop.run(self.queue.push_many(items))
        assert [p.payload for p in packages] == [payload for payload, _, _ in items]
        self.record(packages)  # in order: a member written twice keeps the last score

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove_pushed(self, data: st.DataObject) -> None:
        payload = data.draw(
            st.sampled_from(sorted({m.partition(":")[2] for m in self.model})), label="payload"
        )
        self.remove(payload)

    @rule(payload=payloads)
    def remove(self, payload: str) -> None:
        """Removes every member of the payload; expired ones not yet deleted
        count too, so the count lies between the live and all the model's."""
        mine = [m for m in self.model if m.partition(":")[2] == payload]
        removed = self.loop.run(self.queue.remove(payload))
        after = self.server_time()
        surely_there = [m for m in mine if m in dict(self.live(after))]
        assert len(surely_there) <= removed <= len(mine), (payload, removed, mine)
        for member in mine:
            del self.model[member]

    @rule(seconds=st.sampled_from([0.02, 0.05, 0.1, 0.2, 0.35]))
    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    # The invariants, checked after every step.

    @invariant()
    def top_and_packages_match_the_model(self) -> None:
        reading = self.loop.run(self.queue.read_top())
        assert entry_of(reading.top) == self.top_at(reading.server_time)

        # packages() filters by a clock read before its ZRANGE, and a package
        # expiring meanwhile may be deleted by the dispatcher: it lists the
        # model's live packages at some moment between `before` and `after`.
        before = self.server_time()
        listed = [(p.raw_entry, p.score) for p in self.loop.run(self.queue.packages())]
        after = self.server_time()
        may, must = self.live(before), self.live(after)
        assert set(must) <= set(listed) <= set(may), (listed, may, must)
        assert listed == [entry for entry in may if entry in set(listed)], (listed, may)

    @invariant()
    def the_watcher_follows_the_model(self) -> None:
        deadline = time.monotonic() + CATCH_UP
        while True:
            reading = self.loop.run(self.queue.read_top())
            calls = list(self.calls)
            if entry_of(calls[-1]) == entry_of(reading.top):
                break
            assert time.monotonic() < deadline, (
                f"the dispatcher's last call is {calls[-1]!r}, the top {reading.top!r}"
            )
            time.sleep(0.005)
        entries = [entry_of(call) for call in calls]
        repeats = [i for i in range(1, len(entries)) if entries[i] == entries[i - 1]]
        assert not repeats, f"consecutive duplicate calls: {entries}"
        assert entries[-1] == self.top_at(reading.server_time)


@pytest.mark.timeout(120)
def test_queue_and_watcher_follow_the_model(
    redis_server: RedisServer, background_loop: BackgroundLoop
) -> None:
    machine = type(
        "QueueModel", (QueueMachine,), {"url": redis_server.url, "loop": background_loop}
    )
    run_state_machine_as_test(
        machine,
        settings=hypothesis_settings(
            max_examples=20,
            stateful_step_count=20,
            deadline=None,
            database=None,  # runs depend on real time: nothing worth replaying
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
