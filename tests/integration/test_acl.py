"""ACL users, passwords and unix sockets, against a real redis-server.

Covers: kamikaze/settings.py, kamikaze/connections.py, kamikaze/errors.py, kamikaze/lua/ (as a
least-privilege ACL user)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from kamikaze import Queue, SyncQueue
from tests.integration.least_privilege import (
    SENT_WHEN_IDLE,
    USED_ON_LONG_WALKS,
    acl_rules,
    call_every_queue_method,
    call_every_sync_queue_method,
    check_grants,
    commands_that_talk_to_redis,
    public_names,
    reset,
    run_every_command,
)
from tests.integration.processes import Service, kamikaze_env, run
from tests.servers import RedisServer, server_binaries

PASSWORD = "s3cret-Pa55word"
ADMIN_PASSWORD = "admin-Pa55word"
# Granted for a Redis Cluster; one server does without them.
CLUSTER_ONLY = {"spublish", "ssubscribe"}


@pytest.fixture(scope="module", params=sorted(server_binaries().items()), ids=lambda p: p[0])
def acl_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """One per kind under test: Redis and Valkey word and count refusals differently."""
    _, binary = request.param
    directory = Path(tempfile.mkdtemp(prefix="kamikaze-acl-"))
    socket = ("--unixsocket", str(directory / "redis.sock"), "--unixsocketperm", "700")
    server = RedisServer(binary, extra_args=socket, dir=directory)
    server.start()
    with redis.Redis(port=server.port) as client:
        client.execute_command("ACL", "SETUSER", "kamikaze", *acl_rules("kamikaze", PASSWORD))
        client.config_set("requirepass", ADMIN_PASSWORD)
    yield server
    server.remove()


@pytest.fixture
def admin(acl_server: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis(port=acl_server.port, password=ADMIN_PASSWORD) as client:
        yield client


def user_env(server: RedisServer, password: str = PASSWORD, **extra: str) -> dict[str, str]:
    url = f"redis://kamikaze:{password}@127.0.0.1:{server.port}/0"
    return kamikaze_env(url, "kamikaze", extra)


@pytest.mark.parametrize(
    ("user", "key"), [("default-key", "kamikaze"), ("tagged", "orders{shop}"), ("glob", "jobs[eu]")]
)
async def test_the_readme_user_runs_every_command_and_method(
    acl_server: RedisServer, admin: redis.Redis, services: list[Service], user: str, key: str
) -> None:
    """The README's line, for the queue `key` by its rule for another --key (a key
    with a hash tag of its own, one with glob characters), and nothing more."""
    rules = acl_rules(key, PASSWORD)
    admin.execute_command("ACL", "SETUSER", user, *rules)
    reset([admin])
    url = f"redis://{user}:{PASSWORD}@127.0.0.1:{acl_server.port}/0"
    assert run_every_command(kamikaze_env(url, key), services) == commands_that_talk_to_redis()
    assert await call_every_queue_method(url, key, admin) == public_names(Queue)
    sync = await asyncio.to_thread(call_every_sync_queue_method, url, key)
    assert sync == public_names(SyncQueue)
    check_grants([admin], rules, unused=CLUSTER_ONLY | USED_ON_LONG_WALKS | SENT_WHEN_IDLE)


def test_the_user_cannot_touch_other_keys(acl_server: RedisServer) -> None:
    env = user_env(acl_server, KAMIKAZE_KEY="other")
    result = run("push", "job", "100", "1", env=env)
    assert result.returncode == 1
    # Redis: "... this user has no permissions to access ...", Valkey: "No permissions to ..."
    assert "NOPERM" in result.stderr or "no permissions" in result.stderr.lower()
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["push", "x", "10", "1"], ["list"], ["remove", "x"]])
def test_a_wrong_password_is_exit_1_and_one_line_without_the_password(
    acl_server: RedisServer, command: list[str]
) -> None:
    env = user_env(acl_server, password="wr0ng-Pa55")
    result = run(*command, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: Redis at redis://127.0.0.1:{acl_server.port} refused the credentials: "
        "invalid username-password pair or user is disabled."
    ]
    debug = run("--loglevel", "DEBUG", *command, env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "wr0ng-Pa55" not in debug.stdout + debug.stderr


def test_the_service_with_a_wrong_password_exits_1_without_it(acl_server: RedisServer) -> None:
    env = user_env(acl_server, password="wr0ng-Pa55")
    result = subprocess.run(
        [sys.executable, "-m", "kamikaze", "--loglevel", "DEBUG", "service",
         "example_consumer.consumer.blocking_consumer_func"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "refused the credentials" in result.stderr.splitlines()[-1]
    assert "wr0ng-Pa55" not in result.stdout + result.stderr


def test_the_password_can_come_from_a_file(acl_server: RedisServer, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    url = f"redis://kamikaze@127.0.0.1:{acl_server.port}/0"
    env = kamikaze_env(url, "kamikaze", {"KAMIKAZE_REDIS_PASSWORD_FILE": str(password_file)})
    assert run("push", "from-file", "100", "1", env=env).returncode == 0
    listed = run("list", "--json", env=env)
    assert "from-file" in listed.stdout
    assert run("remove", "from-file", env=env).returncode == 0
    # as an option too, with the host and port options
    env = kamikaze_env("", "kamikaze")
    del env["KAMIKAZE_REDIS_URL"]
    password_file.write_text(ADMIN_PASSWORD + "\n")  # the default user
    result = run(
        "list",
        "--redis-port",
        str(acl_server.port),
        "--redis-host",
        "127.0.0.1",
        "--redis-password-file",
        str(password_file),
        env=env,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "No such file or directory"), ("", "is empty")],
)
def test_a_bad_password_file_is_exit_2(
    acl_server: RedisServer, tmp_path: Path, content: str | None, message: str
) -> None:
    password_file = tmp_path / "password"
    if content is not None:
        password_file.write_text(content)
    url = f"redis://kamikaze@127.0.0.1:{acl_server.port}/0"
    env = kamikaze_env(url, "kamikaze", {"KAMIKAZE_REDIS_PASSWORD_FILE": str(password_file)})
    result = run("push", "x", "10", "1", env=env)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_password_in_the_url_and_a_file_is_exit_2(
    acl_server: RedisServer, tmp_path: Path
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    env = user_env(acl_server, KAMIKAZE_REDIS_PASSWORD_FILE=str(password_file))
    result = run("list", env=env)
    assert result.returncode == 2 and "password is given twice" in result.stderr
    assert PASSWORD not in result.stderr


def test_unix_socket_url(acl_server: RedisServer, services: list[Service]) -> None:
    socket = acl_server.dir / "redis.sock"
    env = kamikaze_env(f"unix://kamikaze:{PASSWORD}@{socket}", "kamikaze")
    service = Service("service", "example_consumer.consumer.blocking_consumer_func", env=env)
    services.append(service)
    service.expect(f"watching kamikaze at {socket}")
    service.expect("Queue is empty")
    assert run("push", "over-unix", "100", "1", env=env).returncode == 0
    service.expect("Consuming 'over-unix'")
    assert "over-unix" in run("list", env=env).stdout
    assert run("remove", "over-unix", env=env).returncode == 0
    service.expect("Queue is empty")


def test_a_command_refused_inside_a_script_is_one_line_without_the_script(
    acl_server: RedisServer, admin: redis.Redis
) -> None:
    """A user without +zadd: the push script's refusal, without its SHA and line."""
    admin.execute_command("ACL", "SETUSER", "nozadd", "on", ">pw", "~*", "&*", "+@all", "-zadd")
    env = kamikaze_env(f"redis://nozadd:pw@127.0.0.1:{acl_server.port}/0", "nozadd-queue")
    result = run("push", "job", "60", "1", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    # Redis: "... can't run this command ...", Valkey: "... no permissions to run the 'zadd' ..."
    assert "can't run this command" in lines[0] or "run the 'zadd' command" in lines[0], lines
    assert "user_script" not in lines[0] and not re.search("[0-9a-f]{40}", lines[0]), lines
    assert admin.exists("nozadd-queue") == 0
