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

local function delete_member(queue, index, member)
  redis.call('ZREM', index, member)
  return redis.call('ZREM', queue, member)
end

local function signal_change(queue)
  redis.call('PUBLISH', queue, 'new_message')
end
