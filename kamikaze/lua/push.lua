-- Adds packages and signals the change once.
-- KEYS[1] queue, KEYS[2] expiry index; ARGV: payload, ttl, priority, repeated per package
-- (an empty ttl means the package never expires).
-- Returns the expire-time part of each member written, in order.
local queue, index = KEYS[1], KEYS[2]
local now = server_now()
local written = {}
for i = 1, #ARGV, 3 do
  local payload, ttl, priority = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local expire_text, score = '', '+inf'
  if ttl ~= '' then
    expire_text = string.format('%.6f', now + tonumber(ttl))
    score = expire_text
  end
  local member = expire_text .. ':' .. payload
  redis.call('ZADD', queue, priority, member)
  redis.call('ZADD', index, score, member)
  written[#written + 1] = expire_text
end
signal_change(queue)
return written
