-- One bounded step of removing every package with an exact payload by walking
-- the queue: for members no index knows of yet (written by 0.1.x).
-- KEYS[4] is the call key: a step sent twice is applied once. ARGV[1] ZSCAN
-- cursor, ARGV[2] MATCH pattern (a glob that selects candidates), ARGV[3] the
-- exact payload, ARGV[4] ZSCAN COUNT.
-- Returns {next cursor, number removed}; signals the change if any was removed.
local queue, index, payloads = KEYS[1], KEYS[2], KEYS[3]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local recalled = recall()
if recalled then
  local space = string.find(recalled, ' ', 1, true)
  return {string.sub(recalled, 1, space - 1), tonumber(string.sub(recalled, space + 1))}
end
local payload = ARGV[3]
local scan = redis.call('ZSCAN', queue, ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[4])
local entries = scan[2]
local removed = 0
for i = 1, #entries, 2 do
  local text, member_payload = split_member(entries[i])
  if member_payload == payload and parse_expiry(text) ~= nil then
    removed = removed + delete_member(queue, index, payloads, entries[i])
  end
end
remember(scan[1] .. ' ' .. removed)
if removed > 0 then signal_change(queue) end
return {scan[1], removed}
