"""How push and remove read their arguments (docs/commands.rst: push, remove):
an argument that starts with '-' is a value only when it is a number or
follows '--'; any other is an unknown option, and nothing reaches Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from click.testing import CliRunner, Result

from kamikaze.cli import main
from kamikaze.settings import Settings


def invoke(args: list[str], stdin: str | None = None) -> Result:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []  # let main() install its own handler, as in a real run
    try:
        return CliRunner().invoke(main, args, input=stdin, prog_name="kamikaze")
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[fakeredis.FakeRedis]:
    """Every client the CLI builds talks to one in-memory server; `fake` reads it."""
    server = fakeredis.FakeServer()

    def client(self: Settings) -> Any:
        return fakeredis.FakeAsyncRedis(server=server)

    monkeypatch.setattr(Settings, "client", client)
    reader = fakeredis.FakeRedis(server=server)
    yield reader
    reader.close()


def payloads(fake: fakeredis.FakeRedis, key: str = "kamikaze") -> list[str]:
    return [member.decode().split(":", 1)[1] for member in fake.zrange(key, 0, -1)]


def error_line(result: Result) -> str:
    """The last line on stderr: click's `Error: ...` after the usage lines."""
    assert "Traceback" not in result.output
    return result.stderr.strip().splitlines()[-1]


# unknown options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["push", "--embeded", "60", "1"], "--embeded"),
        (["push", "-x", "60", "1"], "-x"),
        (["push", "job", "--bogus", "60", "1"], "--bogus"),
        (["push", "job", "60", "1", "--bogus=3"], "--bogus"),
        (["push", "job", "60", "-1x"], "-1x"),
        (["push", "--", "job", "60", "1", "--embeded"], None),  # a 4th value, not an option
        (["remove", "--embeded"], "--embeded"),
        (["remove", "-x"], "-x"),
    ],
)
def test_an_unknown_option_is_exit_2_named_and_writes_nothing(
    args: list[str], named: str | None, fake: fakeredis.FakeRedis
) -> None:
    fake.zadd("kamikaze", {"1.0:--embeded": 1, "1.0:-x": 1})
    result = invoke(args)
    assert result.exit_code == 2, result.output
    if named is None:
        assert error_line(result) == "Error: Got unexpected extra argument (--embeded)"
    else:
        line = error_line(result)  # click words it "No such option '-x'." or "...: -x"
        assert line.startswith("Error: No such option") and named in line.split(".")[0]
    assert payloads(fake) == ["--embeded", "-x"]


def test_a_misspelt_option_gets_a_suggestion(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["push", "--embeded", "60", "1"])
    assert "Did you mean" in error_line(result)
    assert "'--embedded'" in error_line(result)


def test_an_option_without_its_value_is_exit_2(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["push", "job", "60", "1", "--key"])
    assert result.exit_code == 2
    assert error_line(result) == "Error: Option '--key' requires an argument."
    assert fake.keys() == []


# values that start with '-' -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "payload", "priority"),
    [
        (["push", "job", "60", "-1"], "job", -1.0),
        (["push", "job", "60", "-1e3"], "job", -1000.0),
        (["push", "job", "60", "-.5"], "job", -0.5),
        (["push", "-5", "60", "1"], "-5", 1.0),
        (["push", "--", "-x", "60", "1"], "-x", 1.0),
        (["push", "--", "--embedded", "60", "-2"], "--embedded", -2.0),
        (["push", "--", "-", "60", "1"], "-", 1.0),
        (["push", "job", "--", "60", "-1"], "job", -1.0),
    ],
)
def test_numbers_and_what_follows_double_dash_are_values(
    args: list[str], payload: str, priority: float, fake: fakeredis.FakeRedis
) -> None:
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert fake.zrange("kamikaze", 0, -1, withscores=True)[0][1] == priority
    assert payloads(fake) == [payload]


@pytest.mark.parametrize(
    "args",
    [
        ["push", "job", "60", "-1", "--key", "other"],
        ["push", "--key", "other", "job", "60", "-1"],
        ["push", "job", "--key", "other", "60", "-1"],
        ["push", "job", "60", "-1", "--key=other"],
        ["push", "--key=other", "--", "job", "60", "-1"],
    ],
)
def test_options_go_anywhere_before_double_dash(args: list[str], fake: fakeredis.FakeRedis) -> None:
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert payloads(fake, "other") == ["job"]
    assert fake.zcard("kamikaze") == 0


def test_an_option_value_may_start_with_a_dash(fake: fakeredis.FakeRedis) -> None:
    assert invoke(["push", "job", "60", "1", "--key", "-odd"]).exit_code == 0
    assert payloads(fake, "-odd") == ["job"]


@pytest.mark.parametrize(
    ("args", "payload"),
    [
        (["remove", "-5"], "-5"),
        (["remove", "--", "-x"], "-x"),
        (["remove", "--", "--embeded"], "--embeded"),
        (["remove", "-"], "-"),
        (["remove", "--key", "kamikaze", "--", "-"], "-"),
    ],
)
def test_remove_takes_numbers_dash_and_what_follows_double_dash(
    args: list[str], payload: str, fake: fakeredis.FakeRedis
) -> None:
    for each in ("-5", "-x", "--embeded", "-"):
        assert invoke(["push", "--", each, "60", "1"]).exit_code == 0
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert f"removed 1 package with payload {payload!r}" in result.stderr
    assert sorted(payloads(fake)) == sorted({"-5", "-x", "--embeded", "-"} - {payload})


# push -, and push with some of TTL and PRIORITY ----------------------------------------


def test_push_dash_alone_reads_json_lines(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["push", "-"], stdin='{"payload": "a", "ttl": 60, "priority": -1}\n')
    assert result.exit_code == 0, result.output
    assert payloads(fake) == ["a"]


@pytest.mark.parametrize("args", [["push", "-", "60", "1"], ["push", "-", "60"]])
def test_push_dash_with_ttl_or_priority_is_exit_2_and_says_how(
    args: list[str], fake: fakeredis.FakeRedis
) -> None:
    result = invoke(args, stdin='{"payload": "a", "ttl": 60, "priority": 1}\n')
    assert result.exit_code == 2
    assert error_line(result) == (
        "Error: '-' alone reads JSON lines from stdin; "
        "for the payload '-' itself, write: kamikaze push -- - TTL PRIORITY"
    )
    assert fake.keys() == []


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (["push", "job"], "TTL"),
        (["push", "job", "60"], "PRIORITY"),
        (["push", "--", "-"], "TTL"),
    ],
)
def test_push_with_some_of_ttl_and_priority_names_the_missing_one(
    args: list[str], missing: str, fake: fakeredis.FakeRedis
) -> None:
    result = invoke(args)
    assert result.exit_code == 2
    assert error_line(result) == f"Error: Missing argument '{missing}'."
    assert result.stderr.startswith("Usage: kamikaze push [OPTIONS] PAYLOAD TTL PRIORITY\n")
    assert fake.keys() == []


def test_push_usage_line_shows_the_three_arguments_as_required() -> None:
    result = invoke(["push", "--help"])
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "Usage: kamikaze push [OPTIONS] PAYLOAD TTL PRIORITY"


def test_a_bad_ttl_names_ttl_without_brackets(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["push", "job", "-1", "1"])
    assert result.exit_code == 2
    assert error_line(result) == "Error: Invalid value for 'TTL': '-1' must be greater than 0"


def test_shell_completion_still_completes_after_a_mistyped_option() -> None:
    from click.shell_completion import ShellComplete

    complete = ShellComplete(main, {}, "kamikaze", "_KAMIKAZE_COMPLETE")
    offered = complete.get_completions(["push", "--embeded", "job", "60"], "--emb")
    assert "--embedded" in [item.value for item in offered]
