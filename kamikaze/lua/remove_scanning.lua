-- One bounded step of removing every package with an exact payload by walking
-- the queue in order: for members no index knows of yet (written by 0.1.x).
-- ARGV[1] is the call token: a step sent twice is applied once. ARGV[2] the
-- exact payload, ARGV[3], ARGV[4] the score and member of the entry the last
-- step ended at ('' and '' for the first), ARGV[5] most entries to look at.
-- Going on after an entry, not after a rank, keeps the walk right while
-- others push and remove; a cheap test of each member's end finds the
-- candidates (ZSCAN MATCH would format every score, three times slower).
-- Returns {entries looked at, number removed, last score, last member};
-- signals the change if any was removed.
local queue, index = KEYS[1], KEYS[2]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local token = ARGV[1]
local recalled = recall(token)
if recalled then
  local parts, from = {}, 1
  for _ = 1, 3 do
    local space = string.find(recalled, ' ', from, true)
    parts[#parts + 1] = string.sub(recalled, from, space - 1)
    from = space + 1
  end
  return {tonumber(parts[1]), tonumber(parts[2]), parts[3], string.sub(recalled, from)}
end
local payload = ARGV[2]
local suffix = ':' .. payload
local suffix_at = -#suffix
local rank = 0
if ARGV[3] ~= '' then rank = rank_after(queue, ARGV[3], ARGV[4]) end
-- Without scores: formatting them would cost more than the walk itself.
local entries = redis.call('ZRANGE', queue, rank, rank + tonumber(ARGV[5]) - 1)
local last_member = entries[#entries] or ''
local last_score = ''
if #entries > 0 then last_score = redis.call('ZSCORE', queue, last_member) end
local removed = 0
for _, member in ipairs(entries) do
  if string.find(member, suffix, suffix_at, true) then  -- ends with it: a candidate
    local text, member_payload = split_member(member)
    if member_payload == payload and parse_expiry(text) ~= nil then
      removed = removed + delete_member(queue, index, member)
    end
  end
end
remember(token, #entries .. ' ' .. removed .. ' ' .. last_score .. ' ' .. last_member)
if removed > 0 then signal_change(KEYS) end
return {#entries, removed, last_score, last_member}
