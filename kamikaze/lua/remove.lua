-- One bounded step of removing every package with an exact payload, found
-- through the payload index.
-- KEYS[1] queue, KEYS[2] expiry index, KEYS[3] payload index; ARGV[1] the
-- exact payload, ARGV[2] entries to skip (not of this payload, from earlier
-- steps), ARGV[3] most entries to look at.
-- Returns {entries looked at, packages removed, entries skipped}; signals the
-- change if any was removed.
local queue, index, payloads = KEYS[1], KEYS[2], KEYS[3]
local payload = ARGV[1]
local entries = redis.call('ZRANGEBYLEX', payloads, '[' .. payload .. '\0',
  '(' .. payload .. '\1', 'LIMIT', ARGV[2], ARGV[3])
local removed, skipped = 0, 0
for _, entry in ipairs(entries) do
  local member = string.sub(entry, #payload + 2)
  local expire_text, member_payload = split_member(member)
  if member_payload == payload and parse_expiry(expire_text) ~= nil then
    removed = removed + delete_member(queue, index, payloads, member)
  else
    skipped = skipped + 1  -- a longer payload that starts with payload .. '\0'
  end
end
if removed > 0 then signal_change(queue) end
return {#entries, removed, skipped}
