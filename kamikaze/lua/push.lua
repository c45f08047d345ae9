-- Adds packages and signals the change once.
-- KEYS[1] queue, KEYS[2] expiry index, KEYS[3] payload index; ARGV: payload,
-- ttl, priority, repeated per package (an empty ttl: it never expires).
-- Returns the expire-time part of each member written, in order.
local queue, index, payloads = KEYS[1], KEYS[2], KEYS[3]
local now = server_now()
local written = {}
local to_queue, to_index, to_payloads = {}, {}, {}

-- One ZADD per key and chunk of pairs: far fewer calls than one per package.
local function zadd_all(key, pairs)
  for first = 1, #pairs, 1000 do
    redis.call('ZADD', key, unpack(pairs, first, math.min(first + 999, #pairs)))
  end
end

for i = 1, #ARGV, 3 do
  local payload, ttl, priority = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local expire_text, index_score = '', '+inf'
  if ttl ~= '' then
    expire_text = string.format('%.6f', now + tonumber(ttl))
    index_score = expire_text
  end
  local member = expire_text .. ':' .. payload
  local n = #to_queue
  to_queue[n + 1], to_queue[n + 2] = priority, member
  to_index[n + 1], to_index[n + 2] = index_score, member
  to_payloads[n + 1], to_payloads[n + 2] = 0, payload .. '\0' .. member
  written[#written + 1] = expire_text
end
zadd_all(queue, to_queue)
zadd_all(index, to_index)
zadd_all(payloads, to_payloads)
signal_change(queue)
return written
