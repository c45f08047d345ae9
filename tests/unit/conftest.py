"""Fixtures of the CLI's unit tests: every client the CLI builds talks to one
in-memory fakeredis server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from kamikaze.settings import Settings


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeServer:
    """Every client the CLI builds talks to one in-memory fakeredis server."""
    server = fakeredis.FakeServer()

    def client(self: Settings) -> Any:
        return fakeredis.FakeAsyncRedis(server=server)

    monkeypatch.setattr(Settings, "client", client)
    return server


@pytest.fixture
def fake(fake_server: fakeredis.FakeServer) -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis(server=fake_server)
    yield client
    client.close()
