"""The CLI as a real process against a real Redis: docs/contract.rst §1-§3 end to end,
as `kamikaze` runs (the one-shot commands' fast path, kamikaze.quick, which hands
what it does not take to the full CLI); a few tests also on the full CLI alone.

Covers: kamikaze/quick.py, kamikaze/wire.py, kamikaze/cli.py, kamikaze/options.py,
kamikaze/arguments.py, kamikaze/urls.py, kamikaze/errors.py."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from kamikaze.settings import Settings
from tests.integration.processes import FULL_CLI, Service, kamikaze_env, run
from tests.servers import free_port

# Run on both paths as whole processes; the others once, as `kamikaze` runs them
# (the fast path where it applies). tests/integration/test_two_paths.py holds the
# two paths to the same answer on every case, in-process.
BOTH_PATHS = {
    "test_one_shot_commands_take_the_fast_path_without_redis_py_or_click",
    "test_push_list_remove",
    "test_push_json_lines_from_stdin",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    both = metafunc.function.__name__ in BOTH_PATHS
    metafunc.parametrize("cli_path", ["quick", "full"] if both else ["quick"], indirect=True)


@pytest.fixture(autouse=True)
def cli_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The path one-shot commands take: the fast one where it applies, or the full CLI."""
    if request.param == "full":
        monkeypatch.setenv(FULL_CLI, "1")
    else:
        monkeypatch.delenv(FULL_CLI, raising=False)
    return str(request.param)


@pytest.mark.parametrize(
    ("args", "fast"),
    [
        (["push", "job", "60", "1"], True),
        (["push", "job", "60", "-1.5", "--key", "other"], True),
        (["remove", "job"], True),
        (["list"], True),
        (["list", "--json"], True),
        (["push", "-"], True),
        (["push", "--", "-x", "60", "1"], True),  # a value after '--'
        (["list", "--raw"], True),
        (["clear", "--yes"], True),
        (["--loglevel", "WARNING", "remove", "job"], True),
        (["--loglevel", "DEBUG", "remove", "job"], False),  # its tracebacks are the full CLI's
        (["watch"], False),
    ],
)
def test_one_shot_commands_take_the_fast_path_without_redis_py_or_click(
    env: dict[str, str], args: list[str], fast: bool, cli_path: str
) -> None:
    """The CLI starts once per package: a plain push, remove or list imports
    neither redis-py nor click nor asyncio (docs/performance.rst)."""
    if args == ["watch"]:
        env = {**env, "KAMIKAZE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kamikaze", *args],
        env=env, input="", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    heavy = {"redis", "click", "asyncio"} & imported
    assert heavy == (set() if fast and cli_path == "quick" else heavy | {"click"}), heavy


def test_push_list_remove(env: dict[str, str]) -> None:
    assert run("push", "later", "100", "5", env=env).returncode == 0
    assert run("push", "a:b:c", "100", "1", env=env).returncode == 0
    assert run("push", "negative", "100", "-3", env=env).returncode == 0
    listed = run("list", env=env)
    assert listed.returncode == 0
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [row[1] for row in rows] == ["negative", "a:b:c", "later"]
    assert [row[0] for row in rows] == ["-3.0", "1.0", "5.0"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", row[2]) for row in rows)
    assert all(90 < float(row[3]) <= 100 for row in rows)

    removed = run("remove", "a:b:c", env=env)
    assert removed.returncode == 0
    assert "removed 1 package" in removed.stderr
    payloads = [p["payload"] for p in json.loads(run("list", "--json", env=env).stdout)]
    assert payloads == ["negative", "later"]
    assert run("remove", "nothing-like-it", env=env).returncode == 0


def test_list_json_fields(env: dict[str, str]) -> None:
    run("push", "job", "50", "2.5", env=env)
    (package,) = json.loads(run("list", "--json", env=env).stdout)
    assert package["payload"] == "job" and package["priority"] == 2.5
    assert 49 < package["ttl"] <= 50
    assert abs(package["expire_time"] - time.time() - package["ttl"]) < 1


async def test_a_database_other_than_0_is_selected(
    env: dict[str, str], redis: Any, settings: Settings
) -> None:
    """The database in the URL is the one written, read and removed from
    (SELECT on the fast path's own connection), never database 0."""
    assert settings.redis_url and settings.redis_url.endswith("/0")
    url = settings.redis_url[: -len("0")] + "3"
    env3 = {**env, "KAMIKAZE_REDIS_URL": url}
    for payload in ("in-three", "gone"):
        assert run("push", payload, "60", "1", env=env3).returncode == 0
    assert run("remove", "gone", env=env3).returncode == 0
    listed = run("list", "--json", env=env3)
    assert [p["payload"] for p in json.loads(listed.stdout)] == ["in-three"]
    assert await redis.exists(settings.key) == 0  # nothing in database 0
    from redis.asyncio import Redis

    three = Redis.from_url(url)
    try:
        members = await three.zrange(settings.key, 0, -1)
        assert [member.split(b":", 1)[1] for member in members] == [b"in-three"]
    finally:
        await three.aclose()
    assert run("list", "--json", env=env).stdout.strip() == "[]"


async def test_push_writes_the_zero_one_format_from_the_server_clock(
    env: dict[str, str], redis: Any, settings: Settings
) -> None:
    run("push", "payload", "30", "7", env=env)
    ((member, score),) = await redis.zrange(settings.key, 0, -1, withscores=True)
    assert re.fullmatch(rb"\d+\.\d{6}:payload", member)
    # 0.1.x's own parsing: split at the first colon, float() the rest.
    expire_time, payload = member.decode().split(":", 1)
    seconds, micros = await redis.time()
    assert payload == "payload" and score == 7.0
    assert abs(float(expire_time) - (seconds + micros / 1e6 + 30)) < 2


async def test_zero_one_data_is_listed_and_removed(
    env: dict[str, str], redis: Any, settings: Settings
) -> None:
    now = time.time()
    (
        await redis.zadd(
            settings.key,
            {
                f"{now + 100}:old-five": 5.0,
                f"{now + 100}:old-one": 1.0,
                f"{now - 5}:old-expired": 0.0,
            },
        )
    )
    payloads = [p["payload"] for p in json.loads(run("list", "--json", env=env).stdout)]
    assert payloads == ["old-one", "old-five"]
    run("remove", "old-one", env=env)
    assert (await redis.zrange(settings.key, 0, -1)) == [
        f"{now - 5}:old-expired".encode(),
        f"{now + 100}:old-five".encode(),
    ]


async def test_bad_input_changes_nothing(
    env: dict[str, str], redis: Any, settings: Settings
) -> None:
    for args in (
        ["push", "x", "nan", "1"],
        ["push", "x", "0", "1"],
        ["push", "x", "1", "inf"],
        ["push", "x", "ten", "1"],
    ):
        result = run(*args, env=env)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr
    assert (await redis.exists(settings.key)) == 0


def test_unreachable_redis_is_one_line_and_exit_1() -> None:
    port = free_port()
    env = kamikaze_env(f"redis://127.0.0.1:{port}/0", "k")
    for args in (["push", "x", "1", "1"], ["remove", "x"], ["list"]):
        result = run(*args, env=env)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"Error: cannot connect to Redis at redis://127.0.0.1:{port}: Connection refused"
        ]


def test_service_follows_the_top_and_exits_0_on_sigterm(
    env: dict[str, str], services: list[Service]
) -> None:
    service = Service("service", "example_consumer.consumer.blocking_consumer_func", env=env)
    services.append(service)
    service.expect("Queue is empty")
    run("push", "first", "100", "5", env=env)
    service.expect("Consuming 'first'")
    run("push", "urgent", "100", "1", env=env)
    service.expect("Consuming 'urgent'")
    run("remove", "urgent", env=env)
    service.expect("Consuming 'first'")
    code, took = service.stop(signal.SIGTERM)
    assert code == 0 and took < 2, (code, took)
    assert not any("Traceback" in line for line in service.lines)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_service_cancels_a_running_coroutine_and_exits_0(
    env: dict[str, str], services: list[Service], sig: int
) -> None:
    run("push", "slow", "100", "1", env=env)
    service = Service("service", "example_consumer.consumer.yielding_consumer_func", "30", env=env)
    services.append(service)
    service.expect("'slow': 1/30 s")
    code, took = service.stop(sig)
    assert code == 0 and took < 2, (code, took)


def test_service_imports_the_consumer_from_the_current_directory(
    env: dict[str, str], services: list[Service], tmp_path: Path
) -> None:
    (tmp_path / "my_consumer.py").write_text(
        textwrap.dedent("""
        import json

        def record(package, *args, **kwargs):
            payload = None if package is None else package.payload
            print("CALLED", json.dumps([payload, args, kwargs]), flush=True)
    """)
    )
    service = Service(
        "service",
        "my_consumer.record",
        "3",
        "true",
        '"3"',
        "text",
        "--consumer-function-kwargs",
        '{"k": [1]}',
        env=env,
        cwd=tmp_path,
    )
    services.append(service)
    line = service.expect("CALLED")
    assert json.loads(line.split("CALLED ", 1)[1]) == [None, [3, True, "3", "text"], {"k": [1]}]


@pytest.mark.parametrize(
    "path",
    ["no_such_module.func", "example_consumer.consumer.nope", "example_consumer.consumer.asyncio"],
)
def test_service_with_a_bad_consumer_exits_2(env: dict[str, str], path: str) -> None:
    result = run("service", path, env=env)
    assert result.returncode == 2
    assert path in result.stderr and "Traceback" not in result.stderr


def test_service_keeps_retrying_while_redis_is_unreachable(services: list[Service]) -> None:
    port = free_port()
    env = kamikaze_env(f"redis://127.0.0.1:{port}/0", "k")
    service = Service("service", "example_consumer.consumer.blocking_consumer_func", env=env)
    services.append(service)
    service.expect(f"lost Redis at redis://127.0.0.1:{port}")
    time.sleep(0.5)
    assert service.process.poll() is None
    code, took = service.stop(signal.SIGTERM)
    assert code == 0 and took < 2


async def test_push_json_lines_from_stdin(
    env: dict[str, str], redis: Any, settings: Settings
) -> None:
    lines = "".join(
        json.dumps({"payload": f"job:{i}", "ttl": 100, "priority": i % 7}) + "\n"
        for i in range(2500)
    )
    result = run("push", "-", env=env, stdin=lines)
    assert result.returncode == 0, result.stderr
    assert "pushed 2500 packages" in result.stderr
    listed = json.loads(run("list", "--json", env=env).stdout)
    assert len(listed) == 2500 and listed[0]["priority"] == 0
    assert await redis.zcard(f"{{{settings.key}}}:by-payload") == 2500


async def test_push_json_lines_writes_nothing_of_a_bad_batch(
    env: dict[str, str], redis: Any, settings: Settings
) -> None:
    def good(i: int) -> str:
        return json.dumps({"payload": f"ok-{i}", "ttl": 100, "priority": 1}) + "\n"

    stdin = good(1) + good(2) + good(3) + '{"payload": "bad", "ttl": -1, "priority": 1}\n' + good(5)
    result = run("push", "-", "--batch-size", "2", env=env, stdin=stdin)
    assert result.returncode == 2
    assert "line 4: ttl must be a finite number > 0" in result.stderr
    assert "Traceback" not in result.stderr
    payloads = [p["payload"] for p in json.loads(run("list", "--json", env=env).stdout)]
    assert sorted(payloads) == ["ok-1", "ok-2"]  # the batch of lines 3-4 wrote nothing


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["push", "--embeded", "60", "1"], "Error: No such option"),
        (["remove", "--embeded"], "Error: No such option"),
        (["push", "-", "60", "1"], "Error: '-' alone reads JSON lines from stdin;"),
    ],
)
async def test_a_mistyped_option_or_dash_is_exit_2_and_changes_nothing(
    env: dict[str, str], redis: Any, settings: Settings, args: list[str], error: str
) -> None:
    """docs/commands.rst, push: an argument that starts with '-' is a value only
    if it is a number or follows '--'."""
    assert run("push", "--", "--embeded", "100", "-1", env=env).returncode == 0
    before = await redis.zrange(settings.key, 0, -1, withscores=True)
    stdin = '{"payload": "piped", "ttl": 60, "priority": 1}\n'
    result = run(*args, env=env, stdin=stdin)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(error)
    assert "--embeded" in result.stderr or args[1] == "-"
    assert "Traceback" not in result.stderr
    assert await redis.zrange(settings.key, 0, -1, withscores=True) == before
    assert [member.split(b":", 1)[1] for member, _ in before] == [b"--embeded"]


SECRET = "S3cretPW"


@pytest.mark.parametrize("log_format", ["human", "json"])
def test_the_service_refuses_a_malformed_url_without_showing_the_password(log_format: str) -> None:
    """docs/security.rst. The service's start line and JSON logs once showed such a URL whole."""
    dead = free_port()
    # Had the URL been taken for "no host", --redis-port would be used: a dead one, never 6379.
    env = kamikaze_env(
        f"redis:/:{SECRET}@127.0.0.1:{dead}/0", "k", {"KAMIKAZE_REDIS_PORT": str(dead)}
    )
    args = ["--loglevel", "DEBUG", "--log-format", log_format, "service"]
    result = run(*args, "example_consumer.consumer.blocking_consumer_func", env=env, timeout=15)
    assert result.returncode == 2, result.stderr
    assert "Error: Invalid value for 'KAMIKAZE_REDIS_URL'" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def said(stderr: str) -> list[str]:
    """What an error exit says, without click's usage lines."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith(("Usage: ", "Try '"))
    ]


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("999.1.1.1", "not an IP address"),
        ("192.0.2.1", "not an address of this machine"),
    ],
)
def test_a_metrics_host_that_cannot_be_listened_on_is_exit_2_naming_it(
    host: str, reason: str
) -> None:
    env = kamikaze_env(f"redis://127.0.0.1:{free_port()}/0", "k")
    args = ["--metrics-port", "0", "--metrics-host", host]
    result = run("service", "example_consumer.consumer.blocking_consumer_func", *args, env=env)
    assert result.returncode == 2, result.stderr
    assert said(result.stderr) == [f"Error: Invalid value for '--metrics-host': {host!r}: {reason}"]


def test_a_metrics_port_in_use_is_one_line_naming_host_and_port() -> None:
    env = kamikaze_env(f"redis://127.0.0.1:{free_port()}/0", "k")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["--metrics-port", str(port)]
        result = run("service", "example_consumer.consumer.blocking_consumer_func", *args, env=env)
    assert result.returncode == 1, result.stderr
    assert said(result.stderr) == [
        f"Error: cannot serve metrics on 127.0.0.1:{port}: the port is in use"
    ]


async def test_push_lines_with_invalid_utf8_write_nothing(
    env: dict[str, str], redis: Any, settings: Settings
) -> None:
    """Whatever the locale does to stdin (surrogateescape under C.UTF-8), it is refused."""
    stdin = (
        b'{"payload": "ok", "ttl": 100, "priority": 1}\n'
        + b'{"payload": "\xff", "ttl": 1, "priority": 1}\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "kamikaze", "push", "-"],
        env={**env, "LC_ALL": "C.UTF-8"},
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert said(result.stderr.decode()) == [
        "Error: line 2: not UTF-8 (byte 0xff at column 14) (pushed 0 packages before it)"
    ]
    assert await redis.exists(settings.key) == 0
