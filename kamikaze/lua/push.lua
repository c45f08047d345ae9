-- Adds packages and signals the change once; all of them or, on any
-- refusal, none. ARGV[1] is the call token: a call sent twice is applied
-- once. Then payload, ttl, priority, repeated per package (an empty ttl: it
-- never expires). Returns the expire-time part of each member written, in order.
local queue, index = KEYS[1], KEYS[2]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local token = ARGV[1]
local recalled = recall(token)
local now = recalled and tonumber(recalled) or server_now()
local written = {}
local to_queue, to_index = {}, {}

-- One ZADD per key and chunk of pairs: far fewer calls than one per package.
local function zadd_all(key, pairs)
  for first = 1, #pairs, 1000 do
    redis.call('ZADD', key, unpack(pairs, first, math.min(first + 999, #pairs)))
  end
end

for i = 2, #ARGV, 3 do
  local payload, ttl, priority = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local text = ''
  if ttl ~= '' then
    local expire_time = now + tonumber(ttl)
    if not (expire_time <= MAX_EXPIRE_TIME) then
      return redis.error_reply('ERR TTL ' .. ttl .. ' puts the expire time past '
        .. '9999-12-31T23:59:59 UTC; nothing was pushed')
    end
    text = expire_text(expire_time)
  end
  local member = join_member(text, payload)
  local n = #to_queue
  to_queue[n + 1], to_queue[n + 2] = priority, member
  to_index[n + 1], to_index[n + 2] = 0, index_entry(member)
  written[#written + 1] = text
end
if recalled then return written end
zadd_all(queue, to_queue)
zadd_all(index, to_index)
remember(token, string.format('%.17g', now))
signal_change(KEYS)
return written
