-- Shared helpers, prepended to every script (see kamikaze/queue.py).

-- The server's clock as a float: expiry never depends on a client's clock.
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
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
