"""Package: the member format `<expire_time>:<payload>` of docs/contract.rst §1."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kamikaze.package import (
    MAX_EXPIRE_TIME,
    Package,
    UnparseableMember,
    as_bytes,
    canonical_expiry,
    encode_member,
    expire_text,
)
from tests.members import MEMBERS, NEVER, UNPARSEABLE


def test_encode_member_writes_six_decimals_as_repr_gives_them() -> None:
    assert encode_member("job", 1795824903.994348) == "1795824903.994348:job"


def test_encode_member_rounds_to_the_microsecond() -> None:
    assert encode_member("job", 1795824903.9943482) == "1795824903.994348:job"


def test_a_time_whose_sixth_decimal_is_0_moves_on_by_a_microsecond() -> None:
    # repr() would drop the 0 and 0.1.x could not rebuild the member.
    assert encode_member("job", 1795824903.5) == "1795824903.500001:job"
    assert encode_member("job", 1795824903.99434) == "1795824903.994341:job"


def test_encode_member_never_expiring_has_empty_expiry() -> None:
    assert encode_member("job", None) == ":job"


def test_create_builds_the_member_and_float_score() -> None:
    package = Package.create("job", 3, 100.0)
    assert package.raw_entry == "100.000001:job"
    assert package.score == 3.0
    assert isinstance(package.score, float)


def test_from_member_splits_at_first_colon() -> None:
    package = Package.from_member("100.000000:a:b::c", 2)
    assert package.payload == "a:b::c"
    assert package.expire_time == 100.0
    assert package.score == 2.0


def test_from_member_empty_payload() -> None:
    assert Package.from_member("100.000000:", 1).payload == ""


def test_from_member_empty_expiry_never_expires() -> None:
    package = Package.from_member(":forever", 1)
    assert package.expire_time is None
    assert package.payload == "forever"


def test_from_member_accepts_score_as_bytes_or_text() -> None:
    assert Package.from_member("1.0:x", b"-2.5").score == -2.5
    assert Package.from_member("1.0:x", "7").score == 7.0


def test_unicode_payload_round_trips() -> None:
    package = Package.create("grüße 🚀 日本", 1, 5.0)
    decoded = Package.from_member(package.member, 1)
    assert decoded.payload == "grüße 🚀 日本"
    assert package.member == "5.000001:grüße 🚀 日本".encode()


def test_bytes_member_is_decoded_as_utf8() -> None:
    package = Package.from_member("5.000000:ü:x".encode(), 1)
    assert package.payload == "ü:x"
    assert package.raw_entry == "5.000000:ü:x"


def test_non_utf8_bytes_round_trip_through_member() -> None:
    raw = b"5.000000:\xff\xfe bad \x80"
    package = Package.from_member(raw, 1)
    assert package.member == raw
    assert package.expire_time == 5.0


def test_0_1_x_member_with_str_float_expiry() -> None:
    package = Package.from_member("1795824903.994348:payload", 1)
    assert package.expire_time == 1795824903.994348
    assert package.payload == "payload"


def test_0_1_x_member_with_exponent_expiry() -> None:
    package = Package.from_member("1.7958e9:x", 1)
    assert package.expire_time == 1795800000.0
    assert package.payload == "x"


@pytest.mark.parametrize("expiry", ["12", "12.", ".5", "+3.25", "-1", "1E3", "2e-1"])
def test_plain_decimal_expiries_parse(expiry: str) -> None:
    assert Package.from_member(f"{expiry}:x", 1).expire_time == float(expiry)


@pytest.mark.parametrize(
    "member",
    [
        "garbage",
        "",
        "abc:x",
        "nan:x",
        "NaN:x",
        "inf:x",
        "-inf:x",
        "infinity:x",
        "1e999:x",
        " 12:x",
        "12 :x",
        "0x10:x",
        "1_000:x",
        ".:x",
        "1e:x",
        "١٢:x",  # Arabic-Indic digits: float() accepts them, the Lua side does not
    ],
)
def test_garbage_raises_unparseable(member: str) -> None:
    with pytest.raises(UnparseableMember):
        Package.from_member(member, 1)


def test_garbage_bytes_raise_unparseable() -> None:
    with pytest.raises(UnparseableMember):
        Package.from_member(b"\xff\xfe", 1)


def test_unparseable_member_is_a_value_error() -> None:
    assert issubclass(UnparseableMember, ValueError)


def test_ttl_is_seconds_left() -> None:
    assert Package.create("x", 1, 110.0).ttl(100.0) == 10.0


def test_ttl_is_negative_once_expired() -> None:
    assert Package.create("x", 1, 100.0).ttl(104.5) == -4.5


def test_ttl_of_never_expiring_is_none() -> None:
    assert Package.create("x", 1, None).ttl(100.0) is None


def test_not_expired_before_expire_time() -> None:
    assert not Package.create("x", 1, 100.0).expired(99.999)


def test_expired_exactly_at_expire_time() -> None:
    assert Package.create("x", 1, 100.0).expired(100.0)


def test_expired_after_expire_time() -> None:
    assert Package.create("x", 1, 100.0).expired(200.0)


def test_never_expiring_is_never_expired() -> None:
    assert not Package.create("x", 1, None).expired(1e12)


def test_ttl_defaults_to_the_local_clock() -> None:
    assert Package.create("x", 1, 1.0).expired()
    assert not Package.create("x", 1, 1e12).expired()


def test_priority_is_score() -> None:
    package = Package.create("x", 4.5, None)
    assert package.priority == package.score == 4.5


def test_equal_when_member_and_score_equal() -> None:
    a = Package.from_member("1.000000:x", 1)
    b = Package.from_member(b"1.000000:x", "1")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_not_equal_when_score_differs() -> None:
    assert Package.from_member("1.000000:x", 1) != Package.from_member("1.000000:x", 2)


def test_not_equal_when_expiry_text_differs() -> None:
    # same payload and same expiry value, but a different member string
    assert Package.from_member("1.0:x", 1) != Package.from_member("1.000000:x", 1)


def test_not_equal_when_payload_differs() -> None:
    assert Package.create("x", 1, 1.0) != Package.create("y", 1, 1.0)


def test_not_equal_to_other_types() -> None:
    assert Package.create("x", 1, 1.0) != "1.000000:x"


def test_repr_shows_payload_priority_and_expiry() -> None:
    assert repr(Package.create("a:b", 2, 5.0)) == (
        "Package(payload='a:b', priority=2.0, expire_time=5.0)"
    )


def test_repr_of_never_expiring() -> None:
    assert "expire_time=None" in repr(Package.create("x", 1, None))


def test_package_is_immutable() -> None:
    package = Package.create("x", 1, None)
    with pytest.raises(AttributeError):
        package.payload = "y"  # type: ignore[misc]


@pytest.mark.parametrize(("member", "expected"), MEMBERS, ids=lambda case: repr(case))
def test_the_member_table(member: bytes, expected: float | str) -> None:
    """The Python half of tests/members.py (the Lua half: test_member_format.py)."""
    if expected == UNPARSEABLE:
        with pytest.raises(UnparseableMember):
            Package.from_member(member, 1)
        return
    package = Package.from_member(member, 1)
    assert package.expire_time == (None if expected == NEVER else expected)
    assert package.member == member
    assert as_bytes(package.payload) == member.split(b":", 1)[1]


# The expire text (docs/data.rst): 0.1.x rebuilds a member as
# '{}:{}'.format(float(text), payload) to remove it, so the text must be what
# repr() gives; and equal priorities must stay in expiry order by their bytes.
REACHABLE = st.floats(min_value=1e9, max_value=9_999_999_999.0)  # 2001 to 2286
ANY_TIME = st.floats(min_value=1e9, max_value=MAX_EXPIRE_TIME)


@given(ANY_TIME)
def test_every_expire_text_survives_0_1_x_round_trip(expire_time: float) -> None:
    text, value = canonical_expiry(expire_time)
    assert repr(float(text)) == text
    assert float(text) == value
    member = encode_member("job", expire_time)
    assert "{}:{}".format(float(member.split(":")[0]), "job") == member  # 0.1.x's raw_entry


@given(REACHABLE, REACHABLE)
def test_until_2286_the_bytes_order_is_the_expiry_order(first: float, second: float) -> None:
    early, late = sorted([first, second])
    early_text, late_text = expire_text(early), expire_text(late)
    assert len(early_text) == len(late_text) == 17  # ten digits, a point, six decimals
    assert early_text <= late_text
    assert f"{early_text}:b".encode() <= f"{late_text}:a".encode() or early_text == late_text


@given(REACHABLE)
def test_the_expire_time_moves_by_microseconds_at_most(expire_time: float) -> None:
    _, value = canonical_expiry(expire_time)
    assert -2e-6 <= value - expire_time < 1e-5
