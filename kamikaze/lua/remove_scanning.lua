-- One bounded step of removing every package with an exact payload by walking
-- the queue in order: for members no index knows of yet (written by 0.1.x).
-- KEYS[4] is the call key: a step sent twice is applied once. ARGV[1] the
-- exact payload, ARGV[2], ARGV[3] the score and member of the entry the last
-- step ended at ('' and '' for the first), ARGV[4] most entries to look at.
-- Going on after an entry, not after a rank, keeps the walk right while
-- others push and remove; a cheap test of each member's end finds the
-- candidates (ZSCAN MATCH would format every score, three times slower).
-- Returns {entries looked at, number removed, last score, last member};
-- signals the change if any was removed.
local queue, index, payloads = KEYS[1], KEYS[2], KEYS[3]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local recalled = recall()
if recalled then
  local parts, from = {}, 1
  for _ = 1, 3 do
    local space = string.find(recalled, ' ', from, true)
    parts[#parts + 1] = string.sub(recalled, from, space - 1)
    from = space + 1
  end
  return {tonumber(parts[1]), tonumber(parts[2]), parts[3], string.sub(recalled, from)}
end
local payload = ARGV[1]
local suffix = ':' .. payload
local suffix_at = -#suffix
local rank = 0
if ARGV[2] ~= '' then rank = rank_after(queue, ARGV[2], ARGV[3]) end
-- Without scores: formatting them would cost more than the walk itself.
local entries = redis.call('ZRANGE', queue, rank, rank + tonumber(ARGV[4]) - 1)
local last_member = entries[#entries] or ''
local last_score = ''
if #entries > 0 then last_score = redis.call('ZSCORE', queue, last_member) end
local removed = 0
for _, member in ipairs(entries) do
  if string.find(member, suffix, suffix_at, true) then  -- ends with it: a candidate
    local text, member_payload = split_member(member)
    if member_payload == payload and parse_expiry(text) ~= nil then
      removed = removed + delete_member(queue, index, payloads, member)
    end
  end
end
remember(#entries .. ' ' .. removed .. ' ' .. last_score .. ' ' .. last_member)
if removed > 0 then signal_change(queue) end
return {#entries, removed, last_score, last_member}
