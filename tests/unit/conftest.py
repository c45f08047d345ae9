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


@pytest.fixture(autouse=True)
def lua_sha1hex(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis and Valkey give scripts redis.sha1hex (lua/common.lua's digest uses
    it); fakeredis's Lua does not: add it, with Python's SHA1."""
    import hashlib

    from fakeredis.commands_mixins.scripting_mixin import ScriptingCommandsMixin

    made = ScriptingCommandsMixin._get_server_runtime

    def with_sha1hex(self: Any, server: Any) -> Any:
        runtime = made(self, server)
        redis_table = runtime.globals()[b"redis"]  # the runtime's strings are bytes
        if redis_table[b"sha1hex"] is None:
            redis_table[b"sha1hex"] = lambda data: hashlib.sha1(data).hexdigest().encode()
        return runtime

    monkeypatch.setattr(ScriptingCommandsMixin, "_get_server_runtime", with_sha1hex)
