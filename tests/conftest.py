from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from kamikaze.settings import Settings
from tests.servers import RedisServer, server_binaries

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
