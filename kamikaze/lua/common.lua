-- Shared helpers, prepended to every script (see kamikaze/operations.py).
-- KEYS[1] the queue, KEYS[2] its payload index, KEYS[3] its change counter,
-- KEYS[4] and KEYS[5] the outcomes of recent write calls and when to forget
-- them (kamikaze/keys.py). A write that must not be applied twice gets its
-- call token as ARGV[1] (see recall()).

-- The latest expire time a member may have: 9999-12-31T23:59:59 UTC, the
-- last moment a date can show.
local MAX_EXPIRE_TIME = 253402300799

-- The server's clock: expiry never depends on a client's clock. TIME's
-- seconds and microseconds (for the client), and the two as one number; read
-- once per script, so that all of a call's work sees one moment.
local clock
local function server_clock()
  if not clock then
    local t = redis.call('TIME')
    clock = {t[1], t[2], tonumber(t[1]) + tonumber(t[2]) / 1000000}
  end
  return clock[1], clock[2], clock[3]
end

local function server_now()
  local _, _, now = server_clock()
  return now
end

-- The same rule as kamikaze.package.parse_expiry: false = never expires,
-- nil = not a member of ours (skip it, never delete it), else the expire time.
local function parse_expiry(text)
  if text == '' then return false end
  if not (string.find(text, '^[+-]?%d+%.?%d*$') or string.find(text, '^[+-]?%.%d+$')
      or string.find(text, '^[+-]?%d+%.?%d*[eE][+-]?%d+$')
      or string.find(text, '^[+-]?%.%d+[eE][+-]?%d+$')) then
    return nil
  end
  local value = tonumber(text)
  if value == nil or value ~= value or value == math.huge or value == -math.huge then
    return nil
  end
  return value
end

-- The shortest decimal text that reads back as `value` (>= 1): what Python's
-- repr() gives, and so what 0.1.x rebuilds a member from to ZREM it
-- ('{}:{}'.format(float(text), payload)).
local function shortest_text(value)
  for decimals = 1, 17 do
    local text = string.format('%.' .. decimals .. 'f', value)
    if tonumber(text) == value then return text end
  end
  return string.format('%.17g', value)
end

-- The expire-time part of a member this version writes, and the time it
-- holds: the expire time to the microsecond, moved on by the fewest
-- microseconds (one, mostly) that make its shortest text six decimals wide.
-- So 0.1.x can remove it (the text is shortest_text()'s), and, every text
-- being as wide as the others until the integer part grows an 11th digit
-- (the year 2286), equal priorities stay in expiry order (bytewise).
-- kamikaze.package.canonical_expiry is the same rule in Python.
local function expire_text(expire_time)
  local micros = math.floor(expire_time * 1000000 + 0.5)
  for nudge = 0, 20 do
    local value = (micros + nudge) / 1000000
    local text = string.format('%.6f', value)
    if tonumber(text) == value and tonumber(string.format('%.5f', value)) ~= value then
      return text, value
    end
  end
  local value = micros / 1000000
  return shortest_text(value), value
end

-- Expire texts earlier versions of ours wrote (zero-padded to 19 bytes, or
-- six decimals ending in 0) that 0.1.x cannot rebuild: reconcile.lua
-- rewrites them as shortest_text() of the same time.
local function needs_migration(text)
  if not string.find(text, '^%d+%.%d%d%d%d%d%d$') then return false end
  return shortest_text(tonumber(text)) ~= text
end

local function join_member(text, payload)
  return text .. ':' .. payload
end

-- Splits a member at its first colon: expire text, payload; nil if no colon.
local function split_member(member)
  local colon = string.find(member, ':', 1, true)
  if colon == nil then return nil, nil end
  return string.sub(member, 1, colon - 1), string.sub(member, colon + 1)
end

-- The first 8 bytes of the SHA1 of a payload: how the payload index names it.
local function digest(payload)
  local hex, bytes = redis.sha1hex(payload), {}
  for i = 1, 16, 2 do bytes[#bytes + 1] = string.char(tonumber(string.sub(hex, i, i + 1), 16)) end
  return table.concat(bytes)
end

-- The payload index (KEYS[2]) holds one entry per member of the queue, all
-- scored 0, so that a payload's members are one ZRANGEBYLEX away without
-- the payload held twice: 'd' .. digest(payload) .. expire text for ours
-- that expire (the member is the text, ':' and the payload), 'n' .. payload
-- for ours that never expire, 'x' .. member for others' (counted, never
-- removed). kamikaze.package.index_entry is the same rule in Python.
local function index_entry(member)
  local text, payload = split_member(member)
  local expire_time = text and parse_expiry(text)
  if expire_time == nil then return 'x' .. member end
  if expire_time == false then return 'n' .. payload end
  return 'd' .. digest(payload) .. text
end

local function index_member(index, member)
  redis.call('ZADD', index, 0, index_entry(member))
end

local function delete_member(queue, index, member)
  local removed = redis.call('ZREM', queue, member)
  if removed > 0 then redis.call('ZREM', index, index_entry(member)) end
  return removed
end

-- The live top as a write can tell it at once: true and the top's member and
-- score (none: the queue is empty), or false when the first member has
-- expired or is not ours (top.lua, which followers then call, sorts it out).
local function known_top(queue, now)
  local first = redis.call('ZRANGE', queue, 0, 0, 'WITHSCORES')
  if #first == 0 then return true end
  local text = split_member(first[1])
  local expire_time = text and parse_expiry(text)
  if expire_time == nil or (expire_time and expire_time <= now) then return false end
  return true, first[1], first[2]
end

-- The change signal, published (PUBLISH, or SPUBLISH on a cluster: set by
-- kamikaze/operations.py) on the channel named like the queue after every
-- change: 'new_message' as 0.1.x wrote it, then the change's number in the
-- queue's counter, the server's clock and the live top, so that a follower
-- need not read it: 'new_message SEQ SEC USEC SCORE MEMBER', 'new_message
-- SEQ SEC USEC' when the queue is empty, 'new_message SEQ' when this call
-- cannot tell the top at once (docs/data.rst).
local function signal_change(keys)
  local seq = redis.call('INCR', keys[3])
  local sec, usec, now = server_clock()
  local known, member, score = known_top(keys[1], now)
  local message = 'new_message ' .. seq
  if known then
    message = message .. ' ' .. sec .. ' ' .. usec
    if member then message = message .. ' ' .. score .. ' ' .. member end
  end
  redis.call(SIGNAL_COMMAND, keys[1], message)
  return seq
end

-- The kind each of KEYS must have (or not exist): a script either does all
-- of its work or none, so before its first write it refuses a key of
-- another kind. Returns the error reply to return, or nil.
local KINDS = {'zset', 'zset', 'string', 'hash', 'zset'}
local function wrong_type(keys)
  for i = 1, math.min(#keys, #KINDS) do
    local kind = redis.call('TYPE', keys[i]).ok
    if kind ~= 'none' and kind ~= KINDS[i] then
      return redis.error_reply('WRONGTYPE ' .. keys[i] .. ' is not a ' .. KINDS[i]
        .. ' (it is a ' .. kind .. '); nothing was changed')
    end
  end
  return nil
end

-- A write call's token (ARGV[1], made by the client for this one call) keeps
-- its outcome for CALL_MEMORY seconds, in KEYS[4] (token -> outcome) and
-- KEYS[5] (token scored by when to forget it): the same call sent again,
-- because its reply was lost, returns that outcome instead of being applied
-- twice. Each call forgets a few calls past their time, and both keys expire
-- CALL_MEMORY seconds after the last write: two keys, however many calls.
local CALL_MEMORY = 60
local FORGET_AT_ONCE = 20
local function recall(token)
  local old = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', server_now(), 'LIMIT', 0, FORGET_AT_ONCE)
  if #old > 0 then
    redis.call('HDEL', KEYS[4], unpack(old))
    redis.call('ZREM', KEYS[5], unpack(old))
  end
  return redis.call('HGET', KEYS[4], token)
end
local function remember(token, outcome)
  redis.call('HSET', KEYS[4], token, outcome)
  redis.call('ZADD', KEYS[5], server_now() + CALL_MEMORY, token)
  redis.call('EXPIRE', KEYS[4], CALL_MEMORY)
  redis.call('EXPIRE', KEYS[5], CALL_MEMORY)
end

-- Byte order, whatever the server's locale (Lua's < on strings uses strcoll).
local function bytes_less(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- The rank just past the entry (score, member) in the queue's order, whether
-- or not that entry is still there: where a walk that ended at it goes on,
-- unmoved by entries added or removed before it meanwhile. O(log^2 N).
local function rank_after(queue, score, member)
  local current = redis.call('ZSCORE', queue, member)
  if current and tonumber(current) == tonumber(score) then
    return redis.call('ZRANK', queue, member) + 1
  end
  local low = redis.call('ZCOUNT', queue, '-inf', '(' .. score)
  local high = low + redis.call('ZCOUNT', queue, score, score)
  while low < high do  -- the entries of this score, bytewise: find the first past member
    local middle = math.floor((low + high) / 2)
    if bytes_less(member, redis.call('ZRANGE', queue, middle, middle)[1]) then
      high = middle
    else
      low = middle + 1
    end
  end
  return low
end
