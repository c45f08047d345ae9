-- Adds packages and signals the change once.
-- KEYS[1] queue, KEYS[2] expiry index, KEYS[3] payload index; ARGV: payload, ttl, priority, repeated per package
-- (an empty ttl means the package never expires).
-- Returns the expire-time part of each member written, in order.
local queue, index, payloads = KEYS[1], KEYS[2], KEYS[3]
local now = server_now()
local written = {}
for i = 1, #ARGV, 3 do
  local payload, ttl, priority = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local expire_text, expire_time = '', false
  if ttl ~= '' then
    expire_text = string.format('%.6f', now + tonumber(ttl))
    expire_time = expire_text
  end
  local member = expire_text .. ':' .. payload
  redis.call('ZADD', queue, priority, member)
  index_member(index, payloads, member, expire_time)
  written[#written + 1] = expire_text
end
signal_change(queue)
return written
