"""The fast path's reading of the command line (kamikaze.quick.parse), in
this process: what it takes, with what values, and what it hands to the
full CLI (Declined). tests/integration/test_two_paths.py runs both paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from kamikaze import quick
from kamikaze.settings import Settings

URL = "redis://127.0.0.1:7000/0"
ENV = {"KAMIKAZE_REDIS_URL": URL}


def parse(*argv: str, env: dict[str, str] | None = None) -> quick.Invocation:
    return quick.parse(list(argv), ENV if env is None else env)


def declined(*argv: str, env: dict[str, str] | None = None) -> bool:
    try:
        parse(*argv, env=env)
    except quick.Declined:
        return True
    return False


def test_a_push_is_read_with_its_values_and_settings() -> None:
    invocation = parse("push", "job", "1e3", "-1.5", "--key", "jobs")
    assert invocation.command == "push"
    assert invocation.values | {} == {
        "payload": "job", "ttl": 1000.0, "priority": -1.5, "batch_size": 500, "lines": False
    }  # fmt: skip
    assert invocation.settings == Settings(redis_url=URL, key="jobs")
    assert invocation.configured and (invocation.loglevel, invocation.log_format) == (
        "INFO",
        "human",
    )


def test_push_dash_reads_lines_and_a_dash_after_double_dash_is_a_payload() -> None:
    assert parse("push", "-", "--batch-size", "7").values["lines"] is True
    assert parse("push", "-", "--batch-size", "7").values["batch_size"] == 7
    dashed = parse("push", "--", "-", "60", "1").values
    assert (dashed["lines"], dashed["payload"]) == (False, "-")
    assert parse("push", "--", "-x", "60", "1").values["payload"] == "-x"


def test_options_and_environment_as_click_reads_them() -> None:
    invocation = parse("--loglevel=warning", "remove", "x", "--key=a", "--key", "b")
    assert invocation.loglevel == "WARNING"  # any case, as click's Choice
    assert invocation.settings.key == "b"  # the last one wins
    env = {
        **ENV,
        "KAMIKAZE_KEY": "from-env",
        "KAMIKAZE_LOG_FORMAT": "json",
        "KAMIKAZE_EMBEDDED": "",
    }
    invocation = parse("list", "--json", env=env)
    assert invocation.settings.key == "from-env" and invocation.log_format == "json"
    assert invocation.values["as_json"] is True
    assert parse("list", "--key", "cli", env=env).settings.key == "cli"  # argv wins


def test_nothing_configured_is_told_apart() -> None:
    assert parse("list", env={}).configured is False
    assert parse("list", env={"KAMIKAZE_KEY": "k"}).configured is False  # a key is not where
    assert parse("list", "--redis-port", "7000", env={}).configured is True


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["service", "m.f"],
        ["watch"],
        ["version"],
        ["--help"],
        ["push", "--help"],
        ["--version"],
        ["push", "job", "60"],  # a missing argument
        ["push", "job", "60", "1", "2"],  # an extra one
        ["push", "job", "0", "1"],
        ["push", "job", "nan", "1"],
        ["push", "job", "1e17", "1"],  # past year 9999
        ["push", "job", "60", "inf"],
        ["push", "job", "60", "1", "--bogus"],
        ["push", "-x", "60", "1"],  # a mistyped option
        ["push", "-", "60", "1"],
        ["push", "-", "--batch-size", "0"],
        ["list", "--json=1"],
        ["list", "--raw", "--json"],
        ["list", "extra"],
        ["list", "--key"],  # the value is missing
        ["clear"],  # a prompt, or "add --yes"
        ["--loglevel", "DEBUG", "list"],  # tracebacks are the full CLI's
        ["--loglevel", "LOUD", "list"],
        ["list", "--loglevel", "INFO"],  # a global option after the command
        ["list", "--sentinel", "h:1", "--sentinel-master", "m"],
        ["list", "--cluster"],
        ["list", "--redis-url", URL + "?protocol=2"],  # a query: redis-py's
        ["list", "--redis-url", "redis://kz@h/0"],  # a user without a password
        ["list", "--redis-port", "0"],
        ["list", "--key", "a}b"],
    ],
)
def test_what_the_fast_path_hands_to_the_full_cli(argv: list[str]) -> None:
    assert declined(*argv)


@pytest.mark.parametrize(
    "env",
    [
        {"_KAMIKAZE_COMPLETE": "bash_complete"},
        {"KAMIKAZE_LOGLEVEL": "debug"},
        {"KAMIKAZE_LOG_FORMAT": "xml"},
        {"KAMIKAZE_EMBEDDED": "maybe"},
        {"KAMIKAZE_REDIS_PORT": "abc"},
        {"KAMIKAZE_CLUSTER": "1"},
        {"KAMIKAZE_SENTINELS": "h:1", "KAMIKAZE_SENTINEL_MASTER": "m"},
        {"KAMIKAZE_TLS_CA_FILE": "/no/such/file"},
    ],
)
def test_what_the_environment_hands_to_the_full_cli(env: dict[str, str]) -> None:
    assert declined("list", env={**ENV, **env})


def test_a_directory_is_no_password_file(tmp_path: Path) -> None:
    assert declined("list", "--redis-password-file", str(tmp_path))
    password = tmp_path / "pw"
    password.write_text("pw\n")
    settings = parse("list", "--redis-password-file", str(password)).settings
    assert settings.connection_kwargs()["password"] == "pw"


def test_unix_sockets_tls_files_and_the_embedded_server_are_the_fast_paths(tmp_path: Path) -> None:
    assert parse("list", "--redis-url", "unix:///run/r.sock").settings.redis_url
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    assert parse("list", "--redis-url", "rediss://h/0", "--tls-ca-file", str(ca)).settings.uses_tls
    assert parse("list", "--embedded", env={}).settings.embedded
