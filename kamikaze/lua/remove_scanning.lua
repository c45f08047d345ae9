-- One bounded step of removing every package with an exact payload by walking
-- the queue: for members no index knows of yet (written by 0.1.x).
-- KEYS[1] queue, KEYS[2] expiry index, KEYS[3] payload index; ARGV[1] ZSCAN
-- cursor, ARGV[2] MATCH pattern (a glob that selects candidates), ARGV[3] the
-- exact payload, ARGV[4] ZSCAN COUNT.
-- Returns {next cursor, number removed}; signals the change if any was removed.
local queue, index, payloads = KEYS[1], KEYS[2], KEYS[3]
local payload = ARGV[3]
local scan = redis.call('ZSCAN', queue, ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[4])
local entries = scan[2]
local removed = 0
for i = 1, #entries, 2 do
  local expire_text, member_payload = split_member(entries[i])
  if member_payload == payload and parse_expiry(expire_text) ~= nil then
    removed = removed + delete_member(queue, index, payloads, entries[i])
  end
end
if removed > 0 then signal_change(queue) end
return {scan[1], removed}
