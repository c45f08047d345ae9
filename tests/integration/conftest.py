from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from kamikaze.consumer import Runner
from kamikaze.package import Package
from kamikaze.queue import Queue
from kamikaze.runtime import stop_task
from kamikaze.service import Dispatcher
from kamikaze.settings import Settings
from tests.integration.processes import kamikaze_env
from tests.topologies import Certs, TlsServer, make_certs

_MISSING = object()


@dataclass
class Recorder:
    """A plain consumer that records (wall time, package) for each call."""

    calls: list[tuple[float, Package | None]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, package: Package | None, *args: Any, **kwargs: Any) -> None:
        self.calls.append((time.time(), package))
        self.changed.set()

    @property
    def payloads(self) -> list[str | None]:
        return [None if p is None else p.payload for _, p in self.calls]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[str | None]:
        """Wait until at least `count` calls were made; return the payloads."""
        async with asyncio.timeout(timeout):
            while len(self.calls) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.payloads

    async def quiet_for(self, seconds: float = 0.2) -> list[str | None]:
        """Let the service react to something that must NOT call the consumer."""
        await asyncio.sleep(seconds)
        return self.payloads


@dataclass
class RunningService:
    queue: Queue
    recorder: Recorder
    task: asyncio.Task[None]


async def start_watcher(
    settings: Settings,
    consumer: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
) -> tuple[Runner, asyncio.Task[None]]:
    runner = Runner(consumer, args, kwargs)
    task = asyncio.create_task(Dispatcher(settings, runner).run())
    return runner, task


async def stop(task: asyncio.Task[None], runner: Runner | None = None) -> None:
    assert await stop_task(task, 5), "the watcher did not stop within 5 s"
    if runner is not None:
        await runner.cancel()


@pytest.fixture
async def queue(redis: Any, settings: Settings) -> Queue:
    return Queue(redis, settings.key)


@pytest.fixture
async def service(settings: Settings, queue: Queue) -> AsyncIterator[RunningService]:
    """The watcher with a recording consumer, running in this event loop."""
    recorder = Recorder()
    runner, task = await start_watcher(settings, recorder)
    await recorder.wait_for(1)  # started: called once, with None
    yield RunningService(queue, recorder, task)
    await stop(task, runner)


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """The environment of a `kamikaze` subprocess aimed at this test's queue."""
    assert settings.redis_url
    return kamikaze_env(settings.redis_url, settings.key)


# TLS: certificates made for the module, and servers that use them (tests/topologies.py).
@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_server(certs: Certs) -> Iterator[TlsServer]:
    with TlsServer(certs=certs) as server:
        yield server


@pytest.fixture(scope="module")
def mutual_tls_server(certs: Certs) -> Iterator[TlsServer]:
    with TlsServer(certs=certs, require_client_cert=True) as server:
        yield server
