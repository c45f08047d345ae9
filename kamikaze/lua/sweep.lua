-- Deletes up to ARGV[1] expired packages found through the expiry index.
-- KEYS[1] queue, KEYS[2] expiry index, KEYS[3] payload index.
-- Returns {index entries looked at, packages deleted}; signals if any was deleted.
local queue, index, payloads = KEYS[1], KEYS[2], KEYS[3]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local expired = redis.call('ZRANGEBYSCORE', index, '-inf', server_now(), 'LIMIT', 0, ARGV[1])
local removed = 0
for _, member in ipairs(expired) do
  removed = removed + delete_member(queue, index, payloads, member)
end
if removed > 0 then signal_change(queue) end
return {#expired, removed}
