"""JSON lines for `kamikaze push -`."""

from __future__ import annotations

import pytest

from kamikaze.lines import BadLine, batches, parse_line


def test_a_good_line() -> None:
    assert parse_line('{"payload": "a:b", "ttl": 1.5, "priority": -2}', 1) == ("a:b", 1.5, -2.0)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"ttl": 1, "priority": 1}', "payload is missing"),
        ('{"payload": 3, "ttl": 1, "priority": 1}', "payload must be a string"),
        ('{"payload": "p", "ttl": 0, "priority": 1}', "ttl must be a finite number > 0"),
        ('{"payload": "p", "ttl": "10", "priority": 1}', "ttl must be a finite number > 0"),
        ('{"payload": "p", "ttl": true, "priority": 1}', "ttl must be a finite number > 0"),
        ('{"payload": "p", "ttl": 1e17, "priority": 1}', "TTL 1e\\+17 puts the expire time past"),
        ('{"payload": "p", "ttl": 1, "priority": NaN}', "priority must be a finite number"),
        ('{"payload": "p", "ttl": 1}', "priority is missing"),
        ('{"payload": "p", "priority": 1}', "ttl is missing"),
        ('{"payload": "p", "ttl": 1, "priority": null}', "priority must be a finite number"),
    ],
)
def test_a_bad_line_names_its_number_and_why(line: str, reason: str) -> None:
    with pytest.raises(BadLine, match=f"^line 7: {reason}"):
        parse_line(line, 7)


def test_batches_skip_blank_lines_and_keep_order() -> None:
    lines = [f'{{"payload": "p{i}", "ttl": 1, "priority": {i}}}\n' for i in range(5)]
    lines.insert(2, "\n")
    assert [[p for p, _, _ in batch] for batch in batches(lines, 2)] == [
        ["p0", "p1"],
        ["p2", "p3"],
        ["p4"],
    ]


def test_a_bad_line_stops_before_its_batch_is_yielded() -> None:
    lines = ['{"payload": "a", "ttl": 1, "priority": 1}'] * 3 + ["oops"]
    produced = []
    with pytest.raises(BadLine, match=r"^line 4: "):
        for batch in batches(lines, 2):
            produced.append(batch)
    assert len(produced) == 1  # lines 1-2; the batch of lines 3-4 is never yielded


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"payload": "p", "ttl": 1' + "0" * 309 + ', "priority": 1}', "ttl must be a finite"),
        ('{"payload": "p", "ttl": 1, "priority": 1' + "0" * 309 + "}", "priority must be a finite"),
        ('{"payload": "\\ud800", "ttl": 1, "priority": 1}', "payload has a lone surrogate"),
        (b'{"payload": "\xff", "ttl": 1, "priority": 1}', "not UTF-8"),
    ],
    ids=["309-digit ttl", "309-digit priority", "lone surrogate", "invalid UTF-8"],
)
def test_a_line_that_once_crashed_is_a_bad_line(line: str | bytes, reason: str) -> None:
    with pytest.raises(BadLine, match=f"^line 3: {reason}") as raised:
        parse_line(line, 3)
    assert len(str(raised.value)) < 120  # a huge number is shortened, not echoed whole


def test_an_escaped_byte_in_a_payload_round_trips_as_list_json_shows_it() -> None:
    # `list --json` shows a payload byte that is not UTF-8 (0xff) as "\udcff".
    assert parse_line('{"payload": "a\\udcff", "ttl": 1, "priority": 1}', 1)[0] == "a\udcff"
