"""The member format on the Lua side (kamikaze/lua/common.lua): its parser
held to the same table as the Python one (tests/members.py), through a real
server; and what push.lua writes is what kamikaze.package writes.

Covers: kamikaze/lua/common.lua, kamikaze/lua/push.lua, kamikaze/package.py.

Covers: kamikaze/lua/common.lua, kamikaze/lua/push.lua, kamikaze/package.py."""

from __future__ import annotations

from typing import Any

import pytest

from kamikaze.package import encode_member, expire_text
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
    assert len(expire_text(package.expire_time)) == (0 if ttl is None else 19)
