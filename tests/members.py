"""One table of members, good and bad, that both parsers of the member format
are held to: Package.from_member in Python (tests/unit/test_package.py) and
common.lua's split_member/parse_expiry through a real server
(tests/integration/test_member_format.py). Each case: the member's bytes, and
the expire time it holds (a float), NEVER, or UNPARSEABLE; the payload is
everything after the first colon."""

from __future__ import annotations

NEVER = "never"
UNPARSEABLE = "unparseable"

MEMBERS: list[tuple[bytes, float | str]] = [
    (b"1795824903.994348:job", 1795824903.994348),  # as 0.1.x and this version write it
    (b"001795824903.994348:job", 1795824903.994348),  # zero-padded, as 1.0.dev wrote it
    (b"1795824903.99434:job", 1795824903.99434),  # str(float) drops trailing zeros
    (b"253402300799.000000:last", 253402300799.0),  # the last second of year 9999
    (b":forever", NEVER),
    (b"100:a:b::c", 100.0),  # the payload keeps its colons
    (b"5:", 5.0),  # an empty payload
    (b"5:a\x00b", 5.0),  # NUL in a payload
    (b"5:\xff\xfe", 5.0),  # a payload that is not UTF-8
    (b"1e10:x", 1e10),
    (b"1E3:x", 1000.0),
    (b".5:x", 0.5),
    (b"5.:x", 5.0),
    (b"+5:x", 5.0),
    (b"-5:x", -5.0),
    (b"1.5e-3:x", 0.0015),
    (b"no-colon", UNPARSEABLE),
    (b"abc:x", UNPARSEABLE),
    (b"nan:x", UNPARSEABLE),
    (b"inf:x", UNPARSEABLE),
    (b"-inf:x", UNPARSEABLE),
    (b"1e400:x", UNPARSEABLE),  # not finite
    (b"0x10:x", UNPARSEABLE),
    (b" 5:x", UNPARSEABLE),
    (b"5 :x", UNPARSEABLE),
    (b"1_000:x", UNPARSEABLE),
    (b"1e:x", UNPARSEABLE),
    (b"e5:x", UNPARSEABLE),
    (b".:x", UNPARSEABLE),
    (b"--5:x", UNPARSEABLE),
    (b"5e+:x", UNPARSEABLE),
    (b"5..0:x", UNPARSEABLE),
    ("١٢:x".encode(), UNPARSEABLE),  # Arabic-Indic digits: float() takes them
]
