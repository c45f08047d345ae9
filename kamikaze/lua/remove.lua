-- One bounded step of removing every package with an exact payload, found
-- through the payload index. KEYS[4] is the call key: a step sent twice is
-- applied once. ARGV[1] the exact payload, ARGV[2] the index entry the last
-- step ended at ('' for the first step), ARGV[3] most entries to look at.
-- Going on after an entry, not after a count, keeps the walk right while
-- others remove entries before it.
-- Returns {entries looked at, packages removed, the last entry looked at};
-- signals the change if any was removed.
local queue, index, payloads = KEYS[1], KEYS[2], KEYS[3]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local recalled = recall()
if recalled then
  local first = string.find(recalled, ' ', 1, true)
  local second = string.find(recalled, ' ', first + 1, true)
  return {tonumber(string.sub(recalled, 1, first - 1)),
    tonumber(string.sub(recalled, first + 1, second - 1)), string.sub(recalled, second + 1)}
end
local payload = ARGV[1]
local from = '[' .. payload .. '\0'
if ARGV[2] ~= '' then from = '(' .. ARGV[2] end
local entries = redis.call('ZRANGEBYLEX', payloads, from, '(' .. payload .. '\1',
  'LIMIT', 0, ARGV[3])
local removed = 0
for _, entry in ipairs(entries) do
  local member = string.sub(entry, #payload + 2)
  local text, member_payload = split_member(member)
  -- else a longer payload that starts with payload .. '\0': not ours to remove
  if member_payload == payload and parse_expiry(text) ~= nil then
    removed = removed + delete_member(queue, index, payloads, member)
  end
end
local last = entries[#entries] or ''
remember(#entries .. ' ' .. removed .. ' ' .. last)
if removed > 0 then signal_change(queue) end
return {#entries, removed, last}
