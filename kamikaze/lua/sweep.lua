-- Deletes up to ARGV[1] expired packages found through the expiry index.
-- KEYS[1] queue, KEYS[2] expiry index.
-- Returns {index entries looked at, packages deleted}; signals if any was deleted.
local queue, index = KEYS[1], KEYS[2]
local expired = redis.call('ZRANGEBYSCORE', index, '-inf', server_now(), 'LIMIT', 0, ARGV[1])
local removed = 0
for _, member in ipairs(expired) do
  removed = removed + redis.call('ZREM', queue, member)
end
if #expired > 0 then redis.call('ZREM', index, unpack(expired)) end
if removed > 0 then signal_change(queue) end
return {#expired, removed}
