"""Output formats of `kamikaze list`: table (terminal), plain (scripts), JSON."""

from __future__ import annotations

import json
import re

import pytest

from kamikaze import output
from kamikaze.package import MAX_EXPIRE_TEXT, MAX_EXPIRE_TIME, Package

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


# Whatever is in Redis: expire times and scores past what a date or a column can show ------

LAST_SECOND = MAX_EXPIRE_TEXT
EXTREMES = [
    # member, score, expire time shown, TTL shown at NOW
    (f"{MAX_EXPIRE_TIME}:last", 1, LAST_SECOND, f"{MAX_EXPIRE_TIME - NOW:.3f}"),
    (f"{MAX_EXPIRE_TIME + 1}:after", 1, f">{LAST_SECOND}", f"{MAX_EXPIRE_TIME + 1 - NOW:.3f}"),
    ("1e17:far", 9, f">{LAST_SECOND}", "1e+17"),
    ("1e300:x", 1, f">{LAST_SECOND}", "1e+300"),
    ("-1e300:past", 1, "<0001-01-01T00:00:00", "-1e+300"),
    ("-62135596800:first", 1, "0001-01-01T00:00:00", f"{-62135596800 - NOW:.3f}"),
    ("1e-300:tiny", 1, "1970-01-01T00:00:00", f"{-NOW:.3f}"),
    ("-0.5:half", 1, "1969-12-31T23:59:59", f"{-0.5 - NOW:.3f}"),
    (":huge", 1e300, "never", "inf"),
    (":tiny", -1e300, "never", "inf"),
]


@pytest.mark.parametrize(("member", "score", "expire", "ttl"), EXTREMES)
def test_any_expire_time_is_shown_in_every_format(
    member: str, score: float, expire: str, ttl: str
) -> None:
    package = Package.from_member(member, score)
    shown = [package.payload, expire, ttl]
    assert output.plain([package], NOW).split("\t") == [repr(float(score)), *shown]
    assert cells(output.table([package], NOW).splitlines()[1])[1:] == shown
    [item] = strict_json(output.as_json([package], NOW))  # type: ignore[misc]
    assert item["expire_time"] == package.expire_time
    assert item["priority"] == score


def test_the_last_second_shown_is_the_latest_expire_time() -> None:
    assert output.utc_text(MAX_EXPIRE_TIME) == MAX_EXPIRE_TEXT == "9999-12-31T23:59:59"
