"""The member format on the Lua side (kamikaze/lua/common.lua): its parser
held to the same table as the Python one (tests/members.py), through a real
server; and what push.lua writes is what kamikaze.package writes.

Covers: kamikaze/lua/common.lua, kamikaze/lua/push.lua, kamikaze/package.py."""

from __future__ import annotations

import random
from typing import Any

import pytest

from kamikaze.package import MAX_EXPIRE_TIME, canonical_expiry, encode_member, expire_text
from kamikaze.queue import Queue, script_source
from tests.members import MEMBERS, NEVER, UNPARSEABLE

# A harness around common.lua's own functions: what each member parses to.
HARNESS = """
local out = {}
for _, member in ipairs(ARGV) do
  local text, payload = split_member(member)
  local verdict = 'unparseable'
  if text ~= nil then
    local expire_time = parse_expiry(text)
    if expire_time == false then
      verdict = 'never'
    elseif expire_time ~= nil then
      verdict = string.format('%.17g', expire_time)
    end
  end
  out[#out + 1] = verdict
  out[#out + 1] = payload or ''
end
return out
"""


async def test_the_lua_parser_agrees_with_the_member_table(redis: Any) -> None:
    source = script_source("common") + "\n" + HARNESS  # common.lua twice is harmless
    flat = await redis.eval(source, 0, *(member for member, _ in MEMBERS))
    for (member, expected), verdict, payload in zip(MEMBERS, flat[::2], flat[1::2], strict=True):
        if expected == UNPARSEABLE:
            assert verdict == b"unparseable", member
            continue
        assert payload == member.split(b":", 1)[1], member
        if expected == NEVER:
            assert verdict == b"never", member
        else:
            assert float(verdict) == expected, member


@pytest.mark.parametrize("ttl", [0.001, 1, 60.5, 86400 * 365, None])
async def test_push_lua_writes_what_the_python_writer_writes(
    queue: Queue, ttl: float | None
) -> None:
    package = await queue.push("job:with:colons", ttl, 1)
    [member] = await queue.redis.zrange(queue.key, 0, -1)
    assert member == package.member
    assert member.decode() == encode_member("job:with:colons", package.expire_time)
    assert len(expire_text(package.expire_time)) == (0 if ttl is None else 17)


# common.lua's expire_text and needs_migration, called on each expire time / text.
TEXT_HARNESS = """
local out = {}
for _, time in ipairs(ARGV) do
  local text, value = expire_text(tonumber(time))
  out[#out + 1] = text
  out[#out + 1] = string.format('%.17g', value)
end
return out
"""


def expire_times(count: int) -> list[float]:
    """Random times from 2001 to year 9999, most before 2286, and the edges."""
    rng = random.Random(21)
    times = [rng.uniform(1e9, 1e10) for _ in range(count)]
    times += [rng.uniform(1e10, MAX_EXPIRE_TIME) for _ in range(count // 4)]
    times += [1e9, 1795824903.5, 1795824903.99434, 8589934592.0, 9999999999.9999995, 1e10]
    return [*times, float(MAX_EXPIRE_TIME)]


async def test_lua_writes_the_expire_text_python_writes_for_every_time(redis: Any) -> None:
    source = script_source("common") + "\n" + TEXT_HARNESS
    times = expire_times(20_000)
    flat = await redis.eval(source, 0, *(repr(time) for time in times))
    for time, text, value in zip(times, flat[::2], flat[1::2], strict=True):
        assert (text.decode(), float(value)) == canonical_expiry(time), time
        assert repr(float(text)) == text.decode(), time  # 0.1.x rebuilds it


MIGRATION_HARNESS = """
local out = {}
for _, text in ipairs(ARGV) do
  out[#out + 1] = needs_migration(text) and shortest_text(tonumber(text)) or ''
end
return out
"""


@pytest.mark.parametrize(
    ("text", "rewritten"),
    [
        ("001795824903.994348", "1795824903.994348"),  # zero-padded (1.0.dev)
        ("001795824903.994340", "1795824903.99434"),  # zero-padded, ends in 0
        ("1795824903.500000", "1795824903.5"),  # six decimals ending in 0 (before 1.0.dev)
        ("1795824903.994348", ""),  # as this version and repr() write it
        ("1795824903.99434", ""),  # as 0.1.x wrote it
        ("1e10", ""),  # someone else's form: left alone
        ("+5.000000", ""),
    ],
)
async def test_what_reconcile_rewrites(redis: Any, text: str, rewritten: str) -> None:
    source = script_source("common") + "\n" + MIGRATION_HARNESS
    assert await redis.eval(source, 0, text) == [rewritten.encode()]
