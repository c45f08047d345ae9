"""Queue against fakeredis (with Lua): ordering, expiry, removal, others' data."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest
from redis.asyncio.client import PubSub

import kamikaze.operations
import kamikaze.queue
import kamikaze.sweep
from kamikaze.keys import companion_key
from kamikaze.package import MAX_EXPIRE_TIME, check_ttl
from kamikaze.queue import Queue

KEY = "kamikaze"


@pytest.fixture
async def redis() -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    yield client
    await client.aclose()


@pytest.fixture
def queue(redis: fakeredis.FakeAsyncRedis) -> Queue:
    return Queue(redis, KEY)


@pytest.fixture
async def signals(redis: fakeredis.FakeAsyncRedis) -> AsyncIterator[PubSub]:
    pubsub = redis.pubsub()
    await pubsub.subscribe(KEY)
    confirmation = await pubsub.get_message(timeout=1)
    assert confirmation is not None and confirmation["type"] == "subscribe"
    yield pubsub
    await pubsub.aclose()


async def drain(pubsub: PubSub) -> list[bytes]:
    """The change signals published so far."""
    messages = []
    while (message := await pubsub.get_message(timeout=0.05)) is not None:
        messages.append(message["data"])
    return messages


async def members(redis: fakeredis.FakeAsyncRedis) -> list[bytes]:
    return list(await redis.zrange(KEY, 0, -1))


def past(seconds: float = 100) -> float:
    return time.time() - seconds


def future(seconds: float = 100) -> float:
    return time.time() + seconds


async def add(redis: fakeredis.FakeAsyncRedis, member: str | bytes, score: float) -> None:
    await redis.zadd(KEY, {member: score})


async def top_payload(queue: Queue) -> str | None:
    top = await queue.top()
    return None if top is None else top.payload


# push and top -------------------------------------------------------------------------------


async def test_top_of_empty_queue_is_none(queue: Queue) -> None:
    reading = await queue.read_top()
    assert reading.top is None
    assert reading.seconds_to_expiry() is None


async def test_push_then_top(queue: Queue) -> None:
    pushed = await queue.push("job", 60, 3)
    reading = await queue.read_top()
    assert reading.top == pushed
    assert reading.top is not None and reading.top.payload == "job"
    assert reading.top.priority == 3.0
    assert 59 < reading.top.ttl(reading.server_time) <= 60  # type: ignore[operator]


async def test_push_writes_the_documented_member(
    queue: Queue, redis: fakeredis.FakeAsyncRedis
) -> None:
    pushed = await queue.push("a:b", 60, 2)
    [member] = await members(redis)
    assert member == pushed.member
    assert member.decode() == f"{pushed.expire_time!r}:a:b"  # as 0.1.x rebuilds it
    assert len(member.split(b":")[0]) == 17  # fixed width: bytes order = expiry order
    assert await redis.zscore(KEY, member) == 2.0


async def test_push_expiry_from_the_server_clock(queue: Queue) -> None:
    pushed = await queue.push("job", 30, 1)
    server_now = await queue.server_time()
    assert pushed.expire_time is not None
    assert abs(pushed.expire_time - (server_now + 30)) < 1


async def test_push_never_expiring(queue: Queue, redis: fakeredis.FakeAsyncRedis) -> None:
    pushed = await queue.push("forever", None, 1)
    assert pushed.expire_time is None
    assert await members(redis) == [b":forever"]
    assert await queue.top() == pushed


async def test_lower_score_wins(queue: Queue) -> None:
    await queue.push("five", 60, 5)
    await queue.push("one", 60, 1)
    await queue.push("three", 60, 3)
    assert await top_payload(queue) == "one"
    assert [p.payload for p in await queue.packages()] == ["one", "three", "five"]


async def test_negative_priority_beats_zero(queue: Queue) -> None:
    await queue.push("zero", 60, 0)
    await queue.push("minus", 60, -3)
    assert await top_payload(queue) == "minus"


async def test_equal_scores_ordered_by_expiry(queue: Queue) -> None:
    await queue.push("late", 500, 1)
    await queue.push("early", 50, 1)
    await queue.push("middle", 100, 1)
    assert await top_payload(queue) == "early"
    assert [p.payload for p in await queue.packages()] == ["early", "middle", "late"]


async def test_push_returns_package_with_score(queue: Queue) -> None:
    package = await queue.push("job", 10, 2.5)
    assert (package.payload, package.priority) == ("job", 2.5)


def told(messages: list[bytes]) -> list[bytes]:
    """The one change signal among `messages`, split: new_message, its number,
    the server's clock, and the top's score and member (docs/data.rst)."""
    assert len(messages) == 1, messages
    parts = messages[0].split(b" ", 5)
    assert parts[0] == b"new_message" and parts[1].isdigit(), messages
    return parts


async def test_push_signals_once_with_the_new_top(queue: Queue, signals: PubSub) -> None:
    package = await queue.push("job", 10, 1)
    _, number, seconds, _, score, member = told(await drain(signals))
    assert (float(score), member) == (1.0, package.member)
    assert abs(int(seconds) - time.time()) < 5
    await queue.push("later", 10, 5)  # not the new top: the signal tells the top all the same
    _, next_number, _, _, _, still = told(await drain(signals))
    assert (int(next_number), still) == (int(number) + 1, package.member)


async def test_push_many_one_call_one_signal(
    queue: Queue, redis: fakeredis.FakeAsyncRedis, signals: PubSub
) -> None:
    pushed = await queue.push_many([("a", 10, 1), ("b", 10, 2), ("c", None, 3)])
    assert [p.payload for p in pushed] == ["a", "b", "c"]
    assert len(await members(redis)) == 3
    assert told(await drain(signals))[5] == pushed[0].member


async def test_push_many_empty_writes_and_signals_nothing(
    queue: Queue, redis: fakeredis.FakeAsyncRedis, signals: PubSub
) -> None:
    assert await queue.push_many([]) == []
    assert await members(redis) == []
    assert await drain(signals) == []


async def test_push_same_payload_twice_keeps_both(queue: Queue) -> None:
    await queue.push("dup", 10, 1)
    await queue.push("dup", 20, 2)
    assert [p.priority for p in await queue.packages()] == [1.0, 2.0]


async def test_push_unicode_and_non_utf8_payloads(queue: Queue) -> None:
    weird = b"\xff\xfe".decode("utf-8", "surrogateescape")
    await queue.push("grüße 🚀", 10, 1)
    await queue.push(weird, 10, 2)
    assert [p.payload for p in await queue.packages()] == ["grüße 🚀", weird]


@pytest.mark.parametrize("ttl", [0, -1, -0.5, math.nan, math.inf, -math.inf])
async def test_push_rejects_bad_ttl_and_writes_nothing(
    queue: Queue, redis: fakeredis.FakeAsyncRedis, signals: PubSub, ttl: float
) -> None:
    with pytest.raises(ValueError, match="TTL"):
        await queue.push("job", ttl, 1)
    assert await members(redis) == []
    assert await drain(signals) == []


@pytest.mark.parametrize("priority", [math.nan, math.inf, -math.inf])
async def test_push_rejects_non_finite_priority_and_writes_nothing(
    queue: Queue, redis: fakeredis.FakeAsyncRedis, signals: PubSub, priority: float
) -> None:
    with pytest.raises(ValueError, match="priority"):
        await queue.push("job", 10, priority)
    assert await members(redis) == []
    assert await drain(signals) == []


async def test_push_many_with_one_bad_item_writes_nothing(
    queue: Queue, redis: fakeredis.FakeAsyncRedis
) -> None:
    with pytest.raises(ValueError):
        await queue.push_many([("good", 10, 1), ("bad", 0, 1)])
    assert await members(redis) == []


@pytest.mark.parametrize("ttl", [1e17, 1e300, MAX_EXPIRE_TIME])
async def test_push_refuses_an_expire_time_past_year_9999_and_writes_nothing(
    queue: Queue, redis: fakeredis.FakeAsyncRedis, signals: PubSub, ttl: float
) -> None:
    with pytest.raises(ValueError, match="9999-12-31T23:59:59"):
        await queue.push("far", ttl, 1)
    with pytest.raises(ValueError, match="9999-12-31T23:59:59"):
        await queue.push_many([("good", 10, 1), ("far", ttl, 1)])
    assert await members(redis) == []
    assert await drain(signals) == []


def test_the_last_second_of_9999_is_still_an_expire_time() -> None:
    now = 1795824900.0
    check_ttl(MAX_EXPIRE_TIME - now, now)
    with pytest.raises(ValueError, match=r"^TTL 251606475899\.5 puts the expire time past "):
        check_ttl(MAX_EXPIRE_TIME - now + 0.5, now)


# remove ---------------------------------------------------------------------------------


async def test_remove_exact_payload_returns_count(queue: Queue) -> None:
    await queue.push("job", 10, 1)
    await queue.push("job", 20, 2)
    await queue.push("other", 10, 3)
    assert await queue.remove("job") == 2
    assert [p.payload for p in await queue.packages()] == ["other"]


async def test_remove_signals_once(queue: Queue, signals: PubSub) -> None:
    await queue.push_many([("job", 10, 1), ("job", 20, 2)])
    await drain(signals)
    await queue.remove("job")
    assert len(told(await drain(signals))) == 4  # the queue is empty: no top


async def test_remove_nothing_returns_zero_and_signals_nothing(
    queue: Queue, signals: PubSub
) -> None:
    await queue.push("job", 10, 1)
    await drain(signals)
    assert await queue.remove("nope") == 0
    assert await drain(signals) == []


async def test_remove_on_empty_queue(queue: Queue) -> None:
    assert await queue.remove("anything") == 0


async def test_remove_payload_with_colons(queue: Queue) -> None:
    await queue.push_many([("a:b", 10, 1), ("b", 10, 2), ("a:b:c", 10, 3)])
    assert await queue.remove("a:b") == 1
    assert [p.payload for p in await queue.packages()] == ["b", "a:b:c"]


async def test_remove_does_not_match_payload_suffix_after_a_colon(queue: Queue) -> None:
    await queue.push_many([("a:b", 10, 1), ("b", 10, 2)])
    assert await queue.remove("b") == 1
    assert [p.payload for p in await queue.packages()] == ["a:b"]


@pytest.mark.parametrize(
    ("target", "bystanders"),
    [
        ("a*", ["abc", "a", "ab*"]),
        ("a?", ["ab", "a"]),
        ("[ab]", ["a", "b"]),
        ("a[", ["a", "a[b"]),
        ("x]", ["x"]),
        ("back\\slash", ["backslash", "back\\\\slash"]),
        ("*", ["anything", ""]),
        ("\\", ["", "\\\\"]),
        ("", ["x"]),
    ],
)
async def test_remove_glob_characters_match_only_themselves(
    queue: Queue, target: str, bystanders: list[str]
) -> None:
    await queue.push_many([(p, 10, 1) for p in [target, *bystanders]])
    assert await queue.remove(target) == 1
    assert sorted(p.payload for p in await queue.packages()) == sorted(bystanders)


async def test_remove_walks_the_whole_set_in_steps_while_0_1_x_members_are_unindexed(
    queue: Queue, redis: fakeredis.FakeAsyncRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kamikaze.operations.REMOVE_WALK_COUNT", 2)
    await queue.push_many([("job" if i % 3 == 0 else f"x{i}", 10 + i, i) for i in range(30)])
    await add(redis, f"{future()}:job", 5)  # 0.1.x: in no index, so the queue is walked
    await add(redis, f"{future()}:a:job", 6)  # ends like one, but its payload is "a:job"
    assert await queue.remove("job") == 11
    assert len(await queue.packages()) == 21


async def test_remove_never_expiring_package(queue: Queue) -> None:
    await queue.push("forever", None, 1)
    assert await queue.remove("forever") == 1
    assert await queue.packages() == []


async def test_remove_leaves_others_data_with_same_payload(
    queue: Queue, redis: fakeredis.FakeAsyncRedis
) -> None:
    await add(redis, "garbage:job", 1)
    await queue.push("job", 10, 1)
    assert await queue.remove("job") == 1
    assert await members(redis) == [b"garbage:job"]


async def test_remove_non_utf8_payload(queue: Queue, redis: fakeredis.FakeAsyncRedis) -> None:
    weird = b"\xff*".decode("utf-8", "surrogateescape")
    await queue.push_many([(weird, 10, 1), ("\ufffd*", 10, 2)])
    assert await queue.remove(weird) == 1
    assert [p.payload for p in await queue.packages()] == ["\ufffd*"]


# packages ---------------------------------------------------------------------------------


async def test_packages_of_empty_queue(queue: Queue) -> None:
    assert await queue.packages() == []


async def test_packages_skip_expired_without_deleting(
    queue: Queue, redis: fakeredis.FakeAsyncRedis, signals: PubSub
) -> None:
    old = f"{past():.6f}:old"
    await add(redis, old, 0)
    await queue.push("live", 10, 1)
    await drain(signals)
    assert [p.payload for p in await queue.packages()] == ["live"]
    assert await redis.zscore(KEY, old) == 0.0
    assert await drain(signals) == []


async def test_packages_include_never_expiring(queue: Queue) -> None:
    await queue.push("forever", None, 2)
    await queue.push("soon", 10, 1)
    assert [p.payload for p in await queue.packages()] == ["soon", "forever"]


async def test_packages_pages_through_a_large_queue(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kamikaze.operations.PAGE_SIZE", 3)
    await queue.push_many([(f"p{i}", 10, i) for i in range(8)])
    assert [p.payload for p in await queue.packages()] == [f"p{i}" for i in range(8)]


# top and expiry ---------------------------------------------------------------------------


async def test_top_deletes_expired_top_and_returns_next(
    queue: Queue, redis: fakeredis.FakeAsyncRedis, signals: PubSub
) -> None:
    old = f"{past():.6f}:old"
    await add(redis, old, 0)
    await queue.push("live", 10, 5)
    await drain(signals)
    assert await top_payload(queue) == "live"
    assert await redis.zscore(KEY, old) is None
    assert told(await drain(signals))[5].endswith(b":live")


async def test_top_deletes_every_expired_member_above_the_top(
    queue: Queue, redis: fakeredis.FakeAsyncRedis
) -> None:
    for i in range(5):
        await add(redis, f"{past(10 + i):.6f}:old{i}", i)
    await queue.push("live", 10, 9)
    await add(redis, f"{past():.6f}:below", 10)
    assert await top_payload(queue) == "live"
    assert len(await members(redis)) == 2  # live, and the expired one below the top


async def test_top_with_only_expired_members_is_none(
    queue: Queue, redis: fakeredis.FakeAsyncRedis
) -> None:
    await add(redis, f"{past():.6f}:old", 1)
    assert await queue.top() is None
    assert await members(redis) == []


async def test_top_beyond_one_script_budget(
    queue: Queue, redis: fakeredis.FakeAsyncRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kamikaze.queue.TOP_BUDGET", 4)
    for i in range(6):
        await add(redis, f"{past():.6f}:old{i}", i)
        await add(redis, f"garbage{i}", i)
    await queue.push("live", 10, 100)
    assert await top_payload(queue) == "live"
    remaining = await members(redis)
    assert sorted(m for m in remaining if m.startswith(b"garbage")) == [
        f"garbage{i}".encode() for i in range(6)
    ]
    assert len(remaining) == 7  # every expired one deleted, every garbage one kept


async def test_top_reading_seconds_to_expiry(queue: Queue) -> None:
    await queue.push("job", 30, 1)
    reading = await queue.read_top()
    assert 29 < reading.seconds_to_expiry() <= 30  # type: ignore[operator]


async def test_top_reading_never_expiring_has_no_expiry(queue: Queue) -> None:
    await queue.push("forever", None, 1)
    assert (await queue.read_top()).seconds_to_expiry() is None


async def test_top_does_not_signal_when_nothing_expired(queue: Queue, signals: PubSub) -> None:
    await queue.push("job", 10, 1)
    await drain(signals)
    await queue.top()
    assert await drain(signals) == []


async def test_server_time_is_close_to_now(queue: Queue) -> None:
    assert abs(await queue.server_time() - time.time()) < 5


# others' data -----------------------------------------------------------------------------

GARBAGE = ["garbage", "abc:x", "nan:x", "1e999:x", " 12:x", "0x10:x"]


async def test_unparseable_members_skipped_by_top_and_never_deleted(
    queue: Queue, redis: fakeredis.FakeAsyncRedis
) -> None:
    for member in GARBAGE:
        await add(redis, member, 0)
    await queue.push("live", 10, 1)
    assert await top_payload(queue) == "live"
    assert await top_payload(queue) == "live"
    assert len(await members(redis)) == len(GARBAGE) + 1


async def test_unparseable_members_skipped_by_packages(
    queue: Queue, redis: fakeredis.FakeAsyncRedis
) -> None:
    for member in GARBAGE:
        await add(redis, member, 0)
    await queue.push("live", 10, 1)
    assert [p.payload for p in await queue.packages()] == ["live"]
    assert len(await members(redis)) == len(GARBAGE) + 1


async def test_only_unparseable_members_means_empty(
    queue: Queue, redis: fakeredis.FakeAsyncRedis
) -> None:
    await add(redis, "garbage", 0)
    assert await queue.top() is None
    assert await queue.packages() == []
    assert await members(redis) == [b"garbage"]


async def test_unparseable_member_warned_once(
    queue: Queue, redis: fakeredis.FakeAsyncRedis, caplog: pytest.LogCaptureFixture
) -> None:
    await add(redis, "garbage", 0)
    await add(redis, "abc:x", 0)
    await queue.push("live", 10, 1)
    for _ in range(3):
        await queue.top()
        await queue.packages()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert sum("'garbage'" in w for w in warnings) == 1
    assert sum("'abc:x'" in w for w in warnings) == 1


async def test_non_utf8_unparseable_member_skipped(
    queue: Queue, redis: fakeredis.FakeAsyncRedis, caplog: pytest.LogCaptureFixture
) -> None:
    await add(redis, b"\xff\xfe", 0)
    await queue.push("live", 10, 1)
    assert await top_payload(queue) == "live"
    assert [p.payload for p in await queue.packages()] == ["live"]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


# 0.1.x data --------------------------------------------------------------------------------


async def test_0_1_x_members_are_read_and_ordered(
    queue: Queue, redis: fakeredis.FakeAsyncRedis
) -> None:
    await add(redis, str(future()) + ":five", 5)
    await add(redis, str(future()) + ":one", 1)
    await queue.push("three", 100, 3)
    assert await top_payload(queue) == "one"
    assert [p.payload for p in await queue.packages()] == ["one", "three", "five"]


async def test_0_1_x_member_read_exactly(queue: Queue, redis: fakeredis.FakeAsyncRedis) -> None:
    expire = future()
    await add(redis, str(expire) + ":payload", 2)
    top = await queue.top()
    assert top is not None
    assert (top.payload, top.priority, top.expire_time) == ("payload", 2.0, expire)
    assert top.raw_entry == f"{expire!r}:payload"


async def test_0_1_x_member_removed(queue: Queue, redis: fakeredis.FakeAsyncRedis) -> None:
    await add(redis, str(future()) + ":payload", 1)
    await add(redis, str(future()) + ":other", 2)
    assert await queue.remove("payload") == 1
    assert [p.payload for p in await queue.packages()] == ["other"]


async def test_expired_0_1_x_member_deleted_by_top(
    queue: Queue, redis: fakeredis.FakeAsyncRedis
) -> None:
    old = str(past()) + ":payload"
    await add(redis, old, 1)
    await add(redis, str(future()) + ":next", 2)
    assert await top_payload(queue) == "next"
    assert await redis.zscore(KEY, old) is None


async def test_0_1_x_exponent_expiry_in_the_past_is_expired(
    queue: Queue, redis: fakeredis.FakeAsyncRedis
) -> None:
    await add(redis, "1.5e9:ancient", 1)  # 2017
    await queue.push("live", 10, 2)
    assert [p.payload for p in await queue.packages()] == ["live"]
    assert await top_payload(queue) == "live"
    assert await redis.zscore(KEY, "1.5e9:ancient") is None


async def test_queue_key_is_used(redis: fakeredis.FakeAsyncRedis) -> None:
    await Queue(redis, "other").push("job", 10, 1)
    assert await redis.zcard("other") == 1
    assert await redis.zcard(KEY) == 0
    assert await Queue(redis, KEY).packages() == []


# helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("kamikaze", "{kamikaze}:x"),
        ("a{b}c", "a{b}c:x"),
        ("{kamikaze}", "{kamikaze}:x"),
        ("a{b", "{a{b}:x"),
    ],
)
def test_companion_key(key: str, expected: str) -> None:
    assert companion_key(key, "x") == expected


@pytest.mark.parametrize("key", ["a}b", "a{}b", "}"])
def test_companion_key_rejects_brace_without_tag(key: str) -> None:
    with pytest.raises(ValueError, match="hash tag"):
        companion_key(key, "x")


# Walks that go on after an entry, not a rank (docs/guarantees.rst) ---------------


def inject_after(queue: Queue, name: str, write: Any) -> None:
    """Run `write(args)` after each call of the script `name`."""
    original = queue._script(name)

    async def wrapped(keys: Any, args: Any) -> Any:
        result = await original(keys=keys, args=args)
        await write(args)
        return result

    queue._scripts[name] = wrapped  # type: ignore[assignment]


async def test_a_listing_under_writes_between_pages_repeats_and_misses_nothing(
    queue: Queue, redis: fakeredis.FakeAsyncRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kamikaze.operations, "PAGE_SIZE", 10)
    await queue.push_many((f"filler-{i:02d}", 600, 10) for i in range(35))
    other = Queue(redis, KEY)
    rounds = iter(range(100))

    async def churn(args: Any) -> None:
        step = next(rounds)
        if step % 3 == 0:  # ranks shift down: 15 more above
            await other.push_many((f"churn-{step}-{i}", 600, 0) for i in range(15))
        elif step % 3 == 1:  # ranks shift up: they go again
            for package in await other.packages():
                if package.payload.startswith("churn-"):
                    await redis.zrem(KEY, package.member)
        else:  # the entry the listing stopped at goes
            if args[1]:
                await redis.zrem(KEY, args[1])

    inject_after(queue, "page", churn)
    listed = await queue.packages()
    fillers = [p.payload for p in listed if p.payload.startswith("filler-")]
    assert len(listed) == len(set(listed))
    assert sorted(set(fillers)) == sorted(fillers)
    # Every filler that stayed throughout is there (the injected removes only
    # take the entry a page ended at, which the listing had shown already).
    assert len(fillers) == 35


async def test_a_remove_goes_on_after_an_entry_while_others_remove_before_it(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kamikaze.operations, "REMOVE_BATCH", 5)
    longer = "x\0!"  # sorts inside the range of "x", before its own entries
    await queue.push_many((longer, 600 + i, 5) for i in range(30))
    await queue.push_many([("x", 600, 1), ("x", 601, 2), ("x", 602, 3)])
    other = Queue(queue.redis, KEY)
    done = []

    async def remove_longer(args: Any) -> None:
        if args[1] == b"x" and not done:  # args[0]: the call's token
            done.append(await other.remove(longer))

    inject_after(queue, "remove", remove_longer)
    assert await queue.remove("x") == 3
    assert done == [30]
    assert await queue.packages() == []


async def test_background_steps_rest_for_their_duty_cycle() -> None:
    """A step that kept Redis busy for d seconds is followed by d * (1/duty - 1) of rest."""
    clock = iter([100.0, 100.03])
    rests: list[float] = []

    async def sleep(seconds: float) -> None:
        rests.append(seconds)

    async def step() -> str:
        return "done"

    assert await kamikaze.sweep.paced(step, lambda: next(clock), sleep) == "done"
    assert rests == [pytest.approx(0.03 * (1 / kamikaze.sweep.DUTY_CYCLE - 1))]


async def test_the_expiry_read_is_sent_to_arrive_at_the_expire_time() -> None:
    """Covers: docs/guarantees.rst (on time, never early). The read of an
    expired top leaves when a request sent now reaches Redis at the expire
    time (the server's clock at its latest), not a whole reply's transit
    later; Redis itself decides what has expired, so this is never early."""
    from kamikaze.follower import until_expired
    from kamikaze.package import Package
    from kamikaze.queue import TopReading

    now = time.monotonic()
    transit = 0.2  # the request left 0.2 s before its reply came back
    top = Package.create("job", priority=1, expire_time=1000.3)
    reading = TopReading(top, server_time=1000.0, sent_at=now - transit, read_at=now)

    await asyncio.wait_for(until_expired(reading), 5)

    assert reading.top_expired()
    assert reading.seconds_to_expiry() > 0.1  # by the earliest clock it is still 0.2 s away
