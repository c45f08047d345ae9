-- Shared helpers, prepended to every script (see kamikaze/queue.py).
-- KEYS[1] queue, KEYS[2] expiry index, KEYS[3] payload index; a write that
-- must not be applied twice also gets KEYS[4], its call key (see recall()).

-- The latest expire time a member may have: 9999-12-31T23:59:59 UTC, the
-- last moment a date can show.
local MAX_EXPIRE_TIME = 253402300799

-- The server's clock: expiry never depends on a client's clock. TIME's
-- seconds and microseconds (for the client), and the two as one number.
local function server_clock()
  local t = redis.call('TIME')
  return t[1], t[2], tonumber(t[1]) + tonumber(t[2]) / 1000000
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

-- The expiry index (KEYS[2]) scores each member of the queue by its expire
-- time (+inf: never expires, or not ours), so the sweep finds expired
-- packages anywhere in the queue without walking it.
local function index_score(expire_time)
  if expire_time then return expire_time end
  return '+inf'
end

-- The payload index (KEYS[3]) holds "<payload>\0<member>" for each of our
-- members, all with score 0: the members of one payload are one ZRANGEBYLEX.
local function payload_entry(member)
  local _, payload = split_member(member)
  if payload == nil then return nil end
  return payload .. '\0' .. member
end

-- The member behind a payload-index entry (payloads may contain NUL too);
-- nil if the entry is not well formed.
local function entry_member(entry)
  local from = 1
  while true do
    local nul = string.find(entry, '\0', from, true)
    if nul == nil then return nil end
    local member = string.sub(entry, nul + 1)
    local _, payload = split_member(member)
    if payload == string.sub(entry, 1, nul - 1) then return member end
    from = nul + 1
  end
end

local function index_member(index, payloads, member, expire_time)
  redis.call('ZADD', index, index_score(expire_time), member)
  local entry = payload_entry(member)
  if entry then redis.call('ZADD', payloads, 0, entry) end
end

local function delete_member(queue, index, payloads, member)
  redis.call('ZREM', index, member)
  local entry = payload_entry(member)
  if entry then redis.call('ZREM', payloads, entry) end
  return redis.call('ZREM', queue, member)
end

-- SIGNAL_COMMAND (PUBLISH, or SPUBLISH on a cluster) is set by kamikaze/queue.py.
local function signal_change(queue)
  redis.call(SIGNAL_COMMAND, queue, 'new_message')
end

-- A script either does all of its work or none: before its first write it
-- refuses keys that hold something other than a sorted set. Returns the
-- error reply to return, or nil.
local function wrong_type(keys)
  for i = 1, math.min(#keys, 3) do
    local reply = redis.pcall('ZCARD', keys[i])
    if type(reply) == 'table' and reply.err then
      return redis.error_reply('WRONGTYPE ' .. keys[i] .. ' is not a sorted set; nothing was changed')
    end
  end
  return nil
end

-- A write call's key (KEYS[4], named by the client for this one call) keeps
-- its outcome for CALL_MEMORY seconds: the same call sent again, because its
-- reply was lost, returns that outcome instead of being applied twice.
local CALL_MEMORY = 60
local function recall()
  return redis.call('GET', KEYS[4])
end
local function remember(outcome)
  redis.call('SET', KEYS[4], outcome, 'EX', CALL_MEMORY)
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
