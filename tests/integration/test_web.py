"""`kamikaze web` as a process, over HTTP without a browser: the state it
pushes, who may write (token, origin, Host), bad input, Redis lost at start,
fatal credentials, and a clean stop. The page in a browser: tests/browser/.

Covers: kamikaze/web/app.py, kamikaze/web/api.py, kamikaze/web/guard.py,
kamikaze/web/feed.py, kamikaze/web/page.py, kamikaze/web/server.py, kamikaze/cli.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from kamikaze.queue import Queue
from kamikaze.settings import Settings
from tests.integration.processes import Service, kamikaze_env, run
from tests.servers import RedisServer, free_port, server_binaries
from tests.webpage import WebProcess, token_file

pytestmark = pytest.mark.timeout(60)

SERVERS = sorted(server_binaries().items())


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def state(http: aiohttp.ClientSession, web: WebProcess) -> dict[str, Any]:
    async with http.get(web.url + "api/state") as response:
        assert response.status == 200
        result: dict[str, Any] = await response.json()
        return result


async def state_where(
    http: aiohttp.ClientSession, web: WebProcess, check: Any, timeout: float = 5.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = await state(http, web)
        if check(current):
            return current
        assert time.monotonic() < deadline, current
        await asyncio.sleep(0.05)


async def write(
    http: aiohttp.ClientSession, web: WebProcess, path: str, body: Any, **headers: str
) -> tuple[int, dict[str, Any]]:
    async with http.post(web.url + path, json=body, headers=headers) as response:
        return response.status, await response.json()


def payloads(current: dict[str, Any]) -> list[str]:
    return [row["payload"] for row in current["packages"]]


# Reading ----------------------------------------------------------------------------------


async def test_the_state_follows_cli_pushes_and_removes(
    start_web: Any, env: dict[str, str], http: aiohttp.ClientSession
) -> None:
    web = start_web()
    current = await state_where(http, web, lambda s: s["redis"] == "connected")
    assert current["packages"] == [] and current["size"] == 0 and current["writes"] is False
    assert run("push", "later", "60", "5", env=env).returncode == 0
    assert run("push", "now", "60", "1", env=env).returncode == 0
    current = await state_where(http, web, lambda s: payloads(s) == ["now", "later"])
    assert current["size"] == 2
    assert [row["priority"] for row in current["packages"]] == ["1.0", "5.0"]
    assert [band["payload"] for band in current["timeline"]["bands"]] == ["later", "now"]
    assert run("remove", "now", env=env).returncode == 0
    await state_where(http, web, lambda s: payloads(s) == ["later"])


async def test_the_state_names_the_active_exclusive_service_and_its_term(
    start_web: Any, env: dict[str, str], http: aiohttp.ClientSession
) -> None:
    """docs/ha.rst: the web page shows which exclusive service is active."""
    web = start_web()
    current = await state_where(http, web, lambda s: s["redis"] == "connected")
    assert current["active"] is None
    service = Service(
        "service", "example_consumer.consumer.blocking_consumer_func", "--exclusive", env=env
    )
    try:
        service.expect("active now, term")
        current = await state_where(http, web, lambda s: s["active"] is not None)
        host, pid = current["active"].split(",")[0].rsplit(":", 1)
        assert int(pid) == service.process.pid and host, current["active"]
        assert re.fullmatch(r".+:\d+, term [1-9]\d*", current["active"])
        assert service.stop(signal.SIGTERM)[0] == 0  # it gives the lease up, and says so
        await state_where(http, web, lambda s: s["active"] is None)
    finally:
        service.kill()


async def test_the_page_and_its_files_carry_a_strict_content_security_policy(
    start_web: Any, http: aiohttp.ClientSession
) -> None:
    web = start_web()
    for path, kind in [("", "text/html"), ("app.js", "text/javascript"), ("style.css", "text/css")]:
        async with http.get(web.url + path) as response:
            assert response.status == 200
            assert response.content_type == kind
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "default-src 'none'" in policy
            assert "frame-ancestors 'none'" in policy
            assert response.headers["X-Content-Type-Options"] == "nosniff"
    async with http.get(web.url + "nosuch") as response:
        assert response.status == 404
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


async def test_a_host_name_rebound_to_loopback_is_refused(
    start_web: Any, http: aiohttp.ClientSession
) -> None:
    web = start_web()
    for path in ("", "api/state", "events"):
        async with http.get(web.url + path, headers={"Host": "rebound.example"}) as response:
            assert response.status == 403
            assert "loopback names only" in (await response.json())["error"]


async def test_an_event_stream_sends_the_state_then_each_change(
    start_web: Any, env: dict[str, str], http: aiohttp.ClientSession
) -> None:
    web = start_web()
    await state_where(http, web, lambda s: s["redis"] == "connected")
    async with http.get(web.url + "events") as response:
        assert response.content_type == "text/event-stream"
        first = await next_event(response)
        assert first["packages"] == []
        assert run("push", "streamed", "60", "1", env=env).returncode == 0
        assert payloads(await next_event(response)) == ["streamed"]


async def next_event(response: aiohttp.ClientResponse) -> dict[str, Any]:
    async with asyncio.timeout(5):
        async for line in response.content:
            if line.startswith(b"data: "):
                result: dict[str, Any] = json.loads(line[6:])
                return result
    raise AssertionError("the stream ended")


# Writing ----------------------------------------------------------------------------------


async def test_read_only_refuses_writes(
    start_web: Any, http: aiohttp.ClientSession, settings: Settings, redis: Any
) -> None:
    web = start_web()
    status, reply = await write(http, web, "api/push", {"payload": "x", "ttl": 60, "priority": 1})
    assert status == 403 and "--allow-writes" in reply["error"]
    status, _ = await write(http, web, "api/remove", {"payload": "x"})
    assert status == 403
    assert await Queue(redis, settings.key).packages() == []


async def test_writes_need_the_token_and_the_pages_own_origin(
    start_web: Any, tmp_path: Path, http: aiohttp.ClientSession, settings: Settings, redis: Any
) -> None:
    path, token = token_file(tmp_path)
    web = start_web("--allow-writes", "--token-file", str(path))
    body = {"payload": "x", "ttl": 60, "priority": 1}
    origin = web.url.rstrip("/")
    refused = [
        {},
        {"X-Kamikaze-Token": token[:-1] + "?"},
        {"X-Kamikaze-Token": token, "Origin": "http://evil.example"},
        {"X-Kamikaze-Token": token, "Sec-Fetch-Site": "cross-site"},
        {"Cookie": f"token={token}"},
    ]
    for headers in refused:
        status, reply = await write(http, web, "api/push", body, **headers)
        assert status == 403, (headers, reply)
    assert await Queue(redis, settings.key).packages() == []
    assert "refused a write from" in web.expect("refused a write from")

    status, reply = await write(http, web, "api/push", body, **{"X-Kamikaze-Token": token})
    assert status == 200, reply
    assert reply["pushed"]["payload"] == "x" and reply["pushed"]["priority"] == "1.0"
    headers = {"X-Kamikaze-Token": token, "Origin": origin, "Sec-Fetch-Site": "same-origin"}
    status, reply = await write(http, web, "api/push", {**body, "payload": "y"}, **headers)
    assert status == 200, reply
    assert sorted(p.payload for p in await Queue(redis, settings.key).packages()) == ["x", "y"]
    assert "pushed 'y' (TTL 60 s, priority 1)" in web.expect("pushed 'y'")

    status, reply = await write(http, web, "api/remove", {"payload": "x"}, **headers)
    assert (status, reply) == (200, {"removed": 1})
    assert [p.payload for p in await Queue(redis, settings.key).packages()] == ["y"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"ttl": 60, "priority": 1}, "payload: a string is needed"),
        ({"payload": "p", "ttl": "abc", "priority": 1}, "ttl: 'abc' is not a number"),
        ({"payload": "p", "ttl": 0, "priority": 1}, "ttl: '0' must be greater than 0"),
        ({"payload": "p", "ttl": "inf", "priority": 1}, "ttl: 'inf' is not a finite number"),
        ({"payload": "p", "ttl": 1e12, "priority": 1}, "past 9999-12-31T23:59:59"),
        ({"payload": "p", "ttl": 60, "priority": "nan"}, "priority: 'nan' is not a finite"),
        ({"payload": "p", "ttl": 60, "priority": True}, "priority: 'True' is not a number"),
        ({"payload": "\ud800", "ttl": 60, "priority": 1}, "payload: not valid text"),
        (["p", 60, 1], "send a JSON object"),
    ],
    ids=[
        "no-payload",
        "ttl-text",
        "ttl-zero",
        "ttl-inf",
        "ttl-huge",
        "nan",
        "bool",
        "surr",
        "list",
    ],
)
async def test_bad_input_is_400_naming_the_field_and_writes_nothing(
    start_web: Any,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    settings: Settings,
    redis: Any,
    body: Any,
    says: str,
) -> None:
    path, token = token_file(tmp_path)
    web = start_web("--allow-writes", "--token-file", str(path))
    status, reply = await write(http, web, "api/push", body, **{"X-Kamikaze-Token": token})
    assert status == 400 and says in reply["error"], reply
    assert await Queue(redis, settings.key).packages() == []


async def test_a_form_post_without_json_is_refused(
    start_web: Any, tmp_path: Path, http: aiohttp.ClientSession, settings: Settings, redis: Any
) -> None:
    path, token = token_file(tmp_path)
    web = start_web("--allow-writes", "--token-file", str(path))
    form = {"payload": "x", "ttl": "60", "priority": "1"}
    headers = {"X-Kamikaze-Token": token}
    async with http.post(web.url + "api/push", data=form, headers=headers) as response:
        assert response.status == 400
        assert "Content-Type: application/json" in (await response.json())["error"]
    assert await Queue(redis, settings.key).packages() == []


# Redis lost, credentials refused, stopping ------------------------------------------------


@pytest.mark.parametrize("binary", [path for _, path in SERVERS], ids=[n for n, _ in SERVERS])
async def test_started_before_redis_it_serves_and_connects_when_redis_comes(
    binary: str, start_web: Any, http: aiohttp.ClientSession
) -> None:
    server = RedisServer(binary, port=free_port())
    try:
        web = start_web(environment=kamikaze_env(server.url, "web-late"))
        current = await state_where(http, web, lambda s: s["redis"] == "lost")
        assert "Connection refused" in current["reason"]
        assert current["lost_since"] is not None
        web.expect("lost Redis at")
        server.start()
        await state_where(http, web, lambda s: s["redis"] == "connected", timeout=10)
        web.expect("reconnected to Redis at")
    finally:
        server.remove()


@pytest.mark.parametrize("binary", [path for _, path in SERVERS], ids=[n for n, _ in SERVERS])
def test_wrong_credentials_are_exit_1_with_one_line(binary: str) -> None:
    server = RedisServer(binary).start()
    try:
        with redis.Redis(port=server.port) as admin:
            admin.config_set("requirepass", "right-password")
        url = f"redis://:wrong-password@127.0.0.1:{server.port}/0"
        result = run("web", "--port", "0", env=kamikaze_env(url, "web-auth"), timeout=30)
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.strip().splitlines()[-1:]
        assert line.startswith(
            f"Error: Redis at redis://127.0.0.1:{server.port} refused the credentials"
        )
        assert "wrong-password" not in result.stderr and "Traceback" not in result.stderr
    finally:
        server.remove()


async def test_sigterm_stops_it_within_2_s_with_streams_open(
    start_web: Any, http: aiohttp.ClientSession
) -> None:
    web = start_web()
    await state_where(http, web, lambda s: s["redis"] == "connected")
    async with http.get(web.url + "events") as response:
        await next_event(response)
        code, took = await asyncio.to_thread(web.stop, signal.SIGTERM)
    assert code == 0
    assert took < 2.0
    assert any("received SIGTERM, shutting down" in line for line in web.all_lines())
