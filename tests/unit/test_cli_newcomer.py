"""What a newcomer meets right after the quick start (issue 13.1), through
click's CliRunner: a refused default address hints at --embedded; `clear`
and `list --raw` do what redis-cli did in the docs."""

from __future__ import annotations

import logging
import math
from typing import Any

import fakeredis
import pytest
from click.testing import CliRunner, Result

from kamikaze.cli import main
from kamikaze.package import index_entry
from kamikaze.settings import Settings
from tests.servers import free_port


def invoke(args: list[str], env: dict[str, str] | None = None, **kwargs: Any) -> Result:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []
    try:
        return CliRunner().invoke(main, args, env=env, **kwargs)
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


@pytest.fixture(autouse=True)
def nothing_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in __import__("os").environ if name.startswith("KAMIKAZE_")]:
        monkeypatch.delenv(name)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# A refused connection to the default address ----------------------------------------


@pytest.fixture
def default_address_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """localhost:6379 as the settings say, but a port where nobody listens
    (the machine's own Redis on 6379 must not be touched)."""
    port = free_port()
    original = Settings.connection_kwargs

    def connection_kwargs(self: Settings) -> dict[str, Any]:
        kwargs = original(self)
        if kwargs.get("port") == 6379:
            kwargs.update(host="127.0.0.1", port=port)
        return kwargs

    monkeypatch.setattr(Settings, "connection_kwargs", connection_kwargs)


@pytest.mark.parametrize(
    "args",
    [["push", "hello", "60", "5"], ["remove", "hello"], ["list"], ["clear", "--yes"]],
    ids=["push", "remove", "list", "clear"],
)
def test_refused_default_address_hints_at_embedded(
    args: list[str], default_address_refuses: None
) -> None:
    result = invoke(args)
    assert result.exit_code == 1, result.output
    line = one_line(result.stderr)
    assert line.startswith("Error: cannot connect to Redis at localhost:6379: Connection refused")
    assert "--embedded" in line and "KAMIKAZE_EMBEDDED=1" in line


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--redis-port", "6379"], {}),
        (["--redis-host", "localhost"], {}),
        ([], {"KAMIKAZE_REDIS_PORT": "6379"}),
        ([], {"KAMIKAZE_REDIS_URL": "redis://localhost:6379/0"}),
    ],
    ids=["port option", "host option", "port variable", "url variable"],
)
def test_refused_configured_address_gives_no_hint(
    args: list[str], env: dict[str, str], default_address_refuses: None
) -> None:
    result = invoke(["list", *args], env=env)
    assert result.exit_code == 1, result.output
    line = one_line(result.stderr)
    assert "Connection refused" in line
    assert "embedded" not in line


# clear --------------------------------------------------------------------------------


def push(*args: str) -> None:
    result = invoke(["push", *args])
    assert result.exit_code == 0, result.output


def test_clear_deletes_the_queue_and_its_indexes_and_signals(fake: fakeredis.FakeRedis) -> None:
    push("hello", "60", "5")
    push("urgent", "10", "1")
    fake.zadd("other", {"x": 1})
    pubsub = fake.pubsub()
    pubsub.subscribe("kamikaze")
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    result = invoke(["clear", "--yes"])
    assert result.exit_code == 0, result.output
    assert "cleared 2 packages from kamikaze" in one_line(result.stderr)
    assert fake.exists("kamikaze", "{kamikaze}:by-payload") == 0
    assert fake.zcard("other") == 1
    message = pubsub.get_message(timeout=1)
    assert message is not None and message["data"].split(b" ")[0] == b"new_message"
    assert len(message["data"].split(b" ")) == 4  # the queue is empty: no top
    pubsub.close()


def test_clear_of_an_empty_queue_says_so_and_does_not_signal(fake: fakeredis.FakeRedis) -> None:
    pubsub = fake.pubsub()
    pubsub.subscribe("kamikaze")
    pubsub.get_message(timeout=1)
    result = invoke(["clear", "--yes"])
    assert result.exit_code == 0, result.output
    assert "cleared 0 packages from kamikaze" in one_line(result.stderr)
    assert pubsub.get_message(timeout=0.2) is None
    pubsub.close()


def test_clear_without_yes_off_a_terminal_is_exit_2_and_deletes_nothing(
    fake: fakeredis.FakeRedis,
) -> None:
    push("hello", "60", "5")
    result = invoke(["clear"])
    assert result.exit_code == 2, result.output
    assert "--yes" in result.stderr
    assert fake.zcard("kamikaze") == 1


def test_clear_asks_on_a_terminal(
    fake: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    push("hello", "60", "5")
    monkeypatch.setattr("kamikaze.cli.stdin_is_terminal", lambda: True)
    refused = invoke(["clear"], input="n\n")
    assert refused.exit_code == 1, refused.output
    assert "Delete every package of kamikaze" in refused.output
    assert fake.zcard("kamikaze") == 1
    agreed = invoke(["clear"], input="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert fake.exists("kamikaze") == 0


def test_clear_of_a_key_that_is_not_a_sorted_set_changes_nothing(
    fake: fakeredis.FakeRedis,
) -> None:
    fake.set("kamikaze", "someone's string")
    result = invoke(["clear", "--yes"])
    assert result.exit_code == 1, result.output
    assert "WRONGTYPE" in one_line(result.stderr)
    assert fake.get("kamikaze") == b"someone's string"


def test_clear_with_another_key_clears_only_that_queue(fake: fakeredis.FakeRedis) -> None:
    push("hello", "60", "5")
    push("job", "60", "5", "--key", "jobs")
    assert invoke(["clear", "--yes", "--key", "jobs"]).exit_code == 0
    assert fake.zcard("kamikaze") == 1
    assert fake.exists("jobs", "{jobs}:expiry", "{jobs}:payload") == 0


# list --raw ---------------------------------------------------------------------------


def test_list_raw_shows_every_member_and_score_as_stored(fake: fakeredis.FakeRedis) -> None:
    push("hello", "60", "5")
    fake.zadd("kamikaze", {"1.5:expired-long-ago": 2, "no colon": 7, ":forever": math.inf})
    result = invoke(["list", "--raw"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "2\t1.5:expired-long-ago"
    assert lines[1].startswith("5\t1") and lines[1].endswith(":hello")
    assert len(lines[1].split("\t")[1].split(":")[0]) == 17  # ten digits, six decimals
    assert lines[2:] == ["7\tno colon", "inf\t:forever"]


def test_list_raw_reads_an_index_key_too(fake: fakeredis.FakeRedis) -> None:
    push("hello", "60", "5")
    result = invoke(["list", "--raw", "--key", "{kamikaze}:by-payload"])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout_bytes.splitlines()
    score, entry = line.split(b"\t")
    [member] = fake.zrange("kamikaze", 0, -1)
    assert score == b"0" and entry == index_entry(member)  # b"d" + digest + expire text


def test_list_raw_and_json_exclude_each_other(fake: fakeredis.FakeRedis) -> None:
    result = invoke(["list", "--raw", "--json"])
    assert result.exit_code == 2
    assert "--raw" in result.stderr and "--json" in result.stderr
