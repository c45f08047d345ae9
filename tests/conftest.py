from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Generator, Iterator

import pytest

from kamikaze.settings import Settings
from tests.servers import RedisServer, missing_servers, server_binaries

_keys = itertools.count()


@pytest.fixture(scope="session", params=sorted(server_binaries().items()), ids=lambda p: p[0])
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """One throwaway server per kind under test, for the whole session."""
    _, binary = request.param
    server = RedisServer(binary).start()
    yield server
    server.remove()


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    """Settings for a queue key no other test uses."""
    return Settings(redis_url=redis_server.url, key=f"test-queue-{next(_keys)}")


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[object]:
    client = settings.client()
    yield client
    await client.aclose()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Generator[None]:
    """After the short test summary: how many tests skipped for want of which server."""
    yield
    reasons = [
        str(report.longrepr[2]).removeprefix("Skipped: ")
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple)
    ]
    line = missing_servers(reasons)
    if line:
        terminalreporter.write_line(line, yellow=True)
