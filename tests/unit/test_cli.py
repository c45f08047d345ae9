"""The command line, through click's CliRunner, without a real Redis server.

Unreachable-Redis cases use a port nobody listens on; the few cases that need
a working queue replace Settings.client with fakeredis.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import socket
from typing import Any

import fakeredis
import pytest
from click.testing import CliRunner, Result
from redis.exceptions import ResponseError

from kamikaze import __version__
from kamikaze.cli import main
from kamikaze.errors import redis_error_line
from kamikaze.settings import Settings


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    """Run the CLI as a user would see it: logging set up by the command itself."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []  # let main()'s logging.basicConfig() install its handler
    try:
        return CliRunner().invoke(main, args, env=env)
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


@pytest.fixture(autouse=True)
def no_service(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """`service` must never reach its loop here: a stub records what it was given."""
    started: list[Any] = []

    async def serve(settings: Settings, runner: Any, *args: Any) -> None:
        started.append((settings, runner))

    monkeypatch.setattr("kamikaze.service.serve", serve)
    return started


@pytest.fixture(scope="module")
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def flat(text: str) -> str:
    return " ".join(text.split())


# help and version ---------------------------------------------------------------------


def test_main_help_says_lower_priority_numbers_are_more_urgent() -> None:
    result = invoke(["--help"])
    assert result.exit_code == 0
    text = flat(result.output)
    assert re.search(r"low(er|est) priority number", text, re.IGNORECASE)
    assert "priority 1 beats priority 5" in text
    for command in ("push", "remove", "list", "service", "version"):
        assert command in text


@pytest.mark.parametrize("command", ["push", "remove", "list", "service", "version"])
def test_each_command_has_help(command: str) -> None:
    result = invoke([command, "--help"])
    assert result.exit_code == 0
    assert result.output.startswith("Usage:")
    assert command in result.output.splitlines()[0]


def test_push_help_explains_priority() -> None:
    assert "lower is more urgent" in flat(invoke(["push", "--help"]).output)


def test_short_help_option() -> None:
    assert invoke(["-h"]).exit_code == 0


def test_version_option() -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_version_command() -> None:
    result = invoke(["version"])
    assert result.exit_code == 0
    assert result.output.strip() == __version__


def test_unknown_command_exits_2() -> None:
    result = invoke(["frobnicate"])
    assert result.exit_code == 2
    assert "frobnicate" in result.output


def test_bad_loglevel_exits_2() -> None:
    result = invoke(["--loglevel", "LOUD", "version"])
    assert result.exit_code == 2
    assert "LOUD" in result.output


# bad arguments: exit 2, no traceback, nothing reaches Redis ------------------------------


@pytest.mark.parametrize("ttl", ["abc", "0", "-1", "nan", "inf", "-inf", "0.0", ""])
def test_push_bad_ttl_exits_2(ttl: str, fake: fakeredis.FakeRedis) -> None:
    result = invoke(["push", "payload", ttl, "1"])
    assert result.exit_code == 2
    assert f"'{ttl}'" in result.output
    assert "TTL" in result.output
    assert "Traceback" not in result.output
    assert fake.zcard("kamikaze") == 0


@pytest.mark.parametrize("priority", ["nan", "inf", "-inf", "text", "1,5"])
def test_push_bad_priority_exits_2(priority: str, fake: fakeredis.FakeRedis) -> None:
    result = invoke(["push", "payload", "10", priority])
    assert result.exit_code == 2
    assert f"'{priority}'" in result.output
    assert "PRIORITY" in result.output
    assert "Traceback" not in result.output
    assert fake.zcard("kamikaze") == 0


def test_push_missing_priority_exits_2(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["push", "payload", "10"])
    assert result.exit_code == 2
    assert "PRIORITY" in result.output


def test_push_extra_argument_exits_2(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["push", "payload", "10", "1", "extra"])
    assert result.exit_code == 2
    assert "extra" in result.output
    assert fake.zcard("kamikaze") == 0


def test_list_unknown_option_exits_2(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["list", "--bogus"])
    assert result.exit_code == 2
    assert "--bogus" in result.output


def test_bad_redis_port_exits_2(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["list", "--redis-port", "seventy"])
    assert result.exit_code == 2
    assert "seventy" in result.output


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("no_such_module_xyz.func", "no_such_module_xyz.func"),
        ("example_consumer.consumer.no_such_func", "example_consumer.consumer.no_such_func"),
        ("kamikaze.__version__", "kamikaze.__version__"),
        ("nodots", "nodots"),
    ],
)
def test_service_bad_consumer_path_exits_2(path: str, named: str, no_service: list[Any]) -> None:
    result = invoke(["service", path])
    assert no_service == []
    assert result.exit_code == 2
    assert named in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("kwargs", ["{bad json", "[1, 2]", "3"])
def test_service_bad_kwargs_exits_2(kwargs: str, no_service: list[Any]) -> None:
    result = invoke(
        [
            "service",
            "example_consumer.consumer.blocking_consumer_func",
            "--consumer-function-kwargs",
            kwargs,
        ]
    )
    assert result.exit_code == 2
    assert kwargs in result.output
    assert "Traceback" not in result.output
    assert no_service == []


def test_service_passes_decoded_args_and_kwargs(no_service: list[Any]) -> None:
    result = invoke(
        [
            "service",
            "example_consumer.consumer.yielding_consumer_func",
            "3",
            "true",
            "text",
            "-2",
            "--consumer-function-kwargs",
            '{"sleep_time": 2}',
            "--key",
            "q",
        ]
    )
    assert result.exit_code == 0, result.output
    [(settings, runner)] = no_service
    assert settings.key == "q"
    assert runner.args == (3, True, "text", -2)
    assert runner.kwargs == {"sleep_time": 2}
    assert runner.consumer.__name__ == "yielding_consumer_func"


@pytest.mark.parametrize("url", ["notaurl", "http://host:1", "redis://host:notaport"])
def test_bad_redis_url_exits_2_naming_it(url: str) -> None:
    result = invoke(["list", "--redis-url", url])
    assert result.exit_code == 2
    assert "'--redis-url'" in error_line(result)


def error_line(result: Result) -> str:
    """A usage error: click's usage lines, then the one line that says what is wrong."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith(("Usage: ", "Try '"))]
    assert len(said) == 1, result.stderr
    assert said[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return said[0]


@pytest.fixture
def no_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused input must not reach Redis: building a client fails the test."""

    def client(self: Settings) -> Any:
        raise AssertionError("a client was built for refused input")

    monkeypatch.setattr(Settings, "client", client)


SECRET = "S3cretPW"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"redis:/:{SECRET}@127.0.0.1:6390/0", "redis:// (two slashes)"),
        ("redis:/127.0.0.1:6390/0", "redis:// (two slashes)"),
        (f"kamikaze:{SECRET}@host:6390", "not a redis://, rediss:// or unix:// URL"),
        (f"redis://:{SECRET}@host:p/0", "port is not a number"),
        (f"redis://:{SECRET}@/0", "names no host"),
        (f"unix:{SECRET}@/tmp/redis.sock", "unix:// (two slashes)"),
    ],
)
@pytest.mark.parametrize("source", ["option", "environment"])
def test_a_url_that_names_no_server_unambiguously_is_exit_2_without_the_password(
    url: str, reason: str, source: str, no_redis: None
) -> None:
    """docs/security.rst. The password stays out of every line, DEBUG included."""
    if source == "option":
        result = invoke(["--loglevel", "DEBUG", "list", "--redis-url", url])
        culprit = "'--redis-url'"
    else:
        result = invoke(["--loglevel", "DEBUG", "list"], env={"KAMIKAZE_REDIS_URL": url})
        culprit = "'KAMIKAZE_REDIS_URL'"
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert culprit in line and reason in line
    assert SECRET not in result.output


# unreachable Redis: exit 1, one line naming the address ---------------------------------


@pytest.mark.parametrize(
    "args",
    [["push", "payload", "10", "1"], ["remove", "payload"], ["list"]],
    ids=["push", "remove", "list"],
)
def test_unreachable_redis_is_one_line_and_exit_1(args: list[str], free_port: int) -> None:
    result = invoke([*args, "--redis-port", str(free_port)])
    assert result.exit_code == 1
    assert result.stdout == ""
    line = one_line(result.stderr)
    assert f"localhost:{free_port}" in line or f"127.0.0.1:{free_port}" in line
    assert "Traceback" not in result.output


def test_unreachable_redis_at_debug_may_show_traceback(free_port: int) -> None:
    result = invoke(["--loglevel", "DEBUG", "list", "--redis-port", str(free_port)])
    assert result.exit_code == 1
    assert f"localhost:{free_port}" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" in result.stderr


def test_negative_priority_parses_and_reaches_redis(free_port: int) -> None:
    result = invoke(["push", "p", "10", "-3", "--redis-port", str(free_port)])
    assert result.exit_code == 1
    assert f"localhost:{free_port}" in one_line(result.stderr)


def test_redis_port_from_environment(free_port: int) -> None:
    result = invoke(["list"], env={"KAMIKAZE_REDIS_PORT": str(free_port)})
    assert result.exit_code == 1
    assert f"localhost:{free_port}" in one_line(result.stderr)


def test_redis_url_error_never_shows_the_password(free_port: int) -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port}/0"
    result = invoke(["list"], env={"KAMIKAZE_REDIS_URL": url})
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert f"127.0.0.1:{free_port}" in line
    assert "s3cret" not in result.output


def chained(cause: OSError) -> Exception:
    """A redis ConnectionError raised while handling `cause`, as redis-py raises it."""
    from redis.exceptions import ConnectionError

    try:
        try:
            raise cause
        except OSError:
            raise ConnectionError("network:ConnectionError") from None
    except ConnectionError as exc:
        exc.__context__ = cause
        return exc


def test_error_line_for_refused_connection() -> None:
    exc = chained(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    line = redis_error_line(Settings(redis_port=7777), exc)
    assert line == "cannot connect to Redis at localhost:7777: Connection refused"


def test_error_line_for_unknown_host_says_why() -> None:
    exc = chained(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    line = redis_error_line(Settings(redis_host="no-such-host.invalid"), exc)
    assert "no-such-host.invalid:6379" in line
    assert "Unknown error" not in line


@pytest.mark.parametrize(
    "position",
    [" script: 6a1b9d4b5c3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a, on @user_script:162.",  # Redis
     " script: on @user_script:162."],  # Valkey, the embedded server
    ids=["redis", "valkey"],
)  # fmt: skip
def test_error_line_for_a_refusal_inside_a_script_drops_the_script_s_position(
    position: str,
) -> None:
    refusal = "ACL failure in script: User u has no permissions to run the 'zadd' command"
    line = redis_error_line(Settings(redis_port=7777), ResponseError(refusal + position))
    assert line == f"Redis at localhost:7777 answered: {refusal}"


# a working queue (fakeredis) ----------------------------------------------------------


def test_push_then_list_json(fake: fakeredis.FakeRedis) -> None:
    assert invoke(["push", "later", "100", "5"]).exit_code == 0
    assert invoke(["push", "a:b", "100", "-3"]).exit_code == 0
    result = invoke(["list", "--json"])
    assert result.exit_code == 0
    items = json.loads(result.stdout)
    assert [(i["payload"], i["priority"]) for i in items] == [("a:b", -3.0), ("later", 5.0)]
    assert 99 < items[0]["ttl"] <= 100
    assert set(items[0]) == {"payload", "priority", "expire_time", "ttl"}


def test_push_writes_nothing_to_stdout(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["push", "job", "10", "1"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert fake.zcard("kamikaze") == 1


def test_payload_starting_with_dash(fake: fakeredis.FakeRedis) -> None:
    assert invoke(["push", "--", "-x", "10", "1"]).exit_code == 0  # docs/commands.rst: push
    [member] = fake.zrange("kamikaze", 0, -1)
    assert member.endswith(b":-x")


def test_key_from_environment(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["push", "job", "10", "1"], env={"KAMIKAZE_KEY": "mine"})
    assert result.exit_code == 0
    assert fake.zcard("mine") == 1
    assert fake.zcard("kamikaze") == 0


def test_key_option(fake: fakeredis.FakeRedis) -> None:
    invoke(["push", "job", "10", "1", "--key", "other"])
    assert fake.zcard("other") == 1
    listed = invoke(["list", "--json", "--key", "other"])
    assert [i["payload"] for i in json.loads(listed.stdout)] == ["job"]
    assert json.loads(invoke(["list", "--json"]).stdout) == []


def test_list_plain_when_not_a_terminal(fake: fakeredis.FakeRedis) -> None:
    invoke(["push", "job", "100", "2"])
    invoke(["push", "forever", "100", "7"])
    result = invoke(["list"])
    assert result.exit_code == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[:2] for row in rows] == [["2.0", "job"], ["7.0", "forever"]]
    assert "Score" not in result.stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", rows[0][2])
    assert re.fullmatch(r"\d+\.\d{3}", rows[0][3])


def test_list_empty_queue_prints_nothing(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["list"])
    assert result.exit_code == 0
    assert result.stdout == ""


def test_list_skips_others_data(fake: fakeredis.FakeRedis) -> None:
    fake.zadd("kamikaze", {"garbage": 0, "abc:x": 0})
    invoke(["push", "job", "100", "1"])
    result = invoke(["list", "--json"])
    assert result.exit_code == 0
    assert [i["payload"] for i in json.loads(result.stdout)] == ["job"]
    assert fake.zcard("kamikaze") == 3


def test_list_passes_non_utf8_payload_bytes_through(fake: fakeredis.FakeRedis) -> None:
    fake.zadd("kamikaze", {b"9999999999.000000:\xff\xfe": 1})
    result = invoke(["list"])
    assert result.exit_code == 0
    assert b"\t\xff\xfe\t" in result.stdout_bytes


def test_list_json_stays_valid_json_with_non_utf8_payload(fake: fakeredis.FakeRedis) -> None:
    fake.zadd("kamikaze", {b"9999999999.000000:\xff\xfe": 1})
    result = invoke(["list", "--json"])
    assert result.exit_code == 0
    assert len(json.loads(result.stdout_bytes)) == 1


def test_key_of_the_wrong_type_is_one_line_and_exit_1(fake: fakeredis.FakeRedis) -> None:
    fake.set("kamikaze", "not a sorted set")
    for args in (["list"], ["push", "p", "10", "1"], ["remove", "p"]):
        result = invoke(args)
        assert result.exit_code == 1
        assert "WRONGTYPE" in one_line(result.stderr)
        assert "Traceback" not in result.output
    assert fake.get("kamikaze") == b"not a sorted set"


def test_loglevel_from_environment(fake: fakeredis.FakeRedis) -> None:
    quiet = invoke(["push", "job", "10", "1"])
    loud = invoke(["push", "job", "10", "1"], env={"KAMIKAZE_LOGLEVEL": "debug"})
    assert "pushed" not in quiet.stderr
    assert "pushed" in loud.stderr


def test_remove_exact_payload(fake: fakeredis.FakeRedis) -> None:
    invoke(["push", "a*", "100", "1"])
    invoke(["push", "abc", "100", "2"])
    result = invoke(["remove", "a*"])
    assert result.exit_code == 0
    assert "removed 1 package " in result.stderr
    assert [i["payload"] for i in json.loads(invoke(["list", "--json"]).stdout)] == ["abc"]


def test_remove_nothing_exits_0(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["remove", "nope"])
    assert result.exit_code == 0
    assert "removed 0 packages" in result.stderr


# input that once ended in a traceback: one line naming the culprit ---------------------

BAD_KEYS = {
    "x}": "contains '}' but no hash tag",
    "odd{}key": "contains '}' but no hash tag",
    "\udcff": "not valid UTF-8",  # how Python hands over a non-UTF-8 argv byte
}
COMMANDS = {
    "push": ["push", "p", "10", "1"],
    "push -": ["push", "-"],
    "remove": ["remove", "p"],
    "list": ["list"],
    "watch": ["watch"],
    "service": ["service", "example_consumer.consumer.blocking_consumer_func"],
}


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_key_that_cannot_work_is_exit_2_naming_it(
    key: str, command: str, fake: fakeredis.FakeRedis, no_service: list[Any]
) -> None:
    result = invoke([*COMMANDS[command], "--key", key])
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "'--key'" in line and BAD_KEYS[key] in line
    assert fake.keys() == [] and no_service == []


def test_a_bad_key_from_the_environment_names_the_variable(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["push", "p", "10", "1"], env={"KAMIKAZE_KEY": "x}"})
    assert result.exit_code == 2
    assert "'KAMIKAZE_KEY'" in error_line(result)
    assert fake.keys() == []


def test_an_empty_key_is_exit_2(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["push", "p", "10", "1", "--key", ""])
    assert result.exit_code == 2
    assert "the key is empty" in error_line(result)
    assert fake.keys() == []


@pytest.mark.parametrize(
    ("stdin", "reason"),
    [
        (
            b'{"payload": "ok", "ttl": 1, "priority": 1}\n{"payload": "\xff", "ttl": 1}\n',
            "line 2: not UTF-8",
        ),
        (b'{"payload": "a", "ttl": 1' + b"0" * 309 + b', "priority": 1}\n', "line 1: ttl must be"),
        (
            b'{"payload": "a", "ttl": 1, "priority": -1' + b"0" * 309 + b"}\n",
            "line 1: priority must be",
        ),
        (
            b'{"payload": "\\ud800", "ttl": 1, "priority": 1}\n',
            "line 1: payload has a lone surrogate",
        ),
    ],
    ids=["invalid UTF-8", "309-digit ttl", "309-digit priority", "lone surrogate"],
)
def test_push_lines_that_once_crashed_are_exit_2(
    stdin: bytes, reason: str, fake: fakeredis.FakeRedis
) -> None:
    result = CliRunner().invoke(main, ["push", "-"], input=stdin)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert reason in line and len(line) < 200
    assert fake.keys() == []


def test_rediss_to_a_server_without_tls_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain server never answers a TLS handshake: the line once ended in an empty reason."""
    monkeypatch.setattr("kamikaze.connections.CONNECT_TIMEOUT", 0.2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        result = invoke(["list", "--redis-url", f"rediss://127.0.0.1:{port}/0"])
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert line.startswith(f"Error: cannot connect to Redis at rediss://127.0.0.1:{port}: ")
    assert "timed out" in line and "TLS" in line


def test_a_consumer_that_exits_on_import_is_exit_2_naming_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, no_service: list[Any]
) -> None:
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = invoke(["service", "exits_on_import.consume"])
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "'exits_on_import.consume'" in line and "sys.exit(3)" in line
    assert no_service == []


# messages a user can act on -------------------------------------------------------------

CONSUMER = "example_consumer.consumer.blocking_consumer_func"


@pytest.mark.parametrize(
    ("env", "command", "variable", "option"),
    [
        ({"KAMIKAZE_REDIS_PORT": "abc"}, ["list"], "KAMIKAZE_REDIS_PORT", "--redis-port"),
        ({"KAMIKAZE_LOGLEVEL": "LOUD"}, ["list"], "KAMIKAZE_LOGLEVEL", "--loglevel"),
        ({"KAMIKAZE_LOG_FORMAT": "xml"}, ["list"], "KAMIKAZE_LOG_FORMAT", "--log-format"),
        ({"KAMIKAZE_EMBEDDED": "maybe"}, ["list"], "KAMIKAZE_EMBEDDED", "--embedded"),
        (
            {"KAMIKAZE_SENTINELS": "h:x", "KAMIKAZE_SENTINEL_MASTER": "m"},
            ["list"],
            "KAMIKAZE_SENTINELS",
            "--sentinel",
        ),
        ({"KAMIKAZE_TLS_CA_FILE": "/no/such/ca.pem"}, ["list"], "KAMIKAZE_TLS_CA_FILE", "--tls"),
        ({"KAMIKAZE_METRICS_PORT": "abc"}, ["service", CONSUMER], "KAMIKAZE_METRICS_PORT", "--"),
        ({"KAMIKAZE_SWEEP_INTERVAL": "0"}, ["service", CONSUMER], "KAMIKAZE_SWEEP_INTERVAL", "--"),
    ],
)
def test_a_bad_environment_value_names_the_variable_not_the_option(
    env: dict[str, str], command: list[str], variable: str, option: str, no_redis: None
) -> None:
    result = invoke(command, env=env)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert f"'{variable}'" in line
    assert option not in line


def test_a_bad_option_value_still_names_the_option(no_redis: None) -> None:
    result = invoke(["list", "--redis-port", "abc"], env={"KAMIKAZE_REDIS_PORT": "1"})
    assert "'--redis-port'" in error_line(result)


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--embedded", "list"], "--embedded goes after the command, as in: main list --embedded"),
        (["--key", "list", "push", "x", "1", "1"], "as in: main push --key NAME"),
        (["--redis-url", f"redis://:{SECRET}@h/0", "list"], "as in: main list --redis-url URL"),
        (["--json", "list"], "as in: main list --json"),
        (["--embedded"], "as in: main COMMAND --embedded"),
        (
            ["list", "--loglevel", "DEBUG"],
            "--loglevel goes before the command, as in: main --loglevel DEBUG list",
        ),
        (["watch", "--log-format=json"], "as in: main --log-format=json watch"),
        (["service", CONSUMER, "--loglevel", "DEBUG"], "as in: main --loglevel DEBUG service"),
    ],
)
def test_a_misplaced_option_says_where_it_goes(
    args: list[str], hint: str, no_redis: None, no_service: list[Any]
) -> None:
    result = invoke(args)
    assert result.exit_code == 2
    assert hint in error_line(result)
    assert SECRET not in result.output and no_service == []


def test_an_unknown_option_is_still_unknown() -> None:
    result = invoke(["--embeded", "list"])
    assert result.exit_code == 2
    assert "No such option '--embeded'" in error_line(result)


@pytest.mark.parametrize(
    ("path", "dotted"),
    [
        ("example_consumer/consumer.py", "example_consumer.consumer.FUNCTION"),
        ("./example_consumer/consumer.py", "example_consumer.consumer.FUNCTION"),
        (
            "example_consumer/consumer.py:yielding_consumer_func",
            "example_consumer.consumer.yielding_consumer_func",
        ),
        ("consumer.py", "consumer.FUNCTION"),
    ],
)
def test_a_consumer_given_as_a_file_suggests_the_dotted_form(
    path: str, dotted: str, no_service: list[Any]
) -> None:
    result = invoke(["service", path])
    assert result.exit_code == 2
    line = error_line(result)
    assert f"{path!r}" in line and dotted in line


CONSUMER = "example_consumer.consumer.blocking_consumer_func"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0", "'0' is not from 0.2 to 3600"),
        ("0.1", "'0.1' is not from 0.2 to 3600"),
        ("5000", "'5000' is not from 0.2 to 3600"),
        ("nan", "'nan' is not a finite number"),
        ("1e400", "'1e400' is not a finite number"),
        ("soon", "'soon' is not a number"),
    ],
)
def test_a_lease_out_of_range_is_exit_2_and_one_line(value: str, why: str) -> None:
    """docs/ha.rst: below 0.2 s a lease would be mostly its safety margin."""
    result = invoke(["service", CONSUMER, "--exclusive", "--lease", value])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == f"Error: Invalid value for '--lease': {why}"


def test_a_lease_without_exclusive_is_exit_2() -> None:
    result = invoke(["service", CONSUMER, "--lease", "1"])
    assert result.exit_code == 2
    assert (
        result.output.splitlines()[-1]
        == "Error: --lease is for exclusive services: add --exclusive"
    )
