"""Log formats: the CLI's human format unchanged, and one JSON object per line."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from kamikaze import logs

log = logging.getLogger("kamikaze.test")
ISO_UTC_MILLISECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_formats() -> None:
    assert logs.FORMATS == ("human", "json")


def test_human_format_is_the_cli_format() -> None:
    stream = io.StringIO()
    logs.configure("info", stream=stream)
    log.info("hello %s", "world")
    log.debug("not shown")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO kamikaze\.test: hello world\n",
        stream.getvalue(),
    )


def test_human_format_writes_to_stderr_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("warning")
    log.warning("careful")
    assert capsys.readouterr().err.endswith(" WARNING kamikaze.test: careful\n")


def test_json_writes_one_object_per_line_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("DEBUG", "json")
    log.debug("first %d", 1)
    log.error("second")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first == {
        "time": first["time"],
        "level": "DEBUG",
        "logger": "kamikaze.test",
        "message": "first 1",
    }
    assert ISO_UTC_MILLISECONDS.match(first["time"])
    assert second["level"] == "ERROR"
    assert second["message"] == "second"


def test_json_time_is_utc() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    record = logging.makeLogRecord({"msg": "x", "created": 1795824903.9948})
    logging.getLogger().handlers[0].handle(record)
    assert json_lines(stream)[0]["time"] == "2026-11-28T00:15:03.994Z"


def test_json_respects_the_level() -> None:
    stream = io.StringIO()
    logs.configure("warning", "json", stream=stream)
    log.info("hidden")
    assert stream.getvalue() == ""


def test_json_exception_has_the_traceback() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("consumer failed")
    (entry,) = json_lines(stream)
    assert entry["message"] == "consumer failed"
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: boom" in entry["exception"]


def test_json_has_no_exception_key_without_exc_info() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    log.info("fine")
    assert "exception" not in json_lines(stream)[0]


def test_json_includes_extra_fields() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    log.info("called", extra={"payload": "job", "priority": 1.5, "tags": ["a"]})
    entry = json_lines(stream)[0]
    assert entry["payload"] == "job"
    assert entry["priority"] == 1.5
    assert entry["tags"] == ["a"]
    assert set(entry) == {"time", "level", "logger", "message", "payload", "priority", "tags"}


def test_json_extra_fields_do_not_override_the_standard_keys() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    log.info("real", extra={"level": "fake", "time": "fake", "logger": "fake"})
    entry = json_lines(stream)[0]
    assert (entry["level"], entry["logger"]) == ("INFO", "kamikaze.test")
    assert entry["time"] != "fake"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")


def test_json_odd_extra_values_become_strings() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    log.info(
        "odd",
        extra={
            "obj": object(),
            "raw": b"\xff",
            "nan": float("nan"),
            "int_keys": {1: "one"},
            "unprintable": Unprintable(),
        },
    )
    entry = json_lines(stream)[0]
    assert entry["obj"].startswith("<object object at")
    assert entry["raw"] == "b'\\xff'"
    assert entry["nan"] == "nan"
    assert entry["int_keys"] == {"1": "one"}
    assert entry["unprintable"].startswith("<tests.unit.test_logs.Unprintable object at")


def test_json_survives_a_message_that_cannot_be_formatted() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    log.info("%d items", "many")
    assert json_lines(stream)[0]["message"] == "%d items % ('many',)"


def test_json_lone_surrogates_give_valid_utf8_json(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    payload = b"job-\xff\xfe".decode("utf-8", "surrogateescape")
    logs.configure("info", "json")
    log.info("payload %s", payload, extra={"payload": payload})
    line = capsysbinary.readouterr().err.decode("utf-8")
    entry = json.loads(line)
    assert entry["message"] == f"payload {payload}"
    assert entry["payload"].encode("utf-8", "surrogateescape") == b"job-\xff\xfe"


def test_last_configure_wins() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure("info", "json", stream=first)
    logs.configure("info", "human", stream=second)
    log.info("where")
    assert first.getvalue() == ""
    assert second.getvalue().endswith(" INFO kamikaze.test: where\n")


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        logs.configure("info", "xml")


def test_importing_logs_does_not_import_prometheus_client() -> None:
    code = "import sys, kamikaze.logs; assert 'prometheus_client' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
