"""Output formats of `kamikaze list`: table (terminal), plain (scripts), JSON."""

from __future__ import annotations

import json
import re

from kamikaze import output
from kamikaze.package import Package

NOW = 1795824900.0
EXPIRES = 1795824903.994348  # 2026-11-28T00:15:03.994348 UTC, 3.994 s after NOW
LIVE = Package.create("job", 1, EXPIRES)
FOREVER = Package.create("forever", 5.5, None)


def cells(line: str) -> list[str]:
    return re.split(r" {2,}", line.strip())


def test_table_headers_alone_for_an_empty_queue() -> None:
    assert output.table([], NOW) == "Score  Payload  Expire Time  TTL (secs)"


def test_table_headers_are_the_column_titles() -> None:
    first_line = output.table([LIVE], NOW).splitlines()[0]
    assert cells(first_line) == ["Score", "Payload", "Expire Time", "TTL (secs)"]


def test_table_row_shows_utc_expire_time_and_ttl_with_three_decimals() -> None:
    row = output.table([LIVE], NOW).splitlines()[1]
    assert cells(row) == ["1.0", "job", "2026-11-28T00:15:03", "3.994"]


def test_table_columns_are_aligned() -> None:
    lines = output.table([LIVE, Package.create("a much longer payload", 10, EXPIRES)], NOW)
    header, first, second = lines.splitlines()
    column = header.index("Expire Time")
    assert first.index("2026") == second.index("2026") == column


def test_table_keeps_order_given() -> None:
    lines = output.table([LIVE, FOREVER], NOW).splitlines()
    assert [cells(line)[1] for line in lines[1:]] == ["job", "forever"]


def test_table_never_expiring_shows_never_and_inf() -> None:
    row = output.table([FOREVER], NOW).splitlines()[1]
    assert cells(row) == ["5.5", "forever", "never", "inf"]


def test_table_shows_negative_priorities() -> None:
    row = output.table([Package.create("x", -3, None)], NOW).splitlines()[1]
    assert cells(row)[0] == "-3.0"


def test_table_escapes_control_characters() -> None:
    evil = Package.create("a\x1b[2Jb\rc\nd\te", 1, None)
    text = output.table([evil], NOW)
    assert "\x1b" not in text
    assert "\r" not in text
    assert "\t" not in text
    assert len(text.splitlines()) == 2  # the newline did not start another row
    assert "a\\x1b[2Jb\\rc\\nd\\te" in text


def test_table_keeps_printable_unicode() -> None:
    assert "grüße 🚀" in output.table([Package.create("grüße 🚀", 1, None)], NOW)


def test_table_payload_with_colons() -> None:
    package = Package.from_member(f"{EXPIRES}:a:b:c", 2)
    assert cells(output.table([package], NOW).splitlines()[1])[1] == "a:b:c"


def test_plain_is_tab_separated_without_headers() -> None:
    text = output.plain([LIVE, FOREVER], NOW)
    assert text.splitlines() == [
        "1.0\tjob\t2026-11-28T00:15:03\t3.994",
        "5.5\tforever\tnever\tinf",
    ]
    assert "Score" not in text


def test_plain_empty_is_empty() -> None:
    assert output.plain([], NOW) == ""


def test_plain_ttl_negative_when_already_expired() -> None:
    assert output.plain([LIVE], EXPIRES + 1).split("\t")[3] == "-1.000"


def test_as_json_objects_top_first() -> None:
    assert json.loads(output.as_json([LIVE, FOREVER], NOW)) == [
        {"payload": "job", "priority": 1.0, "expire_time": EXPIRES, "ttl": EXPIRES - NOW},
        {"payload": "forever", "priority": 5.5, "expire_time": None, "ttl": None},
    ]


def test_as_json_never_expiring_is_null() -> None:
    text = output.as_json([FOREVER], NOW)
    assert '"expire_time": null' in text
    assert '"ttl": null' in text


def test_as_json_empty_list() -> None:
    assert json.loads(output.as_json([], NOW)) == []


def test_as_json_keeps_payload_exactly() -> None:
    payload = 'a:b "quoted" \x1b\n grüße'
    [item] = json.loads(output.as_json([Package.create(payload, 1, None)], NOW))
    assert item["payload"] == payload


def test_as_json_is_one_line() -> None:
    assert "\n" not in output.as_json([LIVE, Package.create("x\ny", 1, None)], NOW)


def strict_json(text: str) -> object:
    def reject(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=reject)


def test_as_json_is_strict_json() -> None:
    assert len(strict_json(output.as_json([LIVE, FOREVER], NOW))) == 2  # type: ignore[arg-type]


def test_as_json_is_strict_json_for_infinite_score() -> None:
    package = Package.from_member(":x", b"inf")
    assert len(strict_json(output.as_json([package], NOW))) == 1  # type: ignore[arg-type]
